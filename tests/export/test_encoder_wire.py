"""The protobuf wire primitives, against protobuf's own encoder."""

from __future__ import annotations

import pytest
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from hypothesis import given
from hypothesis import strategies as st

from tenantrace.export import _wire


@given(st.one_of(st.integers(0, (1 << 64) - 1), st.integers(0, 5000)))
def test_varints_are_protobufs(value: int) -> None:
    assert _wire.varint(value) == _VarintBytes(value)


def test_every_precomputed_varint_is_protobufs() -> None:
    assert all(_wire.VARINTS[i] == _VarintBytes(i) for i in range(_wire.VARINT_TABLE))


def test_a_negative_varint_or_uint32_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        _wire.varint(-1)
    with pytest.raises(ValueError, match="uint32"):
        _wire.uint32_field(b"\x50", -1)
    with pytest.raises(ValueError, match="uint32"):
        _wire.uint32_field(b"\x50", 1 << 32)


def test_key_prefix_is_cached_and_refuses_what_the_sdk_refuses() -> None:
    assert _wire.key_prefix("k") is _wire.key_prefix("k")
    with pytest.raises(TypeError):
        _wire.key_prefix(5)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        _wire.key_prefix("\ud800")
