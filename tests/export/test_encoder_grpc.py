"""The encoder's bytes, sent as they are, are accepted by a real OTLP/gRPC receiver.

An in-process grpcio server runs opentelemetry-proto's TraceService; the client
sends the encoded request as raw bytes (no request serializer) to the Export
method and the server must parse it into the request the SDK's encoder builds.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from transport_helpers import tenant_spans

from otlp_receivers import GrpcReceiver
from tenantrace.export import encode_spans

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def receiver() -> Iterator[tuple[GrpcReceiver, grpc.Channel]]:
    server = GrpcReceiver(max_workers=2)
    channel = grpc.insecure_channel(server.endpoint)
    try:
        yield server, channel
    finally:
        channel.close()
        server.stop()


def test_the_receiver_parses_the_raw_bytes_into_the_sdk_request(
    receiver: tuple[GrpcReceiver, grpc.Channel],
) -> None:
    servicer, channel = receiver
    spans = tenant_spans()
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
