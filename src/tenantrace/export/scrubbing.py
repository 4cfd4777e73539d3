"""Redaction of secret-looking attributes, run on the export thread as the span transform.

Scrubbing happens after a span ends, on the one export thread, so the traced
code pays nothing for it, and it covers every span exported, including those
of auto-instrumented libraries routed by tenant. A value is replaced by
``[REDACTED]`` (the key stays, so a reader sees that something was there) when
its KEY looks like a secret: span attributes, event attributes and link
attributes alike.

What looks like a secret, in any case and with ``.``, ``_``, ``-`` or spaces
between words: password, passwd, passphrase, secret, token, api key,
authorization, cookie, private key, access key, credential, connection string,
session key; the words ``pwd``, ``auth``, ``jwt``, ``bearer``, ``dsn`` on their
own; and ``sessionid`` / ``session_id`` / ``x-session-id`` (a web session id
is a bearer credential).

Two deliberate exceptions, because redacting them would break the backend's
own features and they are not secrets:

- ``session.id`` (OpenInference / OpenTelemetry) is a conversation id that
  Phoenix groups traces by. A dot separates *namespaces*, so "session id" is a
  secret only when written as one word (``sessionid``, ``session_id``,
  ``x-session-id``), never across a dot (``session.id``, ``app.session.id``).
- Token *counts* (``llm.token_count.prompt``, ``gen_ai.usage.input_tokens``,
  ``cost.tokens_used``) are kept when the value is a number: a token count key
  holding a string is still redacted.

Values are judged by their shape where keys cannot tell (``secrets``):

- URL attributes (``url.full``, ``http.url``, ``url.query``, ``http.target``,
  ``url.original``) lose their userinfo and the values of query parameters whose
  names, percent-decoded and case-folded, name a secret; host attributes
  (``server.address``, ``net.peer.name``) lose any userinfo;
- database statements (``db.statement``, ``db.query.text``) from any
  instrumentation are sanitized (literals become ``?``) by the same sanitizer
  as ``trace_query``, for the span's ``db.system.name`` (every dialect's reading
  when it names none), unless ``sanitize_db_statements`` is off;
- credentials by shape (bearer and basic credentials, JWTs, cloud and platform
  keys, PEM private keys, ``password=`` pairs, URL userinfo) are redacted in
  ``exception.message`` / ``exception.stacktrace``, in the status description,
  and in every string value of event and link attributes.

Users add patterns (regular expressions searched in the lowercased key) and a
callback ``callback(key, value) -> value | None`` that sees every remaining
attribute (return the value to export, possibly changed, or ``None`` to drop
the attribute). Decisions per key are cached (bounded), so the steady-state
cost is one dict lookup per attribute.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final, Protocol

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes, AttributeValue

from tenantrace.export._ended import ended_attributes, ended_items, has_items
from tenantrace.export._redacted_repr import redacted_repr
from tenantrace.export._scrub_keys import (
    HOST,
    QUERY,
    REDACTED,
    SAFE,
    SECRET,
    SECRET_UNLESS_NUMBER,
    SQL,
    TEXT,
    URL,
    classify,
    is_secret_key,
)
from tenantrace.export._scrub_rebuild import rebuilt_span
from tenantrace.export.secrets import (
    redact_db_error,
    redact_query,
    redact_text,
    redact_url,
)
from tenantrace.export.sql import sanitize_sql

__all__ = [
    "REDACTED",
    "ScrubCallback",
    "Scrubber",
    "is_secret_key",
    "redacted_repr",
]


class ScrubSettings(Protocol):
    """What ``Scrubber.from_config`` reads (``TelemetryConfig`` has these fields)."""

    redact_secrets: bool
    redact_patterns: tuple[str, ...]
    redact_callback: Callable[[str, Any], Any] | None
    max_attribute_length: int
    sanitize_db_statements: bool


_logger = logging.getLogger(__name__)

ScrubCallback = Callable[[str, AttributeValue], AttributeValue | None]
"""``callback(key, value)``: the value to export (maybe changed), or ``None`` to drop it."""

# A span with one of these is a database call: its error text quotes the statement.
_DB_KEYS: Final = ("db.statement", "db.query.text", "db.system.name", "db.system")
_ERROR_TEXT_KEYS: Final = frozenset({"exception.message", "exception.stacktrace"})

_MAX_CACHED_KEYS: Final = 4096


def _is_number(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    if isinstance(value, tuple | list):
        return all(isinstance(item, int | float) for item in value)
    return False


class Scrubber:
    """The span transform: a copy of the span with secret-looking values redacted.

    A span with nothing to redact (and no callback) is returned as it is, with
    no copy. Thread-safe; the key cache is bounded (cleared when full).
    """

    def __init__(
        self,
        extra_patterns: Iterable[str] = (),
        callback: ScrubCallback | None = None,
        *,
        max_value_length: int | None = None,
        max_cached_keys: int = _MAX_CACHED_KEYS,
        sanitize_db_statements: bool = True,
    ) -> None:
        self._patterns = tuple(re.compile(p, re.IGNORECASE) for p in extra_patterns)
        self._sanitize_sql = sanitize_db_statements
        self._callback = callback
        self._max_value_length = max_value_length
        self._max_cached = max_cached_keys
        self._decisions: dict[str, int] = {}
        # The keys decided safe, as a set: "all keys of this span are safe" is then
        # one C-level subset test, the common case on the export thread.
        self._safe_keys: set[str] = set()
        self._lock = threading.Lock()
        self._callback_failed = False

    @classmethod
    def from_config(cls, config: ScrubSettings) -> Scrubber | None:
        """The scrubber a manager installs by default; None when ``redact_secrets`` is off."""
        if not config.redact_secrets:
            return None
        return cls(
            config.redact_patterns,
            config.redact_callback,
            max_value_length=config.max_attribute_length,
            sanitize_db_statements=config.sanitize_db_statements,
        )

    def decision(self, key: str) -> int:
        """``0`` keep, ``1`` redact, ``2`` redact unless the value is a number, ``3``-``6``
        judge the value by its shape (a URL, a host, a statement, free text)."""
        found = self._decisions.get(key)
        if found is not None:
            return found
        found = classify(key, self._patterns)
        with self._lock:
            if len(self._decisions) >= self._max_cached:
                # A flood of distinct keys (ids in keys) must not grow memory.
                self._decisions.clear()
                self._safe_keys.clear()
            self._decisions[key] = found
            if found == SAFE:
                self._safe_keys.add(key)
        return found

    @property
    def unchanged_keys(self) -> AbstractSet[str] | None:
        """Keys known safe: a span with no events, no links and no status description
        whose attributes have only these keys is returned as it is (None when a
        callback may change any value). Event and link values and descriptions are
        free text, judged by their shape."""
        return self._safe_keys if self._callback is None else None

    def value_unchanged(self, key: str, value: object) -> bool:
        """True when a span attribute ``key=value`` would be exported as it is.

        For the one-pass path: a key judged by its value (a URL, a host, a
        statement, free text) whose value has nothing to redact. A statement is
        judged under every dialect's reading, which changes it if any one would.
        """
        if self._callback is not None:
            return False
        verdict = self._decisions.get(key)
        if verdict is None:
            verdict = self.decision(key)
        if verdict == SAFE:
            return True
        if verdict < URL or not isinstance(value, str):
            return False
        return self._shaped(verdict, value, {}, False) is value

    def is_secret(self, key: str) -> bool:
        return self.decision(key) == SECRET

    def __call__(self, span: ReadableSpan) -> ReadableSpan:
        # The private fields: the span has ended, and the public properties copy.
        attributes = self._scrubbed(span._attributes)
        database = self._is_database_call(span._attributes)
        status = span._status
        description = status.description
        if description:
            redacted = self._free_text(description, database)
            if redacted is not description:
                status = Status(status.status_code, redacted)
        if not has_items(span._events) and not has_items(span._links):
            if attributes is None and status is span._status:
                return span
            return self._copy(span, attributes, [], [], status)
        events = [
            self._scrubbed(event.attributes, text=True, database=database)
            for event in ended_items(span._events)
        ]
        links = [self._scrubbed(link.attributes, text=True) for link in ended_items(span._links)]
        if (
            attributes is None
            and status is span._status
            and all(e is None for e in events)
            and all(x is None for x in links)
        ):
            return span
        return self._copy(span, attributes, events, links, status)

    def _is_database_call(self, original: Attributes) -> bool:
        attributes = ended_attributes(original)
        return bool(attributes) and any(key in attributes for key in _DB_KEYS)

    def _free_text(self, text: str, database: bool) -> str:
        """Free text by shape; a database call's error text loses the statement's values."""
        if database and self._sanitize_sql:
            return redact_db_error(text, sanitize_sql)
        return redact_text(text)

    def _scrubbed(
        self, original: Attributes, *, text: bool = False, database: bool = False
    ) -> BoundedAttributes | None:
        """The redacted attributes, or None when nothing changes.

        ``text``: every string value is free text too (event and link attributes);
        ``database``: the span is a database call, whose error text quotes values.
        """
        attributes = ended_attributes(original)
        if not attributes:
            return None
        if self._callback is None and not text and attributes.keys() <= self._safe_keys:
            return None
        kept: dict[str, AttributeValue] = {}
        changed = False
        for key, value in attributes.items():
            if database and key in _ERROR_TEXT_KEYS and isinstance(value, str):
                new: AttributeValue | None = self._free_text(value, database)
            else:
                new = self._value(key, value, attributes, text)
            if new is None:
                changed = True
                continue
            changed = changed or new is not value
            kept[key] = new
        if not changed:
            return None
        bounded = BoundedAttributes(
            maxlen=None, attributes=kept, immutable=True, max_value_len=self._max_value_length
        )
        dropped = original.dropped if isinstance(original, BoundedAttributes) else 0
        bounded.dropped = dropped + len(attributes) - len(kept)
        return bounded

    def _value(
        self,
        key: str,
        value: AttributeValue,
        attributes: Mapping[str, AttributeValue],
        text: bool,
    ) -> AttributeValue | None:
        """What ``key``'s ``value`` is exported as (the same object when unchanged)."""
        verdict = self._decisions.get(key)
        if verdict is None:
            verdict = self.decision(key)
        if verdict == SECRET or (verdict == SECRET_UNLESS_NUMBER and not _is_number(value)):
            return value if value == REDACTED else REDACTED
        if isinstance(value, str):
            new = self._shaped(verdict, value, attributes, text)
            if new is not value:
                return new
        elif text and isinstance(value, tuple | list):
            items = [redact_text(item) if isinstance(item, str) else item for item in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                return tuple(items)
        return value if self._callback is None else self._call_back(key, value)

    def _shaped(
        self, verdict: int, value: str, attributes: Mapping[str, AttributeValue], text: bool
    ) -> str:
        if verdict == URL:
            return redact_url(value)
        if verdict == QUERY:
            return redact_query(value)
        if verdict == HOST:
            return value.rsplit("@", 1)[1] if "@" in value else value
        if verdict == SQL and self._sanitize_sql:
            system = attributes.get("db.system.name") or attributes.get("db.system")
            sanitized = sanitize_sql(value, system if isinstance(system, str) else None)
            return value if sanitized == value else sanitized
        if verdict in (TEXT, SQL) or text:
            return redact_text(value)
        return value

    def _call_back(self, key: str, value: AttributeValue) -> AttributeValue | None:
        callback = self._callback
        assert callback is not None
        try:
            return callback(key, value)
        except Exception as exc:
            # A broken callback must not let the value through unchecked.
            if not self._callback_failed:
                self._callback_failed = True
                _logger.warning("tenantrace: scrub callback raised %r; value redacted", exc)
            return REDACTED

    @staticmethod
    def _copy(
        span: ReadableSpan,
        attributes: BoundedAttributes | None,
        events: list[BoundedAttributes | None],
        links: list[BoundedAttributes | None],
        status: Status,
    ) -> ReadableSpan:
        new_events: BoundedList[Event] = BoundedList(None)
        for event, scrubbed in zip(span.events, events, strict=True):
            if scrubbed is None:
                new_events.append(event)
            else:
                new_events.append(
                    Event(event.name, scrubbed, timestamp=event.timestamp, limit=None)
                )
        new_events.dropped = span.dropped_events
        new_links: BoundedList[Link] = BoundedList(None)
        for link, scrubbed in zip(span.links, links, strict=True):
            new_links.append(link if scrubbed is None else Link(link.context, scrubbed))
        new_links.dropped = span.dropped_links
        return rebuilt_span(
            span,
            attributes=attributes if attributes is not None else span.attributes,
            events=new_events,
            links=new_links,
            status=status,
        )
