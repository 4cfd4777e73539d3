"""What both directions share: counting (and warning once about) a carrier part that
was ignored, and merging the caller's own headers with an outbound carrier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.propagation.carriers import PROPAGATION_FIELDS, lowered_names
from tenantrace.propagation.limits import (
    is_safe_header_value,
    is_token,
    lowered_names_are_tokens,
)
from tenantrace.propagation.propagators import current_propagators

__all__ = ["count_ignored", "merge_headers"]


def count_ignored(counter: str) -> None:
    manager = get_telemetry_manager()
    manager.count(counter)
    manager.warn_once(
        "propagation." + counter,
        "tenantrace: %s (the carrier part was ignored; further ones are only counted)",
        counter.replace("propagation.", "").replace("_", " "),
    )


def _header_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _pairs(headers: object) -> Iterable[tuple[object, object]]:
    if isinstance(headers, Mapping):
        return headers.items()
    if isinstance(headers, list | tuple):
        return (
            (item[0], item[1])
            for item in headers
            if isinstance(item, tuple | list) and len(item) == 2
        )
    return ()


def _merge_plain(headers: dict[Any, Any]) -> dict[str, str] | None:
    """``merge_headers`` for a ``dict`` of clean ``str`` headers, none of them a propagation header.

    None sends the call down the general path (which filters item by item).
    """
    lowered = lowered_names(headers)
    if lowered is None or not lowered_names_are_tokens(lowered):
        return None
    # Every propagation header name holds "trace", "baggage" or "b3": a cheap
    # test that there is no stale one to drop (the general path drops them).
    if "trace" in lowered or "baggage" in lowered or "b3" in lowered:
        return None
    try:
        values = "".join(headers.values())
    except TypeError:  # a value that is not a str
        return None
    if not is_safe_header_value(values):
        return None
    return dict(headers)


def merge_headers(headers: object, carrier: dict[str, str]) -> dict[str, str]:
    """The caller's headers without any propagation header of theirs, plus ``carrier``.

    A propagation header already in ``headers`` (say, forwarded from an
    inbound request) describes another context and, for baggage, may be bound
    for a host the egress policy excludes: it is dropped, not passed on.
    """
    merged: dict[str, str] | None = None
    if type(headers) is dict and not current_propagators().extra:
        merged = _merge_plain(headers)
    if merged is None:
        merged = _merge_general(headers)
    merged.update(carrier)
    return merged


def _merge_general(headers: object) -> dict[str, str]:
    replaced = PROPAGATION_FIELDS | current_propagators().injected_fields
    merged: dict[str, str] = {}
    try:
        for key, value in _pairs(headers):
            name, text = _header_text(key), _header_text(value)
            if name is None or text is None or name.lower() in replaced:
                continue
            if not is_token(name) or not is_safe_header_value(text):
                count_ignored("propagation.unsafe_header_dropped")
                continue
            merged[name] = text
    except Exception:  # a hostile Mapping; the trace headers still go out
        pass
    return merged
