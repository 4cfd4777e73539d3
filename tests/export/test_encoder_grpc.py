"""The encoder's bytes, sent as they are, are accepted by a real OTLP/gRPC receiver.

An in-process grpcio server runs opentelemetry-proto's TraceService; the client
sends the encoded request as raw bytes (no request serializer) to the Export
method and the server must parse it into the request the SDK's encoder builds.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tenantrace.export import encode_spans

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _Receiver(TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        self.requests.append(request)
        return ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, grpc.Channel]]:
    servicer = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, channel
    finally:
        channel.close()
        server.stop(grace=None)


def _spans() -> list[object]:
    spans: list[object] = []
    for tenant in ("acme", "globex", "initech"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource({"service.name": "svc", "tenant.id": tenant}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tenantrace.tests", "1.0", attributes={"scope.k": 1})
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as parent:
            parent.set_attribute("http.method", "GET")
            parent.set_attribute("tags", ("a", "b"))
            parent.add_event("received", {"bytes": 512, "ratio": 0.5})
            with tracer.start_as_current_span(
                "query", links=[Link(parent.get_span_context(), {"why": "batch"})]
            ) as child:
                child.set_attribute("db.statement", "SELECT 1 -- żółw")
                child.set_status(Status(StatusCode.ERROR, "timeout"))
        spans += exporter.get_finished_spans()
        provider.shutdown()
    return spans


def test_the_receiver_parses_the_raw_bytes_into_the_sdk_request(
    receiver: tuple[_Receiver, grpc.Channel],
) -> None:
    servicer, channel = receiver
    spans = _spans()
    export = channel.unary_unary(
        _EXPORT,
        request_serializer=None,  # the bytes go on the wire as they are
        response_deserializer=ExportTraceServiceResponse.FromString,
    )
    response = export(encode_spans(spans), timeout=10)  # type: ignore[arg-type]
    assert isinstance(response, ExportTraceServiceResponse)
    assert not response.HasField("partial_success")
    (received,) = servicer.requests
    assert received == sdk_encode(spans)  # type: ignore[arg-type]
    assert len(received.resource_spans) == 3
    assert sum(len(s.spans) for rs in received.resource_spans for s in rs.scope_spans) == 6
