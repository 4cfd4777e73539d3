"""Fast read-only views of an ended span's fields, for the export thread.

The SDK's public properties copy: ``span.events`` / ``span.links`` copy a
``BoundedList`` under its lock, and ``BoundedAttributes`` iterates through
Python-level ``__getitem__`` calls under its lock. Once a span has ended it can
no longer change, so the export thread reads the underlying containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.util import BoundedList
from opentelemetry.util.types import AttributeValue

__all__ = ["ended_attributes", "ended_items", "has_items"]

_T = TypeVar("_T")


def has_items(sequence: Sequence[object] | None) -> bool:
    """True when the events or links of an ended span are not empty.

    Most spans have neither: this is asked of every span, and the truth value
    of a ``BoundedList`` is a Python-level ``__len__`` call; its deque's is not.
    """
    if type(sequence) is BoundedList:
        try:
            return bool(sequence._dq)  # type: ignore[attr-defined]
        except AttributeError:  # an SDK whose internals moved: the public way
            pass
    return bool(sequence)


def ended_items(sequence: Sequence[_T] | None) -> Iterable[_T]:
    """The events or links of an ended span, without the copy."""
    if sequence is None:
        return ()
    items: Iterable[_T] = (
        getattr(sequence, "_dq", sequence) if isinstance(sequence, BoundedList) else sequence
    )
    return items


def ended_attributes(
    attributes: Mapping[str, object] | None,
) -> Mapping[str, AttributeValue]:
    """The attributes of an ended span (or event, or link), without the locked iteration."""
    if isinstance(attributes, BoundedAttributes):  # the common case first: no len() call
        return attributes._dict
    return attributes or {}  # type: ignore[return-value]
