"""What the enumerated settings of ``TelemetryConfig`` may be: the telemetry level,
the literal choices, and the syntax of a header name.

Both the config's validation and the environment's parsing check against these.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final, Literal

__all__ = [
    "CROSS_TENANT",
    "ENCODERS",
    "EXPORTERS",
    "HEADER_NAME",
    "PROTOCOLS",
    "CrossTenantTraces",
    "ExporterType",
    "OtlpEncoder",
    "OtlpProtocol",
    "TelemetryLevel",
]

ExporterType = Literal["otlp", "console", "memory", "none"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpEncoder = Literal["tenantrace", "sdk"]
CrossTenantTraces = Literal["split", "keep"]

EXPORTERS: tuple[str, ...] = ("otlp", "console", "memory", "none")
PROTOCOLS: tuple[str, ...] = ("grpc", "http/protobuf")
ENCODERS: tuple[str, ...] = ("tenantrace", "sdk")
CROSS_TENANT: tuple[str, ...] = ("split", "keep")
HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")


class TelemetryLevel(Enum):
    """How much is traced. A span whose level is above the configured one is a no-op."""

    DISABLED = "disabled"  # No telemetry
    BASIC = "basic"  # Only search operations
    DETAILED = "detailed"  # Search + encoders + backend
    VERBOSE = "verbose"  # Everything including internal operations

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, value: TelemetryLevel | str) -> TelemetryLevel:
        """Accept a level or its name/value in any case; raise ``ValueError`` otherwise."""
        if isinstance(value, TelemetryLevel):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            for level in cls:
                if key in (level.value, level.name.lower()):
                    return level
        choices = ", ".join(level.value for level in cls)
        raise ValueError(f"unknown telemetry level {value!r}; expected one of: {choices}")


_RANKS = {
    TelemetryLevel.DISABLED: 0,
    TelemetryLevel.BASIC: 1,
    TelemetryLevel.DETAILED: 2,
    TelemetryLevel.VERBOSE: 3,
}
