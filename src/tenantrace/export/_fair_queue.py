"""The bounded per-tenant queue both export pipelines (spans, log records) are built on.

One FIFO per tenant under one global bound. An item arriving at a full queue
displaces the newest queued item of the tenant that holds the most, when that
tenant holds more than the newcomer's own tenant plus one; otherwise the new
item is dropped. This is max-min fairness: every tenant can always queue up to
its fair share (the bound divided by the tenants with queued items), a noisy
tenant loses its own items first and cannot crowd a quiet tenant out, and
tenants that all want more than the queue end with equal shares (within one
item). Batches are taken round-robin across tenants.

Finding the tenant that holds the most is O(1) and costs nothing while the
queue has room: the first time the queue fills, tenants are indexed in buckets
by the length of their queue (``_by_len``, the longest length tracked exactly);
the index is kept up to date until the queue drains to half, then dropped. So
the common path does no bookkeeping and a full queue never scans the tenants
per item (one O(tenants) build per overflow episode).

The queue's settings are a ``BatchExportConfig``. With ``drop_on_queue_full``
off, a producer waits for room instead (up to ``export_timeout_millis``, and
never while the consumer's exports are failing). With ``use_sync_export`` the
queue holds nothing: each item is handed to ``_handle_now`` on the producer's
thread.

The state lives on the pipeline itself (it subclasses ``FairQueue``): ``submit``
is called for every ended span on the application's thread, and is one function
with no further call while the queue has room.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Generic, TypeVar

from tenantrace.export.config import BatchExportConfig

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-tenant FIFOs of ``T`` under one bound, max-min fair when full (see the module).

    A subclass counts what is dropped (``_count_drop``), and in sync mode
    handles an item on the producer's thread (``_handle_now``). Every method
    whose docstring says so is called with ``_lock`` held.
    """

    def __init__(self, config: BatchExportConfig) -> None:
        self._config = config  # drop_on_queue_full is read when the queue is full
        self._max_queue = config.max_queue_size
        self._max_batch = config.max_export_batch_size
        self._sync = config.use_sync_export
        self._block_s = config.export_timeout_millis / 1000
        self._is_shutdown = False
        self._reset()

    def _reset(self) -> None:
        """(Re)create the state a forked child must not inherit (its lock may be held
        by a thread that no longer exists there): an empty queue, counts at zero."""
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        # A list per tenant, not a deque: most tenants of a many-tenant service have
        # one or two items queued, and a deque costs a 600-byte block for each.
        self._queues: dict[str, list[T]] = {}
        # Emptied tenant lists, kept for the next tenants: with thousands of tenants
        # a queued span is a tenant's whole list, and every new list counts toward the
        # garbage collector's next collection. At most a batch of them.
        self._spare: list[list[T]] = []
        self._size = 0
        # While the queue is (nearly) full: tenants by the length of their queue
        # (insertion-ordered sets) and the longest length. None otherwise.
        self._by_len: dict[int, dict[str, None]] | None = None
        self._max_len = 0
        # Items offered (queued, dropped, or handled now in sync mode).
        self._offered = 0
        # Set while the consumer's last export failed: a blocking queue then drops
        # instead of making the producer wait for a receiver that is not answering.
        self._export_failing = False

    @property
    def queued(self) -> int:
        return self._size

    # --------------------------------------------------------------- enqueue

    def submit(self, item: T, tenant_id: str) -> None:
        """Queue one item of ``tenant_id`` (or drop it, counted); never raises."""
        if self._is_shutdown:
            return
        if self._sync:
            self._handle_now(item, tenant_id)
            return
        with self._lock:
            self._offered += 1
            if self._size >= self._max_queue and not self._make_room(tenant_id):
                return
            queue = self._queues.get(tenant_id)
            if queue is None:
                queue = self._queues[tenant_id] = self._spare.pop() if self._spare else []
            queue.append(item)
            self._size += 1
            if self._by_len is not None:
                self._moved(tenant_id, len(queue) - 1, len(queue))
            # Wake the consumer once, as the queue reaches a batch (it grows one item
            # at a time); past that the consumer does not wait before taking a batch.
            if self._size == self._max_batch:
                self._not_empty.notify()

    def _handle_now(self, item: T, tenant_id: str) -> None:
        """Sync mode: handle ``item`` on the producer's thread; must not raise."""
        raise NotImplementedError

    def _count_drop(self, tenant_id: str) -> None:
        """Lock held: one item of ``tenant_id`` was dropped (refused or displaced)."""
        raise NotImplementedError

    def _make_room(self, tenant_id: str) -> bool:
        """Lock held, queue full: True if the item may be queued (room was made)."""
        if not self._config.drop_on_queue_full and not self._export_failing:
            deadline = time.monotonic() + self._block_s
            self._not_empty.notify()
            while self._size >= self._max_queue and not (self._is_shutdown or self._export_failing):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._not_full.wait(remaining)
            if self._size < self._max_queue:
                return True
        else:
            own = self._queues.get(tenant_id)
            own_len = len(own) if own is not None else 0
            by_len = self._by_len if self._by_len is not None else self._index()
            if self._max_len > own_len + 1:
                # Ties at the longest length give up items in turn: a victim moves
                # to the shorter bucket, behind the others still at the top.
                victim = next(iter(by_len[self._max_len]))
                self._queues[victim].pop()
                self._size -= 1
                self._moved(victim, self._max_len, self._max_len - 1)
                self._count_drop(victim)
                return True
        self._count_drop(tenant_id)
        return False

    def _index(self) -> dict[int, dict[str, None]]:
        """Lock held, the queue just filled: bucket the tenants by length."""
        by_len: dict[int, dict[str, None]] = {}
        for tenant_id, queue in self._queues.items():
            by_len.setdefault(len(queue), {})[tenant_id] = None
        self._by_len = by_len
        self._max_len = max(by_len, default=0)
        return by_len

    def _moved(self, tenant_id: str, old_len: int, new_len: int) -> None:
        """Lock held, the index on: a queue went from old_len to new_len."""
        by_len = self._by_len
        assert by_len is not None
        if old_len:
            del by_len[old_len][tenant_id]
        if new_len:
            bucket = by_len.get(new_len)
            if bucket is None:
                bucket = by_len[new_len] = {}
            bucket[tenant_id] = None
            self._max_len = max(self._max_len, new_len)
        while self._max_len and not by_len.get(self._max_len):
            self._max_len -= 1

    # --------------------------------------------------------------- dequeue

    def _take_batch(self) -> tuple[list[T], list[str]]:
        """Lock held: up to one batch, round-robin over tenants, and each item's tenant."""
        room = min(self._max_batch, self._size)
        if self._by_len is None and room:
            if room == self._size:
                return self._take_all()
            if self._size == len(self._queues):
                return self._take_first_tenants(room)
        batch: list[T] = []
        owners: list[str] = []
        while len(batch) < room:
            share = max(1, (room - len(batch)) // len(self._queues))
            for tenant_id in list(self._queues):
                queue = self._queues[tenant_id]
                length = len(queue)
                take = min(share, length, room - len(batch))
                if take == length:  # most tenants: all they have queued
                    batch += queue
                    del self._queues[tenant_id]
                else:
                    batch += queue[:take]
                    del queue[:take]
                owners += repeat(tenant_id, take)
                if self._by_len is not None:
                    self._moved(tenant_id, length, length - take)
                if len(batch) >= room:
                    break
        self._size -= len(batch)
        if self._by_len is not None and self._size <= self._max_queue // 2:
            self._by_len = None  # the overflow episode is over; stop the bookkeeping
        if batch:
            self._not_full.notify_all()
        return batch, owners

    def _take_all(self) -> tuple[list[T], list[str]]:
        """Lock held, the whole queue fits one batch: every tenant's items, tenant by
        tenant (as fair as a batch gets), without a step per tenant in Python."""
        queues, self._queues = self._queues, {}
        lists = list(queues.values())
        batch = list(chain.from_iterable(lists))
        owners = list(chain.from_iterable(map(repeat, queues, map(len, lists))))
        self._keep_spare(lists)
        self._size = 0
        self._not_full.notify_all()
        return batch, owners

    def _take_first_tenants(self, room: int) -> tuple[list[T], list[str]]:
        """Lock held, one item queued per tenant (thousands of tenants): the ``room``
        tenants queued longest, one item each, as the round-robin takes them."""
        owners = list(islice(self._queues, room))
        lists = list(map(self._queues.pop, owners))
        batch = list(map(itemgetter(0), lists))
        self._keep_spare(lists)
        self._size -= room
        self._not_full.notify_all()
        return batch, owners

    def _keep_spare(self, lists: list[list[T]]) -> None:
        """Lock held: taken tenant lists, emptied, kept for reuse (up to a batch)."""
        room = self._max_batch - len(self._spare)
        if room > 0:
            kept = lists[:room]
            deque(map(list.clear, kept), maxlen=0)
            self._spare += kept
