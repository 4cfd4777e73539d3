"""The export side: tenantrace's own OTLP/protobuf encoder and its gRPC and HTTP transports.

:func:`encode_spans` returns the serialized ``ExportTraceServiceRequest`` that
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(spans)
.SerializeToString()`` returns, without building protobuf messages (and can
write ``tenant.id`` on every span of a tenant). :class:`GrpcSpanExporter` and
:class:`HttpSpanExporter` send those bytes; they are what ``TelemetryConfig``'s
``otlp_encoder="tenantrace"`` (the default) exports with. All load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenantrace.export.encoder import clear_caches, encode_spans
    from tenantrace.export.grpc import GrpcSpanExporter
    from tenantrace.export.http import HttpSpanExporter

__all__ = ["GrpcSpanExporter", "HttpSpanExporter", "clear_caches", "encode_spans"]

# Everything loads on first use: the pipeline's modules import this package's
# siblings at start-up, the encoder and the transports are needed only to export.
_LAZY = {
    "GrpcSpanExporter": "grpc",
    "HttpSpanExporter": "http",
    "clear_caches": "encoder",
    "encode_spans": "encoder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
