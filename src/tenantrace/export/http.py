"""OTLP/HTTP (protobuf) span exporter: ``encode_spans`` bytes POSTed on a pooled session.

``HttpSpanExporter`` POSTs the serialized ``ExportTraceServiceRequest`` to the
traces URL with ``Content-Type: application/x-protobuf`` over one
``requests.Session`` (a keep-alive connection pool, proxies and CA bundles from
the environment, as the SDK's exporter uses it).

It takes the options of the SDK's ``OTLPSpanExporter`` (HTTP) and reads the
same environment variables when an option is not given:

- ``endpoint``: the full traces URL; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is,
  or ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else ``http://localhost:4318/v1/traces``;
- TLS: ``certificate_file`` / ``client_key_file`` / ``client_certificate_file``,
  else ``OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE`` / ``CLIENT_KEY`` /
  ``CLIENT_CERTIFICATE`` (a certificate file given either way is trusted even
  when ``REQUESTS_CA_BUNDLE`` is set); a session from the
  ``OTEL_PYTHON_EXPORTER_OTLP_HTTP_(TRACES_)CREDENTIAL_PROVIDER`` entry point;
- ``headers`` (on top of ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``);
- ``compression`` ("gzip", "deflate" or "none"; sets ``Content-Encoding``):
  ``OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION``; an unknown value is logged and ignored;
- ``timeout`` (seconds, bounding all attempts of one export):
  ``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT``, else 10.

Retried, with backoff, within the timeout: 429, 502, 503 and 504 (honouring
``Retry-After``, in seconds or as a date) and connection errors (refused,
reset, timed out; a connection error is first resent once at once, for a stale
pooled connection). Any other answer fails the export at once; a redirect is
not followed and counts as a failure (the SDK counts it as a success, and the
spans are lost unseen). The body of a 2xx answer is read for a partial success.
"""

from __future__ import annotations

import gzip
import logging
import math
import time
import zlib
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tenantrace.export._options import (
    env_first,
    env_headers,
    load_credential_provider,
    lower_keys,
    user_agent,
)
from tenantrace.export._transport import Attempt, OtlpTransportExporter

__all__ = ["RETRYABLE_STATUS", "HttpSpanExporter", "retry_after"]

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT: Final = "http://localhost:4318/v1/traces"
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
_COMPRESSIONS: Final = ("gzip", "deflate", "none")
# zlib's default level: the SDK's 9 costs about twice the CPU for a few % of size.
GZIP_LEVEL: Final = 6


class HttpSpanExporter(OtlpTransportExporter):
    """OTLP/HTTP exporter of ``tenantrace.export.encode_spans`` bytes (see the module)."""

    protocol = "HTTP"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(endpoint=endpoint or _env_endpoint(), timeout=timeout, logger=_logger)
        self._compression = _compression(compression)
        merged = {"content-type": "application/x-protobuf", "user-agent": user_agent()}
        merged.update(
            env_headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        )
        merged.update(lower_keys(headers))
        if self._compression != "none":
            merged.setdefault("content-encoding", self._compression)
        self._headers = merged
        given = session or _provided_session()
        self._session = given or requests.Session()
        verify = certificate_file or env_first(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"
        )
        # Passed with each request too: a session's own ``verify`` loses to
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, a request's does not.
        self._verify: str | bool | None = verify or None
        self._proxies: dict[str, str] | None = None
        if verify:
            self._session.verify = verify
        if given is None:
            self._read_environment_once()
        cert = client_certificate_file or env_first(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
        )
        key = client_key_file or env_first(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"
        )
        if cert:
            self._session.cert = (cert, key) if key else cert

    def _read_environment_once(self) -> None:
        """What requests reads from the environment on every request (proxies,
        NO_PROXY, CA bundle, .netrc), read once: the endpoint does not change,
        and it is a third of a small request's CPU."""
        session = self._session
        try:
            settings = session.merge_environment_settings(self._endpoint, {}, None, None, None)
        except Exception:  # an invalid URL: each export fails (and says why), as for the SDK
            return
        self._proxies = settings["proxies"]
        if self._verify is None:
            self._verify = settings["verify"]
        auth = requests.utils.get_netrc_auth(self._endpoint)
        if auth is not None:
            session.auth = auth
        session.trust_env = False

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    @property
    def compression(self) -> str:
        """The body's compression: "gzip", "deflate" or "none"."""
        return self._compression

    @property
    def session(self) -> requests.Session:
        return self._session

    def _prepare(self, body: bytes) -> bytes:
        if self._compression == "gzip":
            return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        if self._compression == "deflate":
            return zlib.compress(body)
        return body

    def _post(self, body: bytes, timeout_s: float) -> requests.Response:
        return self._session.post(
            self._endpoint,
            data=body,
            headers=self._headers,
            timeout=timeout_s,
            allow_redirects=False,
            verify=self._verify,
            proxies=self._proxies,
        )

    def _send(self, body: bytes, timeout_s: float, attempt: int) -> Attempt:
        deadline = time.monotonic() + timeout_s
        try:
            try:
                response = self._post(body, timeout_s)
            except requests.ConnectionError:
                # A pooled connection the server had closed: once more, at once.
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutdown:
                    raise
                response = self._post(body, remaining)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return Attempt(ok=False, retryable=True, reason=_describe(exc))
        except requests.RequestException as exc:  # an invalid URL, too many redirects...
            return Attempt(ok=False, reason=_describe(exc))
        status = response.status_code
        content = response.content  # read in full: the connection goes back to the pool
        if 200 <= status < 300:
            kind = response.headers.get("content-type", "")
            decoded = decode_response(content) if not kind or "protobuf" in kind else None
            return Attempt(ok=True, response=decoded)
        retryable = status in RETRYABLE_STATUS
        delay = retry_after(response.headers.get("retry-after")) if retryable else None
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        if 300 <= status < 400:
            reason += f" (redirect to {response.headers.get('location', '?')} not followed)"
        message = _status_message(content, response.headers.get("content-type", ""))
        if message:
            reason += f": {message}"
        return Attempt(ok=False, retryable=retryable, delay_s=delay, reason=reason)

    def _close(self) -> None:
        self._session.close()


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def decode_response(data: bytes) -> ExportTraceServiceResponse | None:
    """An ``ExportTraceServiceResponse`` from a response body; None if it is not one."""
    if not data:
        return None
    try:
        response: ExportTraceServiceResponse = ExportTraceServiceResponse.FromString(data)
    except Exception:
        return None
    return response


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _status_message(content: bytes, kind: str) -> str:
    """The message of a ``google.rpc.Status`` error body (OTLP/HTTP), or a text body's start."""
    if not content:
        return ""
    if "protobuf" in kind:
        try:
            from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

            return str(Status.FromString(content).message)[:300]
        except Exception:
            return ""
    if kind.startswith(("text/", "application/json")):
        return content[:300].decode("utf-8", "replace").strip()
    return ""


def _env_endpoint() -> str:
    endpoint = env_first("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint is not None:
        return endpoint
    base = env_first("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base is not None:
        return base.rstrip("/") + "/v1/traces"
    return DEFAULT_ENDPOINT


def _compression(value: str | None) -> str:
    raw = value
    if raw is None:
        raw = env_first("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
    if raw is None:
        return "none"
    name = str(raw).strip().lower()
    if name not in _COMPRESSIONS:
        _logger.warning(
            "tenantrace: unknown OTLP compression %r (expected gzip, deflate or none); "
            "sending uncompressed",
            raw,
        )
        return "none"
    return name


def _provided_session() -> requests.Session | None:
    made = load_credential_provider(
        (
            "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
            "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
        ),
        lambda made: isinstance(made, requests.Session),
    )
    return made if isinstance(made, requests.Session) else None
