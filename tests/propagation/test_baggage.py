"""Baggage: set/get, the scoped form, and the W3C Baggage size limits both ways."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import unquote

import pytest

from tenantrace.propagation import (
    baggage_scope,
    extract_trace_context,
    get_all_baggage,
    get_baggage,
    inject_trace_context,
    remove_baggage,
    set_baggage,
)
from tenantrace.testing import SpanCapture


def test_set_then_get_anywhere_below(spans: SpanCapture) -> None:
    set_baggage("user_tier", "premium")
    set_baggage("attempts", 3)

    def deep() -> tuple[str | None, str | None]:
        return get_baggage("user_tier"), get_baggage("attempts")

    assert deep() == ("premium", "3")
    assert get_baggage("missing") is None
    remove_baggage("user_tier")
    assert get_baggage("user_tier") is None


def test_scope_ends_with_the_block() -> None:
    with baggage_scope({"request_id": "r-1"}, user_tier="gold") as ctx:
        assert get_all_baggage() == {"request_id": "r-1", "user_tier": "gold"}
        assert get_baggage("request_id", ctx) == "r-1"
    assert get_all_baggage() == {}


def test_scope_ends_even_when_the_block_raises() -> None:
    with pytest.raises(ValueError), baggage_scope(k="v"):
        raise ValueError("user error")
    assert get_baggage("k") is None


async def test_scope_is_async_and_per_task() -> None:
    async def request(value: str) -> str | None:
        async with baggage_scope(request_id=value):
            await asyncio.sleep(0)
            return get_baggage("request_id")

    assert await asyncio.gather(request("a"), request("b")) == ["a", "b"]
    assert get_baggage("request_id") is None


def test_a_pooled_thread_does_not_keep_a_requests_scope() -> None:
    seen: list[str | None] = []

    def worker() -> None:
        with baggage_scope(request_id="r-1"):
            seen.append(get_baggage("request_id"))
        seen.append(get_baggage("request_id"))  # the next job on this thread

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == ["r-1", None]


def test_baggage_reaches_the_wire_encoded(spans: SpanCapture) -> None:
    with baggage_scope({"note": "a b,c;d=e\r\nX"}), spans.manager.span("client"):
        out = inject_trace_context()
    assert "\r" not in out["baggage"] and "\n" not in out["baggage"]
    ctx = extract_trace_context(out)
    assert get_baggage("note", ctx) == "a b,c;d=e\r\nX"  # the value itself round-trips


@pytest.mark.parametrize("key", ["", "has space", "a,b", "é", "k\r\n", "x" * 257])
def test_a_key_that_is_not_a_token_is_refused_not_raised(spans: SpanCapture, key: str) -> None:
    set_baggage(key, "v")
    assert get_all_baggage() == {}
    assert spans.manager.get_stats()["propagation.baggage_refused"] == 1


def test_a_member_over_4096_bytes_is_refused(spans: SpanCapture) -> None:
    set_baggage("k", "v" * (4096 - 2))  # k=vvv... exactly 4096 bytes
    assert get_baggage("k") is not None
    set_baggage("big", "v" * 4096)
    assert get_baggage("big") is None
    set_baggage("encoded", "é" * 700)  # 700 characters, 4200 bytes once percent-encoded
    assert get_baggage("encoded") is None


def test_more_than_180_members_are_refused(spans: SpanCapture) -> None:
    with baggage_scope({f"k{i}": "v" for i in range(200)}):
        assert len(get_all_baggage()) == 180
        with spans.manager.span("client"):
            out = inject_trace_context()
    assert out["baggage"].count("=") == 180
    assert spans.manager.get_stats()["propagation.baggage_refused"] == 20


# ------------------------------------------------------------ inbound limits


def _header(members: int, value: str = "v") -> str:
    return ",".join(f"k{i}={value}" for i in range(members))


def test_inbound_baggage_of_8192_bytes_is_taken() -> None:
    header = "k0=" + "v" * 4093 + "," + "k1=" + "w" * 4092  # two members of 4096 and 4095
    assert len(header) == 8192
    ctx = extract_trace_context({"baggage": header})
    assert get_baggage("k0", ctx) == "v" * 4093
    assert get_baggage("k1", ctx) == "w" * 4092


def test_inbound_baggage_over_8192_bytes_is_dropped_whole(spans: SpanCapture) -> None:
    header = ",".join(f"k{i}=" + "v" * 60 for i in range(140))  # ~9 KB
    assert len(header) > 8192
    assert get_all_baggage(extract_trace_context({"baggage": header})) == {}
    assert spans.manager.get_stats()["propagation.baggage_dropped"] == 1


def test_repeated_inbound_fields_count_together_toward_8192(spans: SpanCapture) -> None:
    half = ",".join(f"a{i}=" + "v" * 60 for i in range(70))  # ~4.6 KB each
    ctx = extract_trace_context([("baggage", half), ("baggage", half.replace("a", "b"))])
    assert get_all_baggage(ctx) == {}


def test_inbound_baggage_keeps_at_most_180_members() -> None:
    ctx = extract_trace_context({"baggage": _header(200)})
    kept = get_all_baggage(ctx)
    assert len(kept) == 180
    assert set(kept) == {f"k{i}" for i in range(180)}


def test_an_inbound_member_over_4096_bytes_is_dropped_alone() -> None:
    header = "small=1,big=" + "v" * 4100 + ",other=2"
    ctx = extract_trace_context({"baggage": header})
    assert get_all_baggage(ctx) == {"small": "1", "other": "2"}


def test_inbound_members_with_properties_and_percent_encoding() -> None:
    ctx = extract_trace_context({"baggage": "user%20id=alice%2C%20bob;prop=1, k = v "})
    # OpenTelemetry keeps a member's properties in its value.
    assert unquote(get_baggage("user id", ctx) or "") == "alice, bob;prop=1"
    assert get_baggage("k", ctx) == "v"
