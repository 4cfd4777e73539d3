"""OTLP/gRPC span exporter: ``encode_spans`` bytes straight onto a grpcio channel.

``GrpcSpanExporter`` calls ``TraceService/Export`` with the request already
serialized (the channel's request serializer is the identity), so no protobuf
message is built on the way out; only the (small) response is decoded.

It takes the options of the SDK's ``OTLPSpanExporter`` (gRPC) and reads the
same environment variables when an option is not given:

- ``endpoint``: ``host:port`` or a URL (``https://`` means TLS, the path is
  ignored); ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``;
- ``insecure``: ``OTEL_EXPORTER_OTLP_TRACES_INSECURE`` / ``OTEL_EXPORTER_OTLP_INSECURE``,
  else plain text only for an ``http://`` URL;
- TLS: ``credentials``, else the ``OTEL_PYTHON_EXPORTER_OTLP_GRPC_(TRACES_)CREDENTIAL_PROVIDER``
  entry point, else ``OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE`` / ``CLIENT_KEY`` /
  ``CLIENT_CERTIFICATE`` files, else the system roots;
- ``headers`` (metadata; keys lowercased as gRPC requires):
  ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``;
- ``compression`` ("gzip", "deflate", "none" or a ``grpc.Compression``):
  ``OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION``; an unknown value is logged and
  ignored (the SDK raises, which would leave the service without telemetry);
- ``timeout`` (seconds, bounding all attempts of one export):
  ``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT``, else 10.

Retried, with backoff, within the timeout: the SDK's codes (CANCELLED,
DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS) and, as the
OTLP specification says, RESOURCE_EXHAUSTED only when the server sends
``RetryInfo`` (read from ``google.rpc.retryinfo-bin`` as the SDK does, and from
the standard ``grpc-status-details-bin``); the server's delay is honoured.
``OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES`` (names, comma
separated) replaces the list, as for the SDK. After an UNAVAILABLE first
attempt the channel is made anew, so a restarted collector is reached at once
rather than after gRPC's reconnect backoff. The channel it replaces is closed
when the last call on it returns, not under the calls of other exports: a
call cancelled after the collector took its request would be retried, and
its spans would arrive twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tenantrace.export._options import (
    env_first,
    env_headers,
    load_credential_provider,
    lower_keys,
    user_agent,
)
from tenantrace.export._transport import Attempt, OtlpTransportExporter

__all__ = ["EXPORT_METHOD", "RETRYABLE_CODES", "GrpcSpanExporter"]

_logger = logging.getLogger(__name__)

EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
DEFAULT_ENDPOINT: Final = "http://localhost:4317"

RETRYABLE_CODES: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
_COMPRESSIONS: Final = {
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
    "none": grpc.Compression.NoCompression,
}

HeadersArg = Mapping[str, str] | Sequence[tuple[str, str]] | str | None


class _Connection:
    """A channel, its Export callable, and how many calls are on it now."""

    __slots__ = ("call", "channel", "in_flight", "retired")

    def __init__(self, channel: Any, call: Any) -> None:
        self.channel = channel
        self.call = call
        self.in_flight = 0  # counted under the exporter's lock
        self.retired = False  # replaced by a reconnect: closed when in_flight is 0


class GrpcSpanExporter(OtlpTransportExporter):
    """OTLP/gRPC exporter of ``tenantrace.export.encode_spans`` bytes (see the module)."""

    protocol = "gRPC"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        insecure: bool | None = None,
        credentials: Any = None,
        headers: HeadersArg = None,
        timeout: float | None = None,
        compression: str | Any = None,
        channel_options: Sequence[tuple[str, Any]] | None = None,
        retryable_codes: Iterable[Any] | None = None,
    ) -> None:
        endpoint = (
            endpoint
            or env_first("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
            or DEFAULT_ENDPOINT
        )
        super().__init__(endpoint=endpoint, timeout=timeout, logger=_logger)
        parsed = urlsplit(endpoint)
        if parsed.scheme == "https":
            insecure = False
        if insecure is None:
            raw = env_first("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
            insecure = raw.lower() == "true" if raw is not None else parsed.scheme == "http"
        self._target = parsed.netloc or endpoint
        self._insecure = insecure
        self._credentials = None if insecure else _channel_credentials(credentials)
        self._metadata = _metadata(headers)
        self._compression = _compression(compression)
        options = dict(channel_options or ())
        options.setdefault("grpc.primary_user_agent", user_agent())
        self._options = tuple(options.items())
        self._retryable = _retryable_codes(retryable_codes)
        self._lock = threading.Lock()
        # The connection new calls go on: swapped whole on reconnect, under the lock.
        self._conn = self._open()
        # Replaced connections that still have calls on them: shutdown closes them too.
        self._retired: set[_Connection] = set()

    @property
    def target(self) -> str:
        """The channel's target (``host:port``)."""
        return self._target

    @property
    def insecure(self) -> bool:
        return self._insecure

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    @property
    def compression(self) -> Any:
        """The channel's ``grpc.Compression``."""
        return self._compression

    def _open(self) -> _Connection:
        if self._insecure:
            channel = grpc.insecure_channel(
                self._target, options=self._options, compression=self._compression
            )
        else:
            channel = grpc.secure_channel(
                self._target,
                self._credentials,
                options=self._options,
                compression=self._compression,
            )
        call = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,  # the request is bytes already
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        return _Connection(channel, call)

    def _send(self, body: bytes, timeout_s: float, attempt: int) -> Attempt:
        with self._lock:
            conn = self._conn
            conn.in_flight += 1
        try:
            response = conn.call(body, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as error:
            return self._failure(error, conn, attempt)
        except ValueError:  # "Cannot invoke RPC on closed channel": only after shutdown
            if self._shutdown:
                return Attempt(ok=False, reason="the exporter was shut down")
            raise
        finally:
            self._call_ended(conn)
        return Attempt(ok=True, response=response)

    def _call_ended(self, conn: _Connection) -> None:
        with self._lock:
            conn.in_flight -= 1
            last = conn.retired and conn.in_flight == 0
            if last:
                self._retired.discard(conn)
        if last:
            _close_channel(conn.channel)

    def _failure(self, error: Any, conn: _Connection, attempt: int) -> Attempt:
        code = error.code()
        details = error.details() or ""
        try:
            delay = retry_delay(error.trailing_metadata())
        except Exception:  # a malformed trailer: the default backoff
            delay = None
        if code == grpc.StatusCode.UNAVAILABLE and attempt == 0 and not self._shutdown:
            self._reconnect(conn)
        retryable = code in self._retryable or (
            code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
        )
        name = getattr(code, "name", str(code))
        reason = f"{name}: {details}" if details else name
        return Attempt(ok=False, retryable=retryable, delay_s=delay, reason=reason)

    def _reconnect(self, failed: _Connection) -> None:
        """A fresh channel in place of ``failed`` (unless another thread made one).

        ``failed`` is closed once the calls on it have returned (the failing one
        included): closing it now would cancel other exports' calls, which the
        collector may have taken already, and their retries would send them twice.
        """
        with self._lock:
            if self._conn is not failed or self._shutdown:
                return
            self._conn = self._open()
            failed.retired = True
            idle = failed.in_flight == 0
            if not idle:
                self._retired.add(failed)
        if idle:
            _close_channel(failed.channel)

    def _close(self) -> None:
        with self._lock:
            channels = [self._conn.channel, *(conn.channel for conn in self._retired)]
            self._retired.clear()
        for channel in channels:  # calls still in flight end CANCELLED: shutdown is prompt
            _close_channel(channel)


def _close_channel(channel: Any) -> None:
    try:
        channel.close()
    except Exception as exc:
        _logger.debug("tenantrace: closing a gRPC channel: %r", exc)


def retry_delay(metadata: Iterable[tuple[str, Any]] | None) -> float | None:
    """The delay (seconds) a server asked for in a failed call's trailing metadata:
    ``google.rpc.RetryInfo`` alone or in the ``google.rpc.Status`` details; None if none."""
    from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    for key, value in metadata or ():
        if key == _RETRY_INFO_KEY:
            info = RetryInfo.FromString(value)
            return _seconds(info)
        if key == _STATUS_DETAILS_KEY:
            for detail in Status.FromString(value).details:
                if detail.Is(RetryInfo.DESCRIPTOR):
                    info = RetryInfo()
                    detail.Unpack(info)
                    return _seconds(info)
    return None


def _seconds(info: Any) -> float:
    delay = info.retry_delay
    seconds = float(delay.seconds) + float(delay.nanos) / 1e9
    return max(0.0, seconds)


def _metadata(headers: HeadersArg) -> tuple[tuple[str, str], ...]:
    if isinstance(headers, str):
        from opentelemetry.util.re import parse_env_headers

        pairs: dict[str, str] = lower_keys(parse_env_headers(headers, liberal=True))
    elif isinstance(headers, Mapping):
        pairs = lower_keys(headers)
    elif headers:
        pairs = {key.lower(): value for key, value in headers}
    else:
        pairs = env_headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    return tuple(pairs.items())


def _compression(value: Any) -> Any:
    if isinstance(value, grpc.Compression):
        return value
    raw = value
    if raw is None:
        raw = env_first("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
    if raw is None:
        return grpc.Compression.NoCompression
    compression = _COMPRESSIONS.get(str(raw).strip().lower())
    if compression is None:
        _logger.warning(
            "tenantrace: unknown OTLP compression %r (expected gzip, deflate or none); "
            "sending uncompressed",
            raw,
        )
        return grpc.Compression.NoCompression
    return compression


def _retryable_codes(codes: Iterable[Any] | None) -> frozenset[Any]:
    if codes is not None:
        return frozenset(codes)
    raw = env_first("OTEL_PYTHON_EXPORTER_OTLP_GRPC_RETRYABLE_ERROR_CODES")
    if raw is None:
        return RETRYABLE_CODES
    chosen = set()
    for name in raw.split(","):
        code = getattr(grpc.StatusCode, name.strip().upper(), None)
        if isinstance(code, grpc.StatusCode):
            chosen.add(code)
        elif name.strip():
            _logger.warning("tenantrace: ignoring unknown gRPC status code %r", name.strip())
    return frozenset(chosen)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        _logger.error("tenantrace: cannot read the OTLP TLS file %s (%s)", path, exc)
        return None


def _channel_credentials(explicit: Any) -> Any:
    """The TLS credentials, by the SDK's conventions (see the module)."""
    if explicit is not None:
        return explicit
    provided = load_credential_provider(
        (
            "OTEL_PYTHON_EXPORTER_OTLP_GRPC_TRACES_CREDENTIAL_PROVIDER",
            "OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER",
        ),
        lambda made: isinstance(made, grpc.ChannelCredentials),
    )
    if provided is not None:
        return provided
    root = _read(
        env_first("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
    )
    key = _read(env_first("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"))
    chain = _read(
        env_first(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
        )
    )
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )
