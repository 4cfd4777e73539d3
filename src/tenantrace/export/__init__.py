"""Export-side helpers: a fast OTLP/protobuf encoder for SDK ended spans.

:func:`encode_spans` returns the serialized ``ExportTraceServiceRequest`` that
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(spans)
.SerializeToString()`` returns, without building protobuf messages.
"""

from tenantrace.export.encoder import clear_caches, encode_spans

__all__ = ["clear_caches", "encode_spans"]
