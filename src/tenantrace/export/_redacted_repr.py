"""``redacted_repr``: the ``repr`` of a captured argument, its secrets redacted at every depth."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

from tenantrace.export._scrub_keys import REDACTED, SECRET, classify
from tenantrace.export.secrets import redact_text

__all__ = ["redacted_repr"]

_T = TypeVar("_T")

_MAX_DEPTH: Final = 4
_MAX_ITEMS: Final = 50


def redacted_repr(value: object, max_chars: int = 4096) -> str:
    """``repr(value)`` with secrets redacted at every depth, for captured arguments.

    Values under secret-looking keys of mappings, dataclasses and pydantic
    models are ``[REDACTED]``, however deep (bounded: 4 levels, 50 items per
    container); strings and the ``repr`` of any other object are redacted by
    their shape. Never raises.
    """
    try:
        return repr(_redacted(value, 0))[:max_chars]
    except Exception:  # a hostile __repr__ or mapping: nothing of it is shown
        return f"<{type(value).__name__}>"


class _Shown:
    """A leaf already rendered (a redacted repr): repr() shows it as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _redacted(value: object, depth: int) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):  # raw headers, bodies: judged as text
        text = bytes(value).decode("latin-1")
        redacted = redact_text(text)
        value = value if redacted is text else redacted
    if value is None or isinstance(value, bool | int | float | bytes | bytearray | str):
        return value
    if depth >= _MAX_DEPTH:
        return _Shown("...")
    fields = _fields_of(value)
    if fields is None and isinstance(value, Mapping):
        fields = _first(value.items())
    if fields is not None:
        return {_key(k): _redacted_item(k, v, depth) for k, v in fields}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redacted_pair_or_item(item, depth + 1) for item in _first(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return _Shown(redact_text(repr(value)))


def _redacted_pair_or_item(item: object, depth: int) -> object:
    """A ``(name, value)`` pair (headers, form fields) keeps its name, loses a secret value."""
    if type(item) is tuple and len(item) == 2 and isinstance(item[0], str | bytes):
        return (_redacted(item[0], depth), _redacted_item(item[0], item[1], depth))
    return _redacted(item, depth)


def _fields_of(value: object) -> list[tuple[object, object]] | None:
    """A dataclass's or a pydantic model's fields; None for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    as_dict = getattr(value, "_asdict", None)  # a NamedTuple: its field names matter
    if isinstance(value, tuple) and callable(as_dict):
        fields = as_dict()
        if isinstance(fields, Mapping):
            return list(_first(fields.items()))
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return list(_first(dumped.items()))
    return None


def _first(items: Iterable[_T]) -> list[_T]:
    return list(itertools.islice(items, _MAX_ITEMS))


def _key(key: object) -> object:
    return key if isinstance(key, str | int | float | bool) or key is None else repr(key)


def _redacted_item(key: object, value: object, depth: int) -> object:
    name = bytes(key).decode("latin-1") if isinstance(key, bytes | bytearray) else key
    if isinstance(name, str) and classify(name, ()) == SECRET:
        return REDACTED
    return _redacted(value, depth + 1)
