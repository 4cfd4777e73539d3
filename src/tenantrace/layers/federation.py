"""Federation: a CLIENT span per sync with a peer, its context injected into the outgoing call.

::

    headers = {"content-type": "application/json"}
    with trace_federation_sync("push", "peer-b", url=url, headers=headers) as span:
        response = httpx.post(url, json=batch, headers=headers)
        span.set_attribute("federation.items", len(batch))

On entry the span (``federation.sync.push`` / ``federation.sync.pull``) becomes
current and the propagation headers of that context (``traceparent``, and
baggage where the egress policy allows it for ``url``) are written into
``headers`` in place, so the peer's server span is a child of this one.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from types import TracebackType
from typing import Final, Literal
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation._attached import AsyncWithFromSync
from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import NoOpScope, SpanScope
from tenantrace.layers._spans import layer_span, short_text

__all__ = [
    "FederationSync",
    "trace_federation_pull",
    "trace_federation_push",
    "trace_federation_sync",
]

Direction = Literal["push", "pull"]

FEDERATION_DIRECTION: Final = "federation.direction"
FEDERATION_PEER: Final = "federation.peer"
FEDERATION_ITEMS: Final = "federation.items"
# opentelemetry.semconv (service.peer.name replaces the deprecated peer.service).
SERVICE_PEER_NAME: Final = "service.peer.name"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
URL_SCHEME: Final = "url.scheme"

_MAX_PEER_CHARS: Final = 128


def _peer_attributes(direction: str, peer: str, url: str | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        FEDERATION_DIRECTION: direction,
        FEDERATION_PEER: short_text(peer, _MAX_PEER_CHARS),
        SERVICE_PEER_NAME: short_text(peer, _MAX_PEER_CHARS),
    }
    if url:
        # Host, port and scheme only: a URL's user info and query can hold credentials.
        parts = urlsplit(url)
        if parts.hostname:
            attributes[SERVER_ADDRESS] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None:
            attributes[SERVER_PORT] = port
        if parts.scheme:
            attributes[URL_SCHEME] = parts.scheme
    return attributes


def _inject(headers: MutableMapping[str, str], url: str | None) -> None:
    from tenantrace.propagation import inject_trace_context

    carrier = inject_trace_context(url=url)
    if not carrier:
        return
    names = {name.lower() for name in carrier}
    # Stale propagation headers in another case (say, copied from an inbound
    # request) describe another context: replace them, do not send both.
    for name in [n for n in headers if isinstance(n, str) and n.lower() in names]:
        del headers[name]
    headers.update(carrier)


class FederationSync(AsyncWithFromSync[Span]):
    """The scope of one peer sync: the span is current and ``headers`` carry its context."""

    __slots__ = ("_headers", "_scope", "_url")

    def __init__(
        self,
        scope: SpanScope | NoOpScope,
        headers: MutableMapping[str, str] | None,
        url: str | None,
    ) -> None:
        self._scope = scope
        self._headers = headers
        self._url = url

    def __enter__(self) -> Span:
        span = self._scope.__enter__()
        if self._headers is not None:
            try:
                _inject(self._headers, self._url)
            except Exception as exc:  # the sync goes out untraced rather than failing
                get_telemetry_manager().warn_once(
                    "federation.inject", "tenantrace: federation headers not injected (%r)", exc
                )
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._scope.__exit__(exc_type, exc, tb)


def trace_federation_sync(
    direction: Direction,
    peer: str,
    *,
    url: str | None = None,
    headers: MutableMapping[str, str] | None = None,
    items: int | None = None,
    tenant_id: str | None = None,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> FederationSync:
    """A ``with`` / ``async with`` scope around one sync with ``peer``, yielding its span.

    ``direction`` is ``"push"`` or ``"pull"`` (the span is
    ``federation.sync.<direction>``, kind CLIENT, with ``federation.peer``,
    ``service.peer.name`` and, from ``url``, ``server.address`` /
    ``server.port``). ``headers``, if given, receive the propagation headers
    on entry, even when this span is not recorded (the caller's trace still
    continues at the peer).
    """
    if direction not in ("push", "pull"):
        raise ValueError(f"direction must be 'push' or 'pull', got {direction!r}")
    name = f"federation.sync.{direction}"

    def describe() -> tuple[str, dict[str, AttributeValue]]:
        attributes = _peer_attributes(direction, peer, url)
        if isinstance(items, int) and not isinstance(items, bool):
            attributes[FEDERATION_ITEMS] = items
        return name, attributes

    scope = layer_span(
        name, tenant_id, describe, level=level, kind=SpanKind.CLIENT, context=context
    )
    return FederationSync(scope, headers, url)


def trace_federation_push(
    peer: str,
    *,
    url: str | None = None,
    headers: MutableMapping[str, str] | None = None,
    items: int | None = None,
    tenant_id: str | None = None,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
) -> FederationSync:
    """``trace_federation_sync("push", peer, ...)``."""
    return trace_federation_sync(
        "push", peer, url=url, headers=headers, items=items, tenant_id=tenant_id, level=level
    )


def trace_federation_pull(
    peer: str,
    *,
    url: str | None = None,
    headers: MutableMapping[str, str] | None = None,
    items: int | None = None,
    tenant_id: str | None = None,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
) -> FederationSync:
    """``trace_federation_sync("pull", peer, ...)``."""
    return trace_federation_sync(
        "pull", peer, url=url, headers=headers, items=items, tenant_id=tenant_id, level=level
    )
