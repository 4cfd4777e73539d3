"""Resources and instrumentation scopes: encoded once each, and the grouping of a request.

The SDK encoder groups a request's spans in dicts keyed by the Resource and by
the InstrumentationScope, i.e. by value (``Resource.__eq__`` compares the
attributes and schema_url, ``InstrumentationScope.__eq__`` the name, version,
schema_url and attributes), and hashes a Resource (a JSON dump of its
attributes) for every span. Here each object is looked up by identity; the
first time an object is seen its fields are encoded and it gets a group key
from a value-keyed dict, so that equal objects share a key and one
ResourceSpans (ScopeSpans), as in the SDK. Within a request, a group is written
with the first of its objects, as the SDK writes the first dict key. (Not a
WeakKeyDictionary: it would hash a Resource by value, a JSON dump, per lookup.)

A Resource whose class declares ``otlp_entry`` (a tenant's ``TenantResource``)
keeps its entry itself: the registry already bounds how many there are, and a
process with more tenants than this cache holds would otherwise re-encode (and
hash as JSON) a Resource per span, round after round.

Bound: at most :data:`RESOURCE_CACHE_SIZE` resources and as many scopes (strong
references: an id is never reused while cached). When full, a cache is emptied
between two requests (:func:`bound_caches`), never during one, so a request's
keys all come from one generation, and a request pins each object to the entry
it got first. Under concurrent callers the caches stay consistent (each step is
one dict operation under the GIL); the one thing another caller's emptying can
do to a request is give it two ResourceSpans (ScopeSpans) for two *equal but
distinct* objects, which is still a valid request.
"""

from __future__ import annotations

import itertools
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from tenantrace.export._wire import (
    VARINT_TABLE,
    VARINTS,
    encode_attributes,
    length_field,
    string_field,
    uint32_field,
    varint,
)

__all__ = [
    "RESOURCE_CACHE_SIZE",
    "Entry",
    "Groups",
    "assemble",
    "bound_caches",
    "clear_caches",
    "group_for",
]

# As many as tenantrace keeps tenant Resources for (16,384, ~0.6 KB each here):
# 10,000 tenants round-robin must not re-encode a Resource per span.
RESOURCE_CACHE_SIZE = 16_384
EMPTY_MESSAGE = b"\x0a\x00"  # ScopeSpans.scope holding an empty InstrumentationScope

# (object, group key, its field in ResourceSpans/ScopeSpans, the schema_url field)
Entry = tuple[Any, int, bytes, bytes]


class Groups:
    """The groups of one request: ResourceSpans in order of first appearance, each with
    the ScopeSpans of its first scope and, rarely, others.

    Parallel lists, not an object per group: with thousands of tenants a request
    holds a group per span, and every container a group allocates counts toward
    the garbage collector's next collection (the young generation is collected
    every 700 net allocations, a full collection follows every 100 of those).
    A group's spans go to a ``bytearray`` (not tracked by the collector).
    """

    __slots__ = ("bodies", "entries", "index", "others", "schemas", "scope_keys")

    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # resource group key -> position
        self.entries: list[Entry] = []  # the resource's entry
        self.scope_keys: list[int | None] = []  # the first scope's group key
        self.schemas: list[bytes] = []  # its schema_url field
        self.bodies: list[bytearray] = []  # its scope field, then its spans
        # position -> {scope group key -> (schema_url field, scope field and spans)}
        self.others: dict[int, dict[int | None, tuple[bytes, bytearray]]] = {}


_group_ids = itertools.count()  # keys are never reused, whatever is emptied
_resources: dict[int, Entry] = {}  # id(resource) -> entry
_resource_keys: dict[Resource, int] = {}  # by value
_scopes: dict[int, Entry] = {}  # id(scope) -> entry
_scope_keys: dict[InstrumentationScope, int] = {}  # by value


def clear_caches() -> None:
    for cache in (_resources, _resource_keys, _scopes, _scope_keys):
        cache.clear()


def bound_caches() -> None:
    """Empty a full cache; called before each request."""
    if len(_resources) >= RESOURCE_CACHE_SIZE or len(_resource_keys) >= RESOURCE_CACHE_SIZE:
        _resources.clear()
        _resource_keys.clear()
    if len(_scopes) >= RESOURCE_CACHE_SIZE or len(_scope_keys) >= RESOURCE_CACHE_SIZE:
        _scopes.clear()
        _scope_keys.clear()


def _resource_entry(resource: Resource) -> Entry:
    """``Resource``: attributes 1, dropped_attributes_count 2; ResourceSpans.schema_url 3."""
    key = _resource_keys.setdefault(resource, next(_group_ids))
    body: list[bytes] = []
    skipped = encode_attributes(resource.attributes or {}, b"\x0a", body)
    body.append(uint32_field(b"\x10", skipped))
    entry: Entry = (
        resource,
        key,
        length_field(b"\x0a", b"".join(body)),
        string_field(b"\x1a", resource.schema_url),
    )
    if hasattr(type(resource), "otlp_entry"):
        # A tenant's: kept on it, without itself in it (no cycle to collect).
        entry = (None, *entry[1:])
        resource.otlp_entry = entry  # type: ignore[attr-defined]
    else:
        _resources[id(resource)] = entry
    return entry


def _scope_entry(scope: InstrumentationScope) -> Entry:
    """``InstrumentationScope``: name 1, version 2, attributes 3, dropped_attributes_count 4;
    ScopeSpans.schema_url 3."""
    key = _scope_keys.setdefault(scope, next(_group_ids))
    body = [string_field(b"\x0a", scope.name), string_field(b"\x12", scope.version)]
    skipped = encode_attributes(scope.attributes or {}, b"\x1a", body)
    body.append(uint32_field(b"\x20", skipped))
    entry = (
        scope,
        key,
        length_field(b"\x0a", b"".join(body)),
        string_field(b"\x1a", scope.schema_url),
    )
    _scopes[id(scope)] = entry
    return entry


def group_for(
    groups: Groups, seen: dict[int, Entry], resource: Resource, scope: InstrumentationScope | None
) -> bytearray:
    """Where the spans of this resource and scope go, in this request.

    ``seen`` (one per request) pins each object to the entry it got first in the
    request, so a cache emptied meanwhile by another caller cannot split its spans.
    A tenant's Resource keeps its entry for good, so it needs no pinning.
    """
    entry = getattr(resource, "otlp_entry", None)
    if entry is None:
        entry = seen.get(id(resource))
        if entry is None:
            entry = _resources.get(id(resource))
            if entry is None or entry[0] is not resource:
                entry = _resource_entry(resource)
            seen[id(resource)] = entry
    if scope:  # as the SDK: ``span.instrumentation_scope or None``
        scope_entry = seen.get(id(scope))
        if scope_entry is None:
            scope_entry = _scopes.get(id(scope))
            if scope_entry is None or scope_entry[0] is not scope:
                scope_entry = _scope_entry(scope)
            seen[id(scope)] = scope_entry
        key: int | None = scope_entry[1]
        field, schema = scope_entry[2], scope_entry[3]
    else:  # the SDK writes an empty scope, and no schema_url
        key, field, schema = None, EMPTY_MESSAGE, b""
    at = groups.index.get(entry[1])
    if at is None:
        groups.index[entry[1]] = len(groups.entries)
        groups.entries.append(entry)
        groups.scope_keys.append(key)
        groups.schemas.append(schema)
        body = bytearray(field)
        groups.bodies.append(body)
        return body
    if groups.scope_keys[at] == key:
        return groups.bodies[at]
    others = groups.others.get(at)
    if others is None:
        others = groups.others[at] = {}
    found = others.get(key)
    if found is None:
        body = bytearray(field)
        others[key] = (schema, body)
        return body
    return found[1]


def assemble(groups: Groups) -> bytes:
    """``ExportTraceServiceRequest``: resource_spans 1; ``ResourceSpans``: resource 1,
    scope_spans 2, schema_url 3; ``ScopeSpans``: scope 1, spans 2, schema_url 3."""
    out: list[bytes | bytearray] = []
    table, table_size = VARINTS, VARINT_TABLE
    others = groups.others
    for at, ((_, _, resource_field, resource_schema), schema, body) in enumerate(
        zip(groups.entries, groups.schemas, groups.bodies, strict=True)
    ):
        n = len(body) + len(schema)
        length = table[n] if n < table_size else varint(n)
        total = len(resource_field) + 1 + len(length) + n + len(resource_schema)
        more = others.get(at) if others else None
        if more is None:  # most resources: spans of one scope
            out += (
                b"\x0a",
                table[total] if total < table_size else varint(total),
                resource_field,
                b"\x12",
                length,
                body,
                schema,
                resource_schema,
            )
            continue
        # The ResourceSpans' length goes before its body: keep its place, fill it after.
        start = len(out)
        out += (b"\x0a", b"", resource_field, b"\x12", length, body, schema)
        for other_schema, other_body in more.values():
            n = len(other_body) + len(other_schema)
            length = table[n] if n < table_size else varint(n)
            out += (b"\x12", length, other_body, other_schema)
            total += 1 + len(length) + n
        out.append(resource_schema)
        out[start + 1] = table[total] if total < table_size else varint(total)
    return b"".join(out)
