"""What the ``tenantrace`` commands share: their exit codes and ``parse_duration``."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

EXIT_OK = 0
EXIT_DEGRADED = 1
EXIT_UNHEALTHY = 2
EXIT_FAILURE = 2  # as argparse's usage errors
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` or ``"1w"`` as a ``timedelta``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 1h or 2d: {text!r}")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise argparse.ArgumentTypeError(f"too long a duration: {text!r}") from None
