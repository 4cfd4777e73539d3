"""The tenant of the current work: validation, scope and the context key.

The tenant lives in the OpenTelemetry ``Context`` under a private key, so it
follows the trace everywhere the context goes (asyncio tasks, explicit
``context=`` arguments, carriers re-attached in threads). Only two things set
it: ``tenant_scope()`` and a propagation step that the trust policy accepted.
Inbound baggage alone never does.
"""

from __future__ import annotations

import re
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from tenantrace.instrumentation._attached import AttachedContext

__all__ = [
    "TENANT_CONTEXT_KEY",
    "TENANT_ID_ATTRIBUTE",
    "InvalidTenantError",
    "current_tenant",
    "is_valid_tenant_id",
    "tenant_scope",
    "validate_tenant_id",
]

MAX_TENANT_ID_LENGTH: Final = 128
_TENANT_ID = re.compile(r"[A-Za-z0-9._@-]{1,128}", re.ASCII)

TENANT_CONTEXT_KEY: Final = otel_context.create_key("tenantrace.tenant_id")
# The attribute naming the tenant, on every provider's Resource and on every
# exported span (Phoenix keeps span attributes but not Resource attributes).
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


def current_tenant(context: Context | None = None) -> str | None:
    """The tenant set by the innermost ``tenant_scope()`` (or trusted carrier), if any."""
    value = otel_context.get_value(TENANT_CONTEXT_KEY, context)
    return value if isinstance(value, str) else None


def set_tenant_in_context(tenant_id: str, context: Context | None = None) -> Context:
    """A new ``Context`` carrying ``tenant_id`` (validated)."""
    return otel_context.set_value(TENANT_CONTEXT_KEY, validate_tenant_id(tenant_id), context)


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
        return otel_context.set_value(TENANT_CONTEXT_KEY, self._tenant_id), self._tenant_id
