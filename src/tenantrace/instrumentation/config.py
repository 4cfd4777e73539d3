"""Configuration: levels, batch export settings and the tenant templates.

Precedence is explicit argument > environment > default. ``TelemetryConfig(...)``
takes only what it is given; ``TelemetryConfig.from_env(**explicit)`` layers the
environment under the explicit arguments. A bad explicit value raises
``ValueError`` here, at configuration time; a bad environment value warns once
and falls back to the default, because a typo in a deployment must not take the
service down.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from functools import lru_cache
from typing import Any, Final, Literal

from tenantrace.export.config import BatchExportConfig
from tenantrace.instrumentation.tenants import is_valid_tenant_id, validate_tenant_id

__all__ = [
    "BatchExportConfig",
    "ExporterType",
    "OtlpProtocol",
    "TelemetryConfig",
    "TelemetryLevel",
]

_logger = logging.getLogger(__name__)

ExporterType = Literal["otlp", "console", "memory", "none"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpEncoder = Literal["tenantrace", "sdk"]
CrossTenantTraces = Literal["split", "keep"]

_EXPORTERS: tuple[str, ...] = ("otlp", "console", "memory", "none")
_PROTOCOLS: tuple[str, ...] = ("grpc", "http/protobuf")
_ENCODERS: tuple[str, ...] = ("tenantrace", "sdk")
_CROSS_TENANT: tuple[str, ...] = ("split", "keep")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class TelemetryLevel(Enum):
    """How much is traced. A span whose level is above the configured one is a no-op."""

    DISABLED = "disabled"  # No telemetry
    BASIC = "basic"  # Only search operations
    DETAILED = "detailed"  # Search + encoders + backend
    VERBOSE = "verbose"  # Everything including internal operations

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, value: TelemetryLevel | str) -> TelemetryLevel:
        """Accept a level or its name/value in any case; raise ``ValueError`` otherwise."""
        if isinstance(value, TelemetryLevel):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            for level in cls:
                if key in (level.value, level.name.lower()):
                    return level
        choices = ", ".join(level.value for level in cls)
        raise ValueError(f"unknown telemetry level {value!r}; expected one of: {choices}")


_RANKS = {
    TelemetryLevel.DISABLED: 0,
    TelemetryLevel.BASIC: 1,
    TelemetryLevel.DETAILED: 2,
    TelemetryLevel.VERBOSE: 3,
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


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
    tenant_project_template: str = "cogniverse-{tenant_id}"
    tenant_service_template: str = "cogniverse-{tenant_id}-{service}"
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
        _require(
            self.exporter_type in _EXPORTERS,
            f"exporter_type must be one of {_EXPORTERS}, got {self.exporter_type!r}",
        )
        _require(
            self.otlp_protocol in _PROTOCOLS,
            f"otlp_protocol must be one of {_PROTOCOLS}, got {self.otlp_protocol!r}",
        )
        _require(
            self.otlp_encoder in _ENCODERS,
            f"otlp_encoder must be one of {_ENCODERS}, got {self.otlp_encoder!r}",
        )
        _check_template(self.tenant_project_template, "tenant_project_template", ("tenant_id",))
        _check_template(
            self.tenant_service_template, "tenant_service_template", ("tenant_id", "service")
        )
        _check_injective(self.tenant_project_template, self.tenant_service_template)
        validate_tenant_id(self.default_tenant_id)
        _require(
            self.cross_tenant_traces in _CROSS_TENANT,
            f"cross_tenant_traces must be one of {_CROSS_TENANT}, got {self.cross_tenant_traces!r}",
        )
        self.trusted_tenants = tuple(
            validate_tenant_id(t, what="trusted tenant") for t in self.trusted_tenants
        )
        self.egress_allowed_hosts = tuple(self.egress_allowed_hosts)
        header = self.tenant_header
        _require(
            header is None or _HEADER_NAME.fullmatch(header) is not None,
            f"tenant_header must be a header name, got {self.tenant_header!r}",
        )
        _require(
            self.max_cached_tenants > 0,
            f"max_cached_tenants must be > 0, got {self.max_cached_tenants}",
        )
        for name in ("max_attribute_length", "max_span_attributes", "max_span_events"):
            value = getattr(self, name)
            _require(value > 0, f"{name} must be > 0, got {value}")
        _require(
            self.max_span_links >= 0, f"max_span_links must be >= 0, got {self.max_span_links}"
        )
        self.redact_patterns = tuple(self.redact_patterns)
        for pattern in self.redact_patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"redact_patterns: invalid pattern {pattern!r} ({exc})") from None
        _require(
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
        tenant = validate_tenant_id(tenant_id)
        if service is None:
            escape = _escaper(self.tenant_service_template)
            return self.tenant_project_template.format(tenant_id=tenant.translate(escape))
        validate_tenant_id(service, what="service/project name")
        escape = _escaper(self.tenant_service_template)
        return self.tenant_service_template.format(
            tenant_id=tenant, service=service.translate(escape)
        )

    def parse_project_name(self, name: str) -> tuple[str, str | None] | None:
        """The ``(tenant, service or None)`` whose project is ``name``; None if none is.

        The exact inverse of ``get_project_name``: names are injective, so a
        project reads as one tenant (and service) only.
        """
        for template, pattern in _project_patterns(
            self.tenant_project_template, self.tenant_service_template
        ):
            for match in (pattern.fullmatch(name), _lazy(pattern).fullmatch(name)):
                if match is None:
                    continue
                unescape = _unescaper(self.tenant_service_template)
                groups = match.groupdict()
                if "service" in groups:
                    tenant, service = groups["tenant_id"], groups["service"].translate(unescape)
                else:
                    tenant, service = groups["tenant_id"].translate(unescape), None
                if not is_valid_tenant_id(tenant) or (
                    service is not None and not is_valid_tenant_id(service)
                ):
                    continue
                if (
                    template.format(**groups) == name
                    and self.get_project_name(tenant, service) == name
                ):
                    return tenant, service
        return None

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
        values: dict[str, Any] = _config_from_env(env)
        batch_values = _batch_from_env(env)
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


# Project names must be injective: ("acme", service "prod") and tenant
# "acme-prod" must not share "cogniverse-acme-prod". Tenant ids and services
# may hold the punctuation the service template uses as separators, so those
# characters are escaped, each to a character no id can hold, in the tenant of
# a tenant-only project and in the service of a service project. The service
# project keeps its tenant as is ("cogniverse-tenant-123-video", as the seeds
# name it); the tenant-only project of a tenant with a separator in its id is
# the one that reads differently ("cogniverse-acme~prod").
_ESCAPES: Final = {"-": "~", ".": "!", "_": "*", "@": "$"}
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")


@lru_cache(maxsize=16)
def _escaper(service_template: str) -> dict[int, str]:
    literal = "".join(text for text, _, _, _ in string.Formatter().parse(service_template))
    return str.maketrans({c: e for c, e in _ESCAPES.items() if c in literal})


@lru_cache(maxsize=16)
def _unescaper(service_template: str) -> dict[int, str]:
    return {ord(e): chr(c) for c, e in _escaper(service_template).items()}


@lru_cache(maxsize=16)
def _project_patterns(
    project_template: str, service_template: str
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each template as a regular expression with named groups, service projects first."""

    def pattern(template: str) -> re.Pattern[str]:
        parts = []
        for text, name, _, _ in string.Formatter().parse(template):
            parts.append(re.escape(text))
            if name is not None:
                parts.append(f"(?P<{name}>.+)")
        return re.compile("".join(parts), re.DOTALL)

    return (
        (service_template, pattern(service_template)),
        (project_template, pattern(project_template)),
    )


@lru_cache(maxsize=32)
def _lazy(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(pattern.pattern.replace(">.+)", ">.+?)"), re.DOTALL)


# Ids that between them hit every way two templates can collide: separators at
# either end, doubled, and each escape's own character class.
_PROBE_IDS: Final = ("a", "b", "ab", "a-b", "a.b", "a_b", "a@b", "a-b-c", "a--b", "-a", "a-", "1")


@lru_cache(maxsize=16)
def _check_injective(project_template: str, service_template: str) -> None:
    """Refuse templates that give two (tenant, service) pairs one project name."""
    _check_template(project_template, "tenant_project_template", ("tenant_id",))
    _check_template(service_template, "tenant_service_template", ("tenant_id", "service"))
    escape = _escaper(service_template)
    # The templates' own words too: "x-{tenant_id}-main" collides with service "main".
    literal = " ".join(
        text
        for t in (project_template, service_template)
        for text, _, _, _ in string.Formatter().parse(t)
    )
    words = {w for w in re.split(r"[^A-Za-z0-9]+", literal) if w}
    probes = (*_PROBE_IDS, *sorted(words), *(f"a-{w}" for w in sorted(words)))
    seen: dict[str, tuple[str, str | None]] = {}
    for tenant in probes:
        pairs: list[tuple[str, str | None]] = [(tenant, None)]
        pairs += [(tenant, service) for service in probes]
        for pair in pairs:
            t, service = pair
            if service is None:
                name = project_template.format(tenant_id=t.translate(escape))
            else:
                name = service_template.format(tenant_id=t, service=service.translate(escape))
            other = seen.setdefault(name, pair)
            _require(
                other == pair,
                f"tenant_project_template {project_template!r} and tenant_service_template "
                f"{service_template!r} give {other} and {pair} the same project {name!r}; "
                "put a separator (such as '-') between {tenant_id} and {service}",
            )


def _check_template(template: str, name: str, allowed: tuple[str, ...]) -> None:
    try:
        placeholders = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{name} is not a valid format string: {template!r} ({exc})") from None
    _require("tenant_id" in placeholders, f"{name} must contain '{{tenant_id}}', got {template!r}")
    extra = placeholders - set(allowed)
    _require(not extra, f"{name} has unknown placeholder(s) {sorted(extra)}: {template!r}")


_warned: set[str] = set()


def _warn_once(variable: str, value: str, expected: str) -> None:
    if variable in _warned:
        return
    _warned.add(variable)
    _logger.warning(
        "tenantrace: ignoring %s=%r (expected %s); using the default", variable, value, expected
    )


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _warn_once(name, raw, "true or false")
    return None


def _env_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = env.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        _warn_once(name, raw, f"an integer >= {minimum}")
        return None
    return value


def _config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    disabled = _env_bool(env, "OTEL_SDK_DISABLED")
    if disabled is not None:
        values["enabled"] = not disabled
    level = env.get("TELEMETRY_LEVEL")
    if level is not None:
        try:
            values["level"] = TelemetryLevel.parse(level)
        except ValueError:
            _warn_once("TELEMETRY_LEVEL", level, "disabled, basic, detailed or verbose")
    if service := env.get("OTEL_SERVICE_NAME", "").strip():
        values["service_name"] = service
    if environment := env.get("TELEMETRY_ENVIRONMENT", "").strip():
        values["environment"] = environment
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    endpoint = endpoint or env.get("OTLP_ENDPOINT")
    if endpoint and endpoint.strip():
        values["otlp_endpoint"] = endpoint.strip()
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol is not None:
        if protocol.strip() in _PROTOCOLS:
            values["otlp_protocol"] = protocol.strip()
        else:
            _warn_once("OTEL_EXPORTER_OTLP_PROTOCOL", protocol, "grpc or http/protobuf")
    values.update(_encoder_from_env(env))
    insecure = _env_bool(env, "OTEL_EXPORTER_OTLP_INSECURE")
    if insecure is not None:
        values["otlp_use_tls"] = not insecure
    exporter = _exporter_from_env(env)
    if exporter is not None:
        values["exporter_type"] = exporter
    values.update(_tenancy_from_env(env))
    return values


def _encoder_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    raw = env.get("TENANTRACE_OTLP_ENCODER")
    if raw is None:
        return {}
    if raw.strip().lower() in _ENCODERS:
        return {"otlp_encoder": raw.strip().lower()}
    _warn_once("TENANTRACE_OTLP_ENCODER", raw, "tenantrace or sdk")
    return {}


def _env_list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _keep_injective_templates(values: dict[str, Any]) -> None:
    """Drop (with a warning) templates from the environment that are not injective."""
    if "tenant_project_template" not in values and "tenant_service_template" not in values:
        return
    try:
        _check_injective(
            values.get("tenant_project_template", TelemetryConfig.tenant_project_template),
            values.get("tenant_service_template", TelemetryConfig.tenant_service_template),
        )
    except ValueError as exc:
        _warn_once("TENANTRACE_PROJECT_TEMPLATE", str(exc), "injective templates")
        values.pop("tenant_project_template", None)
        values.pop("tenant_service_template", None)


def _tenancy_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``TENANTRACE_*`` variables: everything about tenants a zero-code setup needs."""
    values: dict[str, Any] = {}
    for variable, name in (
        ("TENANTRACE_PROJECT_TEMPLATE", "tenant_project_template"),
        ("TENANTRACE_SERVICE_TEMPLATE", "tenant_service_template"),
        ("TENANTRACE_DEFAULT_TENANT", "default_tenant_id"),
        ("TENANTRACE_TENANT_HEADER", "tenant_header"),
    ):
        raw = env.get(variable, "").strip()
        if raw:
            values[name] = raw
    _keep_injective_templates(values)
    if "default_tenant_id" in values and not is_valid_tenant_id(values["default_tenant_id"]):
        _warn_once("TENANTRACE_DEFAULT_TENANT", values.pop("default_tenant_id"), "a tenant id")
    header = values.get("tenant_header")
    if header is not None and _HEADER_NAME.fullmatch(header) is None:
        _warn_once("TENANTRACE_TENANT_HEADER", values.pop("tenant_header"), "a header name")
    cached = _env_int(env, "TENANTRACE_MAX_CACHED_TENANTS", 1)
    if cached is not None:
        values["max_cached_tenants"] = cached
    for variable, name in (
        ("TENANTRACE_TENANT_ID_ON_EVERY_SPAN", "tenant_id_on_every_span"),
        ("TENANTRACE_BAGGAGE_WITHOUT_URL", "baggage_without_url"),
    ):
        flag = _env_bool(env, variable)
        if flag is not None:
            values[name] = flag
    cross = env.get("TENANTRACE_CROSS_TENANT_TRACES")
    if cross is not None:
        if cross.strip().lower() in _CROSS_TENANT:
            values["cross_tenant_traces"] = cross.strip().lower()
        else:
            _warn_once("TENANTRACE_CROSS_TENANT_TRACES", cross, "split or keep")
    values.update(_trust_from_env(env))
    hosts = _env_list(env, "TENANTRACE_EGRESS_ALLOWED_HOSTS")
    if hosts is not None:
        values["egress_allowed_hosts"] = hosts
    return values


def _trust_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    # TENANTRACE_TRUST_TENANT_CLAIMS: "none" (the default), "all" (an internal
    # hop: any valid claim), or a comma-separated list of tenants that may be claimed.
    raw = env.get("TENANTRACE_TRUST_TENANT_CLAIMS")
    if raw is None:
        return {}
    value = raw.strip().lower()
    if value in ("none", ""):
        return {"trust_tenant_claims": False, "trusted_tenants": ()}
    if value == "all":
        return {"trust_tenant_claims": True}
    tenants = _env_list(env, "TENANTRACE_TRUST_TENANT_CLAIMS") or ()
    if all(is_valid_tenant_id(t) for t in tenants):
        return {"trusted_tenants": tenants}
    _warn_once("TENANTRACE_TRUST_TENANT_CLAIMS", raw, "none, all or a list of tenant ids")
    return {}


def _exporter_from_env(env: Mapping[str, str]) -> str | None:
    # The seeds' OTEL_EXPORTER_TYPE wins over the standard OTEL_TRACES_EXPORTER
    # because it is the more specific, toolkit-level switch.
    for name in ("OTEL_EXPORTER_TYPE", "OTEL_TRACES_EXPORTER"):
        raw = env.get(name)
        if raw is None:
            continue
        # The standard variable may list several exporters; the first is used.
        value = raw.split(",")[0].strip().lower()
        if value in _EXPORTERS:
            return value
        _warn_once(name, raw, "otlp, console, memory or none")
    return None


def _batch_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    sync = _env_bool(env, "TELEMETRY_SYNC_EXPORT")
    if sync is not None:
        values["use_sync_export"] = sync
    for variable, name, minimum in (
        ("OTEL_BSP_MAX_QUEUE_SIZE", "max_queue_size", 1),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "max_export_batch_size", 1),
        ("OTEL_BSP_EXPORT_TIMEOUT", "export_timeout_millis", 1),
        ("OTEL_BSP_SCHEDULE_DELAY", "schedule_delay_millis", 0),
    ):
        value = _env_int(env, variable, minimum)
        if value is not None:
            values[name] = value
    queue = values.get("max_queue_size", BatchExportConfig.max_queue_size)
    if values.get("max_export_batch_size", 0) > queue:
        _warn_once(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            str(values.pop("max_export_batch_size")),
            "at most OTEL_BSP_MAX_QUEUE_SIZE",
        )
    if "max_export_batch_size" not in values and queue < BatchExportConfig.max_export_batch_size:
        values["max_export_batch_size"] = queue
    return values
