"""Size bounds of everything read from, or written to, a carrier.

The W3C figures are the specifications' own: Baggage allows 8192 bytes, 180
list-members and 4096 bytes per member; Trace Context allows 32 ``tracestate``
list-members. The others bound the work done on hostile input before any
parser sees it: a value larger than the largest legal header is never parsed.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "MAX_BAGGAGE_MEMBER_BYTES",
    "MAX_CARRIER_ITEMS",
    "MAX_HEADER_VALUE_CHARS",
    "MAX_MESSAGE_CARRIER_CHARS",
    "MAX_TRACEPARENT_CHARS",
    "MAX_TRACESTATE_MEMBERS",
    "MAX_VALUES_PER_HEADER",
    "is_safe_header_value",
    "is_token",
    "lowered_names_are_tokens",
]

MAX_BAGGAGE_BYTES: Final = 8192
"""W3C Baggage: a platform must propagate at least, and we accept at most, 8192 bytes."""

MAX_BAGGAGE_MEMBERS: Final = 180
"""W3C Baggage: at most 180 list-members."""

MAX_BAGGAGE_MEMBER_BYTES: Final = 4096
"""W3C Baggage: at most 4096 bytes per list-member."""

MAX_TRACESTATE_MEMBERS: Final = 32
"""W3C Trace Context: at most 32 ``tracestate`` list-members."""

MAX_TRACEPARENT_CHARS: Final = 512
"""Future ``traceparent`` versions may be longer than 55; anything beyond 512 is hostile."""

MAX_HEADER_VALUE_CHARS: Final = MAX_BAGGAGE_BYTES
"""No propagation header can legally be longer than the baggage limit; longer ones are skipped."""

MAX_VALUES_PER_HEADER: Final = 32
"""Repeated fields of one name kept (``tracestate`` needs at most 32, one member each)."""

MAX_CARRIER_ITEMS: Final = 512
"""Header items looked at per carrier; a request with more is not a request we trace."""

MAX_MESSAGE_CARRIER_CHARS: Final = 4 * MAX_BAGGAGE_BYTES
"""A carrier serialised as JSON text inside a message is parsed only below this size."""

# Visible ASCII, space and horizontal tab are what RFC 9110 field values may
# hold for our headers; CR, LF, NUL, DEL and the other control bytes are not.
# bytes.translate deletes them in C, much faster than a regex over the text.
_CONTROL_BYTES: Final = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
_LOWER_TOKEN_BYTES_AND_NUL: Final = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz\x00"


def is_safe_header_value(value: str) -> bool:
    """True when ``value`` can be written into a header: ASCII without a control byte."""
    if not value.isascii():
        return False
    raw = value.encode("ascii")
    return len(raw.translate(None, _CONTROL_BYTES)) == len(raw)


# RFC 9110 token: what a header name (and a W3C baggage key) is made of.
_TOKEN_CHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN: Final = re.compile(_TOKEN_CHARS + "{1,256}")


def is_token(name: str) -> bool:
    """True when ``name`` is an RFC 9110 token of at most 256 characters."""
    return _TOKEN.fullmatch(name) is not None


def lowered_names_are_tokens(lowered: str) -> bool:
    """For ``carriers.lowered_names`` output (ASCII): every name is a token, none empty."""
    if "\0\0\0" in lowered:
        return False
    return not lowered.encode("ascii").translate(None, _LOWER_TOKEN_BYTES_AND_NUL)
