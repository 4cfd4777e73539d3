"""A log record's body and attributes scrubbed by the span scrubber's rules.

The body and every string value go through ``secrets.redact_text`` (the
values of URL keys through ``redact_url`` first); attribute keys are judged by
``Scrubber.decision`` (a secret key's value is redacted whole, unless the key
allows a number and the value is one); nested values go through
``redacted_repr`` (keys judged at every depth). With no scrubber
(``redact_secrets`` off) values are only made exportable (plain types, else
their ``repr``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["REDACTED", "LogScrubber"]

REDACTED: Final = "[REDACTED]"


class LogScrubber:
    """The span scrubber's rules applied to a log record's body and attributes."""

    def __init__(self, scrubber: Any) -> None:
        self._scrubber = scrubber  # None: redact_secrets is off
        from tenantrace.export import scrubbing, secrets  # on first use: not at import

        self._redact_text: Callable[[str], str] = secrets.redact_text
        self._redact_url: Callable[[str], str] = secrets.redact_url
        self._redacted_repr: Callable[[object], str] = scrubbing.redacted_repr

    def body(self, text: str) -> str:
        return text if self._scrubber is None else self._redact_text(text)

    def attributes(self, attributes: Mapping[str, object]) -> dict[str, object]:
        scrubber = self._scrubber
        if scrubber is None:
            return {key: _plain(value) for key, value in attributes.items()}
        kept: dict[str, object] = {}
        for key, value in attributes.items():
            verdict = scrubber.decision(key)
            if verdict == 1 or (verdict == 2 and not _is_number(value)):
                kept[key] = REDACTED
            else:
                kept[key] = self._value(value, url=verdict in (3, 7))
        return kept

    def _value(self, value: object, *, url: bool = False) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._redact_text(self._redact_url(value) if url else value)
        if isinstance(value, bytes | bytearray):
            return self._redact_text(bytes(value).decode("latin-1"))
        if isinstance(value, list | tuple) and all(
            item is None or isinstance(item, str | bool | int | float) for item in value
        ):
            return [self._value(item) for item in value]
        return self._redacted_repr(value)  # mappings, objects: keys judged at every depth


def _plain(value: object) -> object:
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return repr(value)


def _is_number(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value)
