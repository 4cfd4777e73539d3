"""The tenant of the current work: validation, scope, the context key and the span's tenant.

The tenant lives in the OpenTelemetry ``Context`` under a private key, so it
follows the trace everywhere the context goes (asyncio tasks, explicit
``context=`` arguments, carriers re-attached in threads). Only two things set
it: ``tenant_scope()`` and a propagation step that the trust policy accepted.
Inbound baggage alone never does.

A span knows its tenant too: an SDK span through its provider's Resource
(``TenantResource``), a span that records nothing through
``TenantNonRecordingSpan``. A span can become current without touching the
tenant key (OpenTelemetry's ``trace.use_span``, a third-party
``start_as_current_span``), so the key remembers the span that was current
when it was set (its anchor): when another span has been made current since,
that span's tenant is the context's tenant. So every child inherits its parent
span's tenant, whichever API made the parent current, and a ``tenant_scope``
entered inside a span still switches the tenant of what follows.
"""

from __future__ import annotations

import importlib
import re
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext

from tenantrace.instrumentation._attached import AttachedContext

__all__ = [
    "TENANT_CONTEXT_KEY",
    "TENANT_ID_ATTRIBUTE",
    "InvalidTenantError",
    "TenantNonRecordingSpan",
    "current_tenant",
    "is_valid_tenant_id",
    "span_tenant",
    "tenant_scope",
    "validate_tenant_id",
    "with_tenant",
]

MAX_TENANT_ID_LENGTH: Final = 128
_TENANT_ID = re.compile(r"[A-Za-z0-9._@-]{1,128}", re.ASCII)

TENANT_CONTEXT_KEY: Final = otel_context.create_key("tenantrace.tenant_id")
# The span that was current when TENANT_CONTEXT_KEY was set (see the module doc).
_ANCHOR_KEY: Final = otel_context.create_key("tenantrace.tenant_anchor")
# Where trace.set_span_in_context keeps the current span; read directly, it is
# hot. An API that moved it leaves None here and the slower public way is used.
_SPAN_KEY: Final[str | None] = getattr(
    importlib.import_module("opentelemetry.trace.propagation"), "_SPAN_KEY", None
)
# The attribute naming the tenant: on every provider's Resource, and on the spans
# tenantrace starts itself (Phoenix keeps span attributes, not Resource ones).
TENANT_ID_ATTRIBUTE: Final = "tenant.id"


class InvalidTenantError(ValueError):
    """A tenant id with characters or a length a project name cannot take."""


def is_valid_tenant_id(value: object) -> bool:
    """True when ``value`` is a string of 1-128 letters, digits, ``.``, ``_``, ``-`` or ``@``."""
    return isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None


def validate_tenant_id(value: object, *, what: str = "tenant id") -> str:
    """Return ``value`` if it is a valid tenant id, else raise ``InvalidTenantError``."""
    if is_valid_tenant_id(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if not isinstance(value, str) else repr(value[:40])
    raise InvalidTenantError(
        f"invalid {what} {shown}: expected 1-{MAX_TENANT_ID_LENGTH} characters "
        "from letters, digits, '.', '_', '-', '@'"
    )


class TenantNonRecordingSpan(NonRecordingSpan):
    """A span that records nothing but knows its tenant.

    A span the sampler dropped (its children must stay in its trace, or a
    parent-based sampler would sample them as new roots), or a remote parent
    whose tenant the trust policy accepted from the carrier.
    """

    def __init__(self, context: SpanContext, tenant_id: str) -> None:
        super().__init__(context)
        self.tenant_id = tenant_id


def span_tenant(span: object) -> str | None:
    """The tenant ``span`` belongs to, or None when it is not a tenant's span.

    A remote parent whose tenant claim was not accepted, and spans of other
    providers, belong to no tenant: a span of any tenant under them starts a
    new trace.
    """
    tenant = getattr(span, "tenant_id", None)  # TenantNonRecordingSpan
    if tenant is None:
        tenant = getattr(getattr(span, "resource", None), "tenant_id", None)  # SDK span
    return tenant if isinstance(tenant, str) else None


def _current_span(ctx: Context) -> object:
    if _SPAN_KEY is not None:
        return ctx.get(_SPAN_KEY)
    return trace_api.get_current_span(ctx)  # pragma: no cover


def current_tenant(context: Context | None = None) -> str | None:
    """The tenant of the work in ``context`` (default: the current one), if any.

    Set by the innermost ``tenant_scope()``, a trusted carrier, or the current
    span: a span made current after the scope was entered brings its own tenant.
    """
    ctx = otel_context.get_current() if context is None else context
    span = _current_span(ctx)
    if span is not None and span is not ctx.get(_ANCHOR_KEY):
        tenant = span_tenant(span)
        if tenant is not None:
            return tenant
    value = ctx.get(TENANT_CONTEXT_KEY)
    return value if isinstance(value, str) else None


def with_tenant(
    tenant_id: str, context: Context | None = None, *, span: trace_api.Span | None = None
) -> Context:
    """A new ``Context``: ``context`` (default: the current one) whose tenant is ``tenant_id``.

    The id must already be valid. The tenant outranks the span current in
    ``context`` (or ``span``, made current in the same copy); a span made
    current later brings its own tenant.
    """
    ctx = otel_context.get_current() if context is None else context
    values = dict(ctx)
    if span is not None:
        if _SPAN_KEY is None:  # pragma: no cover - an API that moved its key
            values = dict(trace_api.set_span_in_context(span, ctx))
        else:
            values[_SPAN_KEY] = span
    values[TENANT_CONTEXT_KEY] = tenant_id
    values[_ANCHOR_KEY] = span if span is not None else _current_span(ctx)
    return Context(values)


def set_tenant_in_context(tenant_id: str, context: Context | None = None) -> Context:
    """A new ``Context`` carrying ``tenant_id`` (validated)."""
    return with_tenant(validate_tenant_id(tenant_id), context)


class tenant_scope(AttachedContext[str]):
    """Make ``tenant_id`` the tenant of everything inside the block.

    Works as a sync and an async context manager; the id is validated when the
    scope is created, so a bad id raises before any user code runs.
    """

    __slots__ = ("_tenant_id",)

    def __init__(self, tenant_id: str) -> None:
        super().__init__()
        self._tenant_id = validate_tenant_id(tenant_id)

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    def _attach(self) -> tuple[Context, str]:
        return with_tenant(self._tenant_id), self._tenant_id
