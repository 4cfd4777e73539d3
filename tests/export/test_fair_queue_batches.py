"""``FairQueue._take_batch``: whatever path takes it (the whole queue, one item from each
of the first tenants, or the round-robin), a batch holds what the round-robin takes.

The reference below is the round-robin written plainly: up to a batch, in passes, each
tenant in queue order giving ``max(1, room left // tenants)`` of its oldest items.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tenantrace.export._fair_queue import FairQueue
from tenantrace.export.config import BatchExportConfig


class _Queue(FairQueue[tuple[str, int]]):
    def _count_drop(self, tenant_id: str) -> None:
        raise AssertionError("nothing is dropped below the bound")


def _reference(queues: dict[str, list[tuple[str, int]]], max_batch: int) -> Counter[str]:
    queues = {tenant: list(items) for tenant, items in queues.items()}
    size = sum(map(len, queues.values()))
    room = min(max_batch, size)
    taken: Counter[str] = Counter()
    while sum(taken.values()) < room:
        left = room - sum(taken.values())
        share = max(1, left // len(queues))
        for tenant in list(queues):
            take = min(share, len(queues[tenant]), room - sum(taken.values()))
            taken[tenant] += take
            del queues[tenant][:take]
            if not queues[tenant]:
                del queues[tenant]
            if sum(taken.values()) >= room:
                break
    return taken


lengths = st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(lengths=lengths, max_batch=st.integers(min_value=1, max_value=80))
def test_a_batch_takes_what_the_round_robin_takes(lengths: list[int], max_batch: int) -> None:
    queue = _Queue(BatchExportConfig(max_queue_size=1000, max_export_batch_size=max_batch))
    order = [f"t{i}" for i in range(len(lengths))]
    # Submitted round by round, as spans of many tenants arrive interleaved.
    for round_ in range(max(lengths)):
        for tenant, length in zip(order, lengths, strict=True):
            if round_ < length:
                queue.submit((tenant, round_), tenant)
    before = {tenant: list(items) for tenant, items in queue._queues.items()}
    expected = _reference(before, max_batch)

    with queue._lock:
        batch, owners = queue._take_batch()

    assert Counter(owners) == expected
    assert [item[0] for item in batch] == owners  # each item's owner, in step
    for tenant, count in expected.items():  # each tenant's oldest items, in order
        assert [item for item in batch if item[0] == tenant] == before[tenant][:count]
    assert queue.queued == sum(lengths) - len(batch)
    left = {tenant: items for tenant, items in queue._queues.items()}
    for tenant, items in before.items():
        assert left.get(tenant, []) == items[expected[tenant] :]
    assert all(left.values())  # no tenant is left holding an empty list


@settings(max_examples=100, deadline=None)
@given(tenants=st.integers(min_value=1, max_value=200), max_batch=st.integers(1, 64))
def test_many_tenants_with_one_item_each_drain_oldest_first(tenants: int, max_batch: int) -> None:
    queue = _Queue(BatchExportConfig(max_queue_size=1000, max_export_batch_size=max_batch))
    for i in range(tenants):
        queue.submit((f"t{i}", 0), f"t{i}")
    taken: list[str] = []
    while queue.queued:
        with queue._lock:
            batch, owners = queue._take_batch()
        assert len(batch) == min(max_batch, tenants - len(taken))
        taken += owners
    assert taken == [f"t{i}" for i in range(tenants)]


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.one_of(st.integers(min_value=0, max_value=30), st.just(-1)), min_size=1, max_size=300
    ),
    max_batch=st.integers(min_value=1, max_value=16),
)
def test_submits_and_takes_interleaved_take_each_item_once_in_order(
    steps: list[int], max_batch: int
) -> None:
    """Taken tenant lists are reused for later tenants: no item is taken twice, lost,
    or handed to another tenant, whatever the order of submits and takes."""
    queue = _Queue(BatchExportConfig(max_queue_size=1000, max_export_batch_size=max_batch))
    sent: dict[str, list[tuple[str, int]]] = {}
    taken: dict[str, list[tuple[str, int]]] = {}
    for number, step in enumerate(steps):
        if step < 0:
            with queue._lock:
                batch, owners = queue._take_batch()
            for item, owner in zip(batch, owners, strict=True):
                assert item[0] == owner
                taken.setdefault(owner, []).append(item)
            continue
        tenant = f"t{step}"
        item = (tenant, number)
        sent.setdefault(tenant, []).append(item)
        queue.submit(item, tenant)
    while queue.queued:
        with queue._lock:
            batch, owners = queue._take_batch()
        assert batch
        for item, owner in zip(batch, owners, strict=True):
            taken.setdefault(owner, []).append(item)
    assert taken == sent
    assert len(queue._spare) <= max_batch
    assert all(not spare for spare in queue._spare)
