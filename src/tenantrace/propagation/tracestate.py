"""W3C Trace Context Level 2 ``tracestate``: its parser, and a ``TraceState`` keeping Level 2 keys.

The rules, from the specification's "Tracestate Header" section
(``spec/20-http_request_header_format.md`` of w3c/trace-context, the Level 2
editor's draft) and its processing model:

- Several ``tracestate`` fields are combined into one, in order, as RFC 9110
  section 5.3 (formerly RFC 7230 3.2.2) says: joined with commas.
- ``list = list-member 0*31( OWS "," OWS list-member )``: spaces and tabs
  around members are ignored; empty and whitespace-only members are allowed
  (and are not counted); at most 32 key/value members.
- ``key = ( lcalpha / DIGIT ) 0*255 ( keychar )`` with
  ``keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"``: a key begins with
  ``a-z`` or ``0-9`` and is at most 256 characters in all. Level 1's
  ``tenant@system`` form (at most one ``@``, 241 and 14 characters on either
  side, a letter after it) is gone: ``@`` is an ordinary character after the first.
- ``value = 0*255( chr ) nblk-chr``: 1 to 256 printable ASCII characters
  (0x20-0x7E) other than ``,`` and ``=``, the last not a space; leading spaces
  belong to the value, trailing ones are optional whitespace.
- A header that cannot be parsed MAY be discarded whole, or its invalid members
  alone MAY be discarded (processing model, "a traceparent is received"). We
  discard it whole, as Level 1 did and as the W3C test suite expects: an
  invalid member, or more than 32 members, and no ``tracestate`` is taken
  (the ``traceparent`` still stands).
- Duplicated keys: "only one entry per key is allowed", but a receiver is not
  obliged to clean up another participant's duplicates: it MAY keep them as
  they are or drop them (w3c/trace-context #477 and #552, which also stopped
  the W3C test suite from expecting the whole header to be discarded). A
  ``TraceState`` is a mapping and cannot hold a key twice, so the left-most
  entry is kept (the most recent position: a vendor that updates its entry
  moves it to the left) and the later ones are dropped.

Mutations (``add``, ``update``, ``delete``) follow "Mutating the tracestate
Field": a new or updated key goes to the beginning (left), the order of the
others is kept, adding never leaves a key twice (#477), and when a new key would
make 33 members the right-most member is removed (Level 2's wording of the
32-member limit; OpenTelemetry's own ``add`` refuses the new key instead).
``to_header`` writes the members back unchanged, in order, without the optional
whitespace and empty members.

OpenTelemetry's own ``TraceState`` checks keys with the Level 1 grammar, in its
constructor as in ``add`` and ``update``: a Level 2 key such as ``foo@bar@baz``
or ``1abc`` is silently left out. ``Level2TraceState`` is a subclass (so it is
accepted wherever a ``TraceState`` is: ``SpanContext``, samplers, the
propagator's ``inject``, the OTLP encoder) that keeps its members itself and
overrides every method reading them; the SDK is not patched.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Sequence, ValuesView
from typing import Final, Self

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceState

from tenantrace.propagation.limits import MAX_TRACESTATE_MEMBERS

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_VALUE_CHARS",
    "Level2TraceState",
    "is_valid_key",
    "is_valid_value",
    "parse_tracestate",
    "with_trace_state",
]

MAX_KEY_CHARS: Final = 256
"""``key = ( lcalpha / DIGIT ) 0*255 ( keychar )``: 256 characters in all."""

MAX_VALUE_CHARS: Final = 256
"""``value = 0*255( chr ) nblk-chr``: 256 characters at most."""

_KEY: Final = re.compile(r"[a-z0-9][a-z0-9_\-*/@]*")
_VALUE: Final = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]*[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS: Final = " \t"


def is_valid_key(key: object) -> bool:
    """True for a Level 2 ``tracestate`` key (``@`` anywhere but first, 256 characters at most)."""
    # Lengths first: the patterns then run over at most 256 characters.
    return (
        isinstance(key, str) and 0 < len(key) <= MAX_KEY_CHARS and _KEY.fullmatch(key) is not None
    )


def is_valid_value(value: object) -> bool:
    """True for a ``tracestate`` value: 1-256 of 0x20-0x7E but ``,`` ``=``, no trailing space."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_VALUE_CHARS
        and _VALUE.fullmatch(value) is not None
    )


def _members(fields: Iterable[str]) -> list[tuple[str, str]] | None:
    """The key/value members of the combined fields, duplicates included; None if the
    header is to be discarded (an invalid member, or more than 32 members)."""
    members: list[tuple[str, str]] = []
    for field in fields:
        for raw in field.split(","):
            member = raw.strip(_OWS)
            if not member:  # empty and whitespace-only members are allowed
                continue
            if len(members) == MAX_TRACESTATE_MEMBERS:
                return None
            key, eq, value = member.partition("=")
            if not eq or not is_valid_key(key) or not is_valid_value(value):
                return None
            members.append((key, value))
    return members


def parse_tracestate(fields: Iterable[str]) -> Level2TraceState | None:
    """The ``tracestate`` of one or more header fields, by the Level 2 rules.

    None when the header is discarded: one member is invalid, or there are more
    than 32 key/value members, duplicates counted. Otherwise the members in
    order, a duplicated key keeping its left-most value; empty when the fields
    hold no member. Never raises; time is linear in the input.
    """
    members = _members(fields)
    if members is None:
        return None
    return Level2TraceState(members)


def with_trace_state(ctx: Context, state: TraceState) -> Context:
    """``ctx`` whose current (remote) span context carries ``state`` instead of its own.

    ``ctx`` itself when it has no valid span context or ``state`` is empty: the
    SDK's default ``TraceState`` is kept then.
    """
    context = trace_api.get_current_span(ctx).get_span_context()
    if not context.is_valid or not state:
        return ctx
    carried = SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        context.trace_flags,
        state,
    )
    return trace_api.set_span_in_context(NonRecordingSpan(carried), ctx)


class Level2TraceState(TraceState):
    """An OpenTelemetry ``TraceState`` whose keys follow the Level 2 grammar.

    Immutable, like its base: every mutation returns a new instance. Invalid
    pairs given to the constructor are left out and a repeated key keeps its
    first value (as the base does); more than 32 entries make an empty state
    (as the base does). ``add`` and ``update`` ignore an invalid pair.
    """

    def __init__(self, entries: Sequence[tuple[str, str]] | None = None) -> None:
        super().__init__()  # empty: the base never sees (nor validates) our entries
        members: dict[str, str] = {}
        if entries is not None and len(entries) <= MAX_TRACESTATE_MEMBERS:
            for key, value in entries:
                if key not in members and is_valid_key(key) and is_valid_value(value):
                    members[key] = value
        self._members: Final = members

    @classmethod
    def _of(cls, members: Iterable[tuple[str, str]]) -> Self:
        """An instance holding ``members``, already valid and unique: not checked again."""
        state = cls()
        state._members.update(members)
        return state

    # --------------------------------------------------------------- Mapping

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __getitem__(self, key: str) -> str:
        return self._members[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return str([f"{{key={key}, value={value}}}" for key, value in self._members.items()])

    def keys(self) -> KeysView[str]:
        return self._members.keys()

    def items(self) -> ItemsView[str, str]:
        return self._members.items()

    def values(self) -> ValuesView[str]:
        return self._members.values()

    # ------------------------------------------------------------- mutations

    def _put_first(self, key: str, value: str) -> Self:
        others = [(k, v) for k, v in self._members.items() if k != key]
        # A new key that would make 33 members: the right-most member goes.
        del others[MAX_TRACESTATE_MEMBERS - 1 :]
        return self._of([(key, value), *others])

    def add(self, key: str, value: str) -> Self:
        """A new member at the beginning; ``self`` if the key is present or the pair invalid."""
        if key in self._members or not (is_valid_key(key) and is_valid_value(value)):
            return self
        return self._put_first(key, value)

    def update(self, key: str, value: str) -> Self:
        """``key`` set to ``value`` and moved to the beginning (added if absent, as the base does);
        ``self`` if the pair is invalid."""
        if not (is_valid_key(key) and is_valid_value(value)):
            return self
        return self._put_first(key, value)

    def delete(self, key: str) -> Self:
        """Without ``key``; ``self`` if it is absent."""
        if key not in self._members:
            return self
        return self._of((k, v) for k, v in self._members.items() if k != key)

    # ---------------------------------------------------------------- header

    def to_header(self) -> str:
        """The members as a ``tracestate`` header value, in order."""
        return ",".join(key + "=" + value for key, value in self._members.items())

    @classmethod
    def from_header(cls, header_list: list[str]) -> Self:
        """``parse_tracestate``, empty where it would discard the header."""
        return cls(_members(header_list) or [])

    @classmethod
    def get_default(cls) -> Self:
        return cls()
