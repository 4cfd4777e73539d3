"""Protobuf wire primitives and OTLP attribute values, written by hand.

Only what the OTLP trace request needs: base-128 varints, length-delimited
fields, fixed64/double, and the ``common.v1`` messages ``AnyValue``,
``ArrayValue``, ``KeyValueList`` and ``KeyValue``.

A *field* below is its tag byte(s), then (length-delimited) the varint length,
then the payload. Tags are ``(field_number << 3) | wire_type`` with wire types
0 (varint), 1 (fixed64), 2 (length-delimited) and 5 (fixed32).

Field numbers (opentelemetry/proto/common/v1/common.proto):

- ``AnyValue``: string_value 1, bool_value 2, int_value 3, double_value 4,
  array_value 5, kvlist_value 6, bytes_value 7
- ``ArrayValue``: values 1; ``KeyValueList``: values 1
- ``KeyValue``: key 1, value 2

Values follow the SDK encoder (``opentelemetry.exporter.otlp.proto.common.
_internal._encode_value``) branch for branch, in its order: ``None`` is an empty
``AnyValue``; then bool, str, int, float, bytes, any other ``Sequence`` (an
``ArrayValue`` of the elements, ``None`` elements as empty ``AnyValue``s),
``Mapping`` (a ``KeyValueList`` keyed by ``str(key)``); anything else, and an
int outside int64, cannot be encoded (the SDK logs and leaves the attribute
out; :func:`encode_attributes` leaves it out and counts it, see there).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence

__all__ = [
    "MASK64",
    "any_value",
    "clear_caches",
    "encode_attributes",
    "key_prefix",
    "length_field",
    "pack_double",
    "pack_fixed64",
    "string_field",
    "uint32_field",
    "varint",
]

_logger = logging.getLogger(__name__)

MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT32_MAX = (1 << 32) - 1

pack_fixed64 = struct.Struct("<Q").pack
pack_double = struct.Struct("<d").pack


def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Precomputed varints of 0..VARINT_TABLE-1 (most lengths are below it).
VARINT_TABLE = 2048
VARINTS: tuple[bytes, ...] = tuple(_varint_slow(i) for i in range(VARINT_TABLE))
_B = VARINTS  # one-byte varints are its first 128 entries

#: ``bytes((n + 2, 0x0A, n))``: an AnyValue string's length, tag and the string's length,
#: for n < 126 (all three fit in one byte each).
_STRING_MID: tuple[bytes, ...] = tuple(bytes((n + 2, 0x0A, n)) for n in range(126))


def varint(value: int) -> bytes:
    """The base-128 varint of a non-negative int (ValueError when negative)."""
    if value < VARINT_TABLE:
        if value < 0:
            raise ValueError(f"varint of a negative number: {value}")
        return VARINTS[value]
    return _varint_slow(value)


def length_field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, varint length, payload."""
    n = len(payload)
    return tag + (VARINTS[n] if n < VARINT_TABLE else _varint_slow(n)) + payload


def string_field(tag: bytes, text: str | None) -> bytes:
    """A proto3 string field: nothing for None or "" (the default is not written)."""
    if not text:
        return b""
    return length_field(tag, text.encode("utf-8"))


def uint32_field(tag: bytes, value: int) -> bytes:
    """A proto3 uint32 field: nothing for 0; ValueError outside uint32 (as the SDK)."""
    if not value:
        return b""
    if not 0 <= value <= _UINT32_MAX:
        raise ValueError(f"value out of range for uint32: {value}")
    return tag + varint(value)


_TRUE = b"\x10\x01"
_FALSE = b"\x10\x00"


def any_value(value: object) -> bytes:  # noqa: PLR0911 - one return per type, as the SDK
    """The body of an ``AnyValue`` message for an attribute value (raises when the
    SDK's encoder raises: an unsupported type, an int outside int64, a lone surrogate)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return length_field(b"\x0a", value.encode("utf-8"))
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"value out of range for int64: {value}")
        return b"\x18" + varint(value & MASK64)
    if isinstance(value, float):
        return b"\x21" + pack_double(value)
    if isinstance(value, bytes):
        return length_field(b"\x3a", value)
    if isinstance(value, Sequence):
        array = b"".join([length_field(b"\x0a", any_value(item)) for item in value])
        return length_field(b"\x2a", array)
    if isinstance(value, Mapping):
        kvlist = b"".join(
            [
                length_field(
                    b"\x0a", string_field(b"\x0a", str(key)) + b"\x12" + _lp(any_value(item))
                )
                for key, item in value.items()
            ]
        )
        return length_field(b"\x32", kvlist)
    raise TypeError(f"Invalid type {type(value)} of value {value!r}")


def _lp(payload: bytes) -> bytes:
    n = len(payload)
    return (VARINTS[n] if n < VARINT_TABLE else _varint_slow(n)) + payload


# ------------------------------------------------------------ attribute keys

#: Bounds of the key cache: how many keys, and how long a key may be to be kept.
KEY_CACHE_SIZE = 1024
KEY_CACHE_MAX_LENGTH = 128

# key -> (the KeyValue's key field followed by the value's tag 0x12, its length)
_KEYS: dict[str, tuple[bytes, int]] = {}


def clear_caches() -> None:
    _KEYS.clear()


def key_prefix(key: str) -> tuple[bytes, int]:
    """The encoded start of a KeyValue for ``key`` (its key field, then the value's
    tag), cached within :data:`KEY_CACHE_SIZE` keys; raises for a key the SDK
    could not encode (not a str, a lone surrogate)."""
    cached = _KEYS.get(key)
    if cached is not None:
        return cached
    if not isinstance(key, str):
        raise TypeError(f"attribute key is not a str: {key!r}")
    prefix = string_field(b"\x0a", key) + b"\x12"
    entry = (prefix, len(prefix))
    if len(key) <= KEY_CACHE_MAX_LENGTH:
        if len(_KEYS) >= KEY_CACHE_SIZE:
            _KEYS.clear()
        _KEYS[key] = entry
    return entry


def encode_attributes(attributes: Mapping[str, object], tag: bytes, out: list[bytes]) -> int:
    """Append each attribute as a ``tag`` field holding a ``KeyValue`` to ``out``.

    Returns how many attributes were left out because they cannot be encoded
    (a value of an unsupported type, an int outside int64, a key that is not a
    str, a lone surrogate). The SDK's encoder logs those and leaves them out
    too; the caller adds the count to the message's dropped_attributes_count
    (the SDK does not), so a receiver can tell that something was lost.
    """
    skipped = 0
    keys = _KEYS
    one_byte = _B
    mid = _STRING_MID
    for key, value in attributes.items():
        entry = keys.get(key)
        try:
            if entry is None:
                entry = key_prefix(key)
            prefix, size = entry
            if type(value) is str:
                data = value.encode("utf-8")
                n = len(data)
                total = size + n + 3  # the KeyValue's length when every varint is one byte
                if total < 128:
                    out += (tag, one_byte[total], prefix, mid[n], data)
                    continue
                body = length_field(b"\x0a", data)
            else:
                body = any_value(value)
        except Exception as error:
            skipped += 1
            _logger.warning("Attribute %r left out of the OTLP request: %s", key, error)
            continue
        n = len(body)
        length = VARINTS[n] if n < VARINT_TABLE else _varint_slow(n)
        size += len(length) + n
        out += (
            tag,
            VARINTS[size] if size < VARINT_TABLE else _varint_slow(size),
            prefix,
            length,
            body,
        )
    return skipped
