"""Configuration: levels, batch export settings and the tenant templates.

Precedence is explicit argument > environment > default. ``TelemetryConfig(...)``
takes only what it is given; ``TelemetryConfig.from_env(**explicit)`` layers the
environment under the explicit arguments. A bad explicit value raises
``ValueError`` here, at configuration time; a bad environment value warns once
and falls back to the default, because a typo in a deployment must not take the
service down.

The parts live beside this module: the levels and literal choices
(``_choices``), the project-name templates (``_templates``) and the reading of
the environment (``_env``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tenantrace.export.config import BatchExportConfig
from tenantrace.instrumentation._choices import (
    CROSS_TENANT,
    ENCODERS,
    EXPORTERS,
    HEADER_NAME,
    PROTOCOLS,
    CrossTenantTraces,
    ExporterType,
    OtlpEncoder,
    OtlpProtocol,
    TelemetryLevel,
)
from tenantrace.instrumentation._env import batch_from_env, config_from_env
from tenantrace.instrumentation._templates import (
    DEFAULT_PROJECT_TEMPLATE,
    DEFAULT_SERVICE_TEMPLATE,
    check_injective,
    check_template,
    format_project_name,
    read_project_name,
    require,
)
from tenantrace.instrumentation.tenants import validate_tenant_id

__all__ = [
    "BatchExportConfig",
    "ExporterType",
    "OtlpProtocol",
    "TelemetryConfig",
    "TelemetryLevel",
]


@dataclass
class TelemetryConfig:
    """Everything the tenant-aware registry needs; validated on construction."""

    # Core settings
    enabled: bool = True
    level: TelemetryLevel = TelemetryLevel.DETAILED
    environment: str = "development"
    service_name: str = "tenantrace"

    # OpenTelemetry OTLP settings (backend-agnostic)
    otlp_enabled: bool = True
    otlp_endpoint: str = "localhost:4317"
    otlp_use_tls: bool = False
    otlp_protocol: OtlpProtocol = "grpc"
    otlp_headers: dict[str, str] = field(default_factory=dict)
    # Who encodes and sends OTLP: "tenantrace" (tenantrace.export's exporters,
    # docs/export.md) or "sdk" (the OpenTelemetry SDK's OTLP exporters).
    otlp_encoder: OtlpEncoder = "tenantrace"
    # With tenantrace's encoder, every span of a tenant names it in a tenant.id
    # attribute on the wire (decorated and auto-instrumented spans too): Phoenix
    # keeps span attributes, not Resource ones. One cached field per tenant.
    tenant_id_on_every_span: bool = True
    # Where spans go: "otlp" (when otlp_enabled), "console", "memory" or "none".
    exporter_type: ExporterType = "otlp"

    # Multi-tenant settings
    tenant_project_template: str = DEFAULT_PROJECT_TEMPLATE
    tenant_service_template: str = DEFAULT_SERVICE_TEMPLATE
    default_tenant_id: str = "default"
    max_cached_tenants: int = 100
    # One trace, one tenant: "split" starts a span whose parent is another
    # tenant's (or an untrusted remote parent) as a new trace linked to it.
    # "keep" keeps traces whole, for a backend where one operator sees every
    # tenant; Phoenix would then file a whole trace in one tenant's project.
    cross_tenant_traces: CrossTenantTraces = "split"

    # Who may pick the tenant from an inbound carrier (the process trust policy,
    # unless propagation.set_default_trust_policy() sets another):
    # trust_tenant_claims=True honours any valid claim (an internal hop);
    # trusted_tenants honours claims of these tenants only; tenant_header names
    # a header that a trusted gateway sets to the request's tenant.
    trust_tenant_claims: bool = False
    trusted_tenants: tuple[str, ...] = ()
    tenant_header: str | None = None
    # Where outbound baggage (the tenant included) may go (the process egress
    # policy, unless propagation.set_egress_policy() sets another).
    egress_allowed_hosts: tuple[str, ...] = ()
    baggage_without_url: bool = True

    # Batch export settings
    batch_config: BatchExportConfig = field(default_factory=BatchExportConfig)

    # Bounds applied by the SDK to every span (attribute values are truncated).
    max_attribute_length: int = 4096
    max_span_attributes: int = 128
    max_span_events: int = 128
    max_span_links: int = 128

    # Extra Resource attributes put on every tenant's provider.
    resource_attributes: dict[str, str] = field(default_factory=dict)

    # Scrubbing on the export thread (see tenantrace.export.scrubbing):
    # secret-looking attribute keys are redacted; add regular expressions
    # (searched in the lowercased key) and a ``callback(key, value) -> value | None``.
    redact_secrets: bool = True
    redact_patterns: tuple[str, ...] = ()
    redact_callback: Callable[[str, Any], Any] | None = None
    # Database statements of any instrumentation (db.statement, db.query.text)
    # are sanitized on export: literals become "?". Off keeps them as recorded
    # (credentials by shape are still redacted in them).
    sanitize_db_statements: bool = True

    def __post_init__(self) -> None:
        self.level = TelemetryLevel.parse(self.level)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        require(
            self.exporter_type in EXPORTERS,
            f"exporter_type must be one of {EXPORTERS}, got {self.exporter_type!r}",
        )
        require(
            self.otlp_protocol in PROTOCOLS,
            f"otlp_protocol must be one of {PROTOCOLS}, got {self.otlp_protocol!r}",
        )
        require(
            self.otlp_encoder in ENCODERS,
            f"otlp_encoder must be one of {ENCODERS}, got {self.otlp_encoder!r}",
        )
        check_template(self.tenant_project_template, "tenant_project_template", ("tenant_id",))
        check_template(
            self.tenant_service_template, "tenant_service_template", ("tenant_id", "service")
        )
        check_injective(self.tenant_project_template, self.tenant_service_template)
        validate_tenant_id(self.default_tenant_id)
        require(
            self.cross_tenant_traces in CROSS_TENANT,
            f"cross_tenant_traces must be one of {CROSS_TENANT}, got {self.cross_tenant_traces!r}",
        )
        self.trusted_tenants = tuple(
            validate_tenant_id(t, what="trusted tenant") for t in self.trusted_tenants
        )
        self.egress_allowed_hosts = tuple(self.egress_allowed_hosts)
        header = self.tenant_header
        require(
            header is None or HEADER_NAME.fullmatch(header) is not None,
            f"tenant_header must be a header name, got {self.tenant_header!r}",
        )
        require(
            self.max_cached_tenants > 0,
            f"max_cached_tenants must be > 0, got {self.max_cached_tenants}",
        )
        for name in ("max_attribute_length", "max_span_attributes", "max_span_events"):
            value = getattr(self, name)
            require(value > 0, f"{name} must be > 0, got {value}")
        require(self.max_span_links >= 0, f"max_span_links must be >= 0, got {self.max_span_links}")
        self.redact_patterns = tuple(self.redact_patterns)
        for pattern in self.redact_patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"redact_patterns: invalid pattern {pattern!r} ({exc})") from None
        require(
            self.redact_callback is None or callable(self.redact_callback),
            "redact_callback must be callable(key, value) -> value | None",
        )
        if not isinstance(self.batch_config, BatchExportConfig):
            raise ValueError("batch_config must be a BatchExportConfig")
        self.batch_config.validate()

    @property
    def effective_exporter(self) -> ExporterType:
        """The exporter in force once ``otlp_enabled=False`` is taken into account."""
        if self.exporter_type == "otlp" and not self.otlp_enabled:
            return "none"
        return self.exporter_type

    def get_project_name(self, tenant_id: str, service: str | None = None) -> str:
        """The backend project of ``tenant_id`` (and ``service``), from the templates.

        ``get_project_name("tenant-123", "video")`` gives ``cogniverse-tenant-123-video``
        with the default templates. The tenant id is validated first, so nothing
        untrusted can shape a project name.
        """
        return format_project_name(
            self.tenant_project_template, self.tenant_service_template, tenant_id, service
        )

    def parse_project_name(self, name: str) -> tuple[str, str | None] | None:
        """The ``(tenant, service or None)`` whose project is ``name``; None if none is.

        The exact inverse of ``get_project_name``: names are injective, so a
        project reads as one tenant (and service) only.
        """
        return read_project_name(self.tenant_project_template, self.tenant_service_template, name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> TelemetryConfig:
        """Build a config from the environment, with ``explicit`` arguments on top.

        Reads ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``,
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTLP_ENDPOINT``,
        ``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_TRACES_EXPORTER``,
        ``OTEL_EXPORTER_TYPE``, ``TELEMETRY_LEVEL``, ``TELEMETRY_SYNC_EXPORT``,
        ``TELEMETRY_ENVIRONMENT``, ``OTEL_BSP_*`` and the ``TENANTRACE_*``
        variables of tenancy (templates, default tenant, trust, tenant header,
        egress, cross-tenant traces; docs/configuration.md lists them).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = config_from_env(env)
        batch_values = batch_from_env(env)
        batch = explicit.pop("batch_config", None)
        if batch is None:
            batch = BatchExportConfig(**batch_values)
        values.update(explicit)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TelemetryConfig field(s): {sorted(unknown)}")
        return cls(batch_config=batch, **values)

    def with_overrides(self, **changes: Any) -> TelemetryConfig:
        """A validated copy with ``changes`` applied."""
        return replace(self, **changes)
