"""Header maps of any shape, reduced to ``lowercase name -> [values]``.

A carrier arrives as a plain dict, an ``httpx``/Starlette ``Headers`` (repeated
fields kept), an ASGI ``[(b"name", b"value"), ...]`` list, a WSGI environ
(``HTTP_TRACEPARENT``), AMQP headers with ``bytes`` values, or garbage. Names
are matched case-insensitively (W3C Trace Context: "vendors MUST expect the
header name in any case"); bytes are decoded as Latin-1, as HTTP field values
are octets; repeated fields keep their order so they can be combined as
RFC 9110 section 5.3 says. Everything is bounded before any parser sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

from opentelemetry.propagators.textmap import Getter

from tenantrace.instrumentation.tenants import is_valid_tenant_id
from tenantrace.propagation.limits import (
    MAX_CARRIER_ITEMS,
    MAX_HEADER_VALUE_CHARS,
    MAX_VALUES_PER_HEADER,
)

__all__ = [
    "PROPAGATION_FIELDS",
    "CarrierGetter",
    "SpanCarrier",
    "collect_fields",
    "header_view",
    "is_wsgi_environ",
    "lowered_names",
]

Fields = dict[str, list[str]]

PROPAGATION_FIELDS: Final = frozenset(
    {
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
    }
)
"""The header names the built-in propagators read (W3C Trace Context, W3C Baggage, B3)."""

_WSGI_PREFIX: Final = "HTTP_"
# Nested value lists deeper than this are not headers anyone sends; ignored.
_MAX_DEPTH: Final = 2


class SpanCarrier(dict[str, str]):
    """A carrier made in this process by ``create_carrier_from_span``.

    It is an ordinary JSON-serialisable ``dict`` of headers, and it also
    remembers, as a Python attribute rather than as text, the tenant it was
    captured under. Extracting this very object in the same process restores
    that tenant without consulting the trust policy: nothing on a wire chose
    it. A copy, a JSON round trip or a pickle is a plain ``dict`` again and is
    judged by the trust policy like any inbound carrier.
    """

    __slots__ = ("_tenant",)

    def __init__(self, headers: Mapping[str, str], tenant: str | None) -> None:
        super().__init__(headers)
        self._tenant = tenant if is_valid_tenant_id(tenant) else None

    @property
    def tenant(self) -> str | None:
        return self._tenant

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


class CarrierGetter(Getter[Mapping[str, list[str]]]):
    """An OpenTelemetry ``Getter`` over collected fields (names already lowercase)."""

    def get(self, carrier: Mapping[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key.lower())

    def keys(self, carrier: Mapping[str, list[str]]) -> list[str]:
        return list(carrier)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return None


def _name(key: object) -> str | None:
    text = _text(key)
    if text is None or not text.isascii():
        return None
    return text.lower()


def _environ_name(key: object) -> str | None:
    """A WSGI environ's header name: ``HTTP_X_B3_TRACEID`` -> ``x-b3-traceid``; other keys
    (``CONTENT_TYPE``, ``wsgi.input``, a ``traceparent`` key) are not request headers."""
    if not isinstance(key, str) or not key.startswith(_WSGI_PREFIX) or not key.isascii():
        return None
    return key[len(_WSGI_PREFIX) :].replace("_", "-").lower()


def is_wsgi_environ(headers: object) -> bool:
    """True for a WSGI environ (PEP 3333 requires ``wsgi.version``): only there is
    ``HTTP_X_NAME`` the header ``x-name``. In any other carrier it is a header of that
    very name, which a client may send to pass for another header."""
    try:
        return isinstance(headers, Mapping) and "wsgi.version" in headers
    except Exception:  # a hostile Mapping
        return False


def _values(value: object, depth: int = 0, *, bounded: bool = True) -> Iterator[str | None]:
    """The text values of one header; None stands for one too long to look at."""
    text = _text(value)
    if text is not None:
        yield text if not bounded or len(text) <= MAX_HEADER_VALUE_CHARS else None
        return
    if depth < _MAX_DEPTH and isinstance(value, list | tuple):
        for item in value[: MAX_VALUES_PER_HEADER + 1] if bounded else value:
            yield from _values(item, depth + 1, bounded=bounded)


def _items(headers: object) -> Iterable[Any]:
    if isinstance(headers, Mapping):
        multi = getattr(headers, "multi_items", None)
        if callable(multi):  # httpx / Starlette Headers: keeps repeated fields apart
            items = multi()
            if isinstance(items, Iterable):
                return items
        return headers.items()
    if isinstance(headers, list | tuple):  # ASGI scope["headers"] and similar pair lists
        return headers
    return ()


def collect_fields(
    headers: object,
    wanted: frozenset[str] | None = PROPAGATION_FIELDS,
    on_oversize: Callable[[str], object] | None = None,
    *,
    bounded: bool = True,
) -> Fields:
    """``lowercase name -> values`` of the ``wanted`` names (all names when None).

    Never raises: items that are not ``(name, value)`` pairs of text or bytes
    are skipped. ``bounded`` (for what parsers read): values longer than any
    legal propagation header are skipped and reported to ``on_oversize(name)``,
    at most ``MAX_CARRIER_ITEMS`` items are looked at. Unbounded, for the
    headers a trusted gateway sets: no padding a client adds hides them (the
    HTTP server bounds a request's headers).
    """
    if bounded and type(headers) is dict:
        fast = _collect_plain(headers, wanted)
        if fast is not None:
            return fast
    name_of = _environ_name if is_wsgi_environ(headers) else _name
    fields: Fields = {}
    try:
        for index, item in enumerate(_items(headers)):
            if bounded and index >= MAX_CARRIER_ITEMS:
                break
            if not isinstance(item, tuple | list) or len(item) != 2:
                continue
            name = name_of(item[0])
            if name is None or (wanted is not None and name not in wanted):
                continue
            found = fields.setdefault(name, [])
            for text in _values(item[1], bounded=bounded):
                if bounded and len(found) > MAX_VALUES_PER_HEADER:
                    break  # one over the limit is kept so callers can tell it overflowed
                if text is not None:
                    found.append(text)
                elif on_oversize is not None:
                    on_oversize(name)
            if not found:
                del fields[name]
    except Exception:  # a hostile Mapping may raise from items(); what we have is kept
        return fields
    return fields


def lowered_names(headers: dict[Any, Any]) -> str | None:
    """All names of a ``dict`` lowercased in one string, each as ``NUL name NUL``.

    ``NUL + name + NUL in lowered`` then tells, in C, whether some key equals
    ``name`` ignoring case, and ``lowered.count(...)`` how many do. None when
    a key is not an ASCII ``str`` (the general path handles those).
    """
    try:
        joined = "\0" + "\0\0".join(headers) + "\0"
    except TypeError:
        return None
    return joined.lower() if joined.isascii() else None


# Up to this many items a plain loop beats the joined-string lookups below.
_SMALL: Final = 4


def _collect_small(headers: dict[Any, Any], wanted: frozenset[str]) -> Fields | None:
    fields: Fields = {}
    for key, value in headers.items():
        if type(key) is not str or type(value) is not str or not key.isascii():
            return None
        name = key.lower()
        if name not in wanted:
            if name.startswith("http_"):
                return None  # maybe a WSGI environ
            continue
        if name in fields or len(value) > MAX_HEADER_VALUE_CHARS:
            return None  # repeated fields spelled in different cases, or oversized
        fields[name] = [value]
    return fields


def _lowercase_names(headers: dict[Any, Any]) -> list[str] | None:
    """The names of ``headers`` lowercased, in order; None unless all are plain ASCII ``str``."""
    try:
        joined = "\0".join(headers)
    except TypeError:  # a name that is not a str
        return None
    if not joined.isascii():
        return None
    lowered = joined.lower()
    if "http_" in lowered:  # maybe a WSGI environ (HTTP_TRACEPARENT)
        return None
    names = lowered.split("\0")
    return names if len(names) == len(headers) else None  # else a name holds NUL


def _collect_plain(headers: dict[Any, Any], wanted: frozenset[str] | None) -> Fields | None:
    """The common case, a ``dict`` of ``str`` headers, without a Python loop over every item.

    Returns a result only when it is certainly what the general path would
    give: ASCII ``str`` names, no two equal ignoring case, and every wanted
    name present under its lowercase spelling with a ``str`` value. Otherwise
    None, and ``collect_fields`` takes the general path.
    """
    if wanted is None or len(headers) > MAX_CARRIER_ITEMS:
        return None
    if len(headers) <= _SMALL:
        return _collect_small(headers, wanted)
    names = _lowercase_names(headers)
    if names is None:
        return None
    unique = set(names)
    present = wanted.intersection(unique)
    if present and len(unique) != len(names):
        return None  # repeated fields spelled in different cases
    fields: Fields = {}
    for name in present:
        value = headers.get(name)
        if type(value) is not str or len(value) > MAX_HEADER_VALUE_CHARS:
            return None  # spelled otherwise, not a str, or oversized
        fields[name] = [value]
    return fields


def header_view(headers: object) -> Mapping[str, str]:
    """All headers as a read-only ``lowercase name -> value`` map, repeats joined by ``", "``.

    Real header names only (``HTTP_*`` is rewritten in a WSGI environ alone),
    and every item looked at, so no padding hides the header a gateway set.
    """
    fields = collect_fields(headers, None, bounded=False)
    return MappingProxyType({name: ", ".join(values) for name, values in fields.items()})
