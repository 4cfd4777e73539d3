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
# resource group key -> [resource entry, first scope's group key, its schema_url field,
#                        [its scope field, spans...], None or the other scopes:
#                        {scope group key -> (schema_url field, [scope field, spans...])}]
# (most resources have spans of one scope in a request: no dict for them)
Groups = dict[int, list[Any]]

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
) -> list[bytes]:
    """The list the spans of this resource and scope go to, in this request.

    ``seen`` (one per request) pins each object to the entry it got first in the
    request, so a cache emptied meanwhile by another caller cannot split its spans.
    A tenant's Resource keeps its entry for good, so it needs no pinning: with
    thousands of tenants a request holds a group per span, and each group is a
    list or two, not more (what a group allocates, the garbage collector walks).
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
    else:  # the SDK writes an empty scope, and no schema_url
        scope_entry, key = None, None
    group = groups.get(entry[1])
    if group is None:
        fields = [scope_entry[2] if scope_entry else EMPTY_MESSAGE]
        groups[entry[1]] = [entry, key, scope_entry[3] if scope_entry else b"", fields, None]
        return fields
    if group[1] == key:
        first: list[bytes] = group[3]
        return first
    others = group[4]
    if others is None:
        others = group[4] = {}
    found = others.get(key)
    if found is None:
        fields = [scope_entry[2] if scope_entry else EMPTY_MESSAGE]
        others[key] = (scope_entry[3] if scope_entry else b"", fields)
        return fields
    other: list[bytes] = found[1]
    return other


def _scope_spans(schema: bytes, fields: list[bytes], out: list[bytes]) -> int:
    """Append one ``ScopeSpans`` field to ``out``; its size in bytes."""
    n = sum(map(len, fields)) + len(schema)
    length = VARINTS[n] if n < VARINT_TABLE else varint(n)
    out += (b"\x12", length)
    out += fields
    out.append(schema)
    return 1 + len(length) + n


def assemble(groups: Groups) -> bytes:
    """``ExportTraceServiceRequest``: resource_spans 1; ``ResourceSpans``: resource 1,
    scope_spans 2, schema_url 3; ``ScopeSpans``: scope 1, spans 2, schema_url 3.

    Lengths are summed, not joined, and a resource with spans of one scope (most
    of them) is written without a call: with thousands of tenants a request holds
    a group per span."""
    out: list[bytes] = []
    table, table_size = VARINTS, VARINT_TABLE
    for (_, _, resource_field, resource_schema), _, schema, fields, others in groups.values():
        n = sum(map(len, fields)) + len(schema)
        length = table[n] if n < table_size else varint(n)
        if others is None:
            total = len(resource_field) + 1 + len(length) + n + len(resource_schema)
            out += (
                b"\x0a",
                table[total] if total < table_size else varint(total),
                resource_field,
                b"\x12",
                length,
            )
            out += fields
            out += (schema, resource_schema)
            continue
        # The ResourceSpans' length goes before its body: keep its place, fill it after.
        at = len(out)
        out += (b"\x0a", b"", resource_field, b"\x12", length)
        out += fields
        out.append(schema)
        total = len(resource_field) + 1 + len(length) + n + len(resource_schema)
        for other_schema, other_fields in others.values():
            total += _scope_spans(other_schema, other_fields, out)
        out.append(resource_schema)
        out[at + 1] = table[total] if total < table_size else varint(total)
    return b"".join(out)
