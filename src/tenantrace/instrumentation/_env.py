"""``TelemetryConfig.from_env``'s reading of the environment.

A bad environment value warns once and falls back to the default, because a
typo in a deployment must not take the service down (a bad explicit argument,
by contrast, raises in ``TelemetryConfig``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tenantrace.export.config import BatchExportConfig
from tenantrace.instrumentation._choices import (
    CROSS_TENANT,
    ENCODERS,
    EXPORTERS,
    HEADER_NAME,
    PROTOCOLS,
    TelemetryLevel,
)
from tenantrace.instrumentation._templates import (
    DEFAULT_PROJECT_TEMPLATE,
    DEFAULT_SERVICE_TEMPLATE,
    check_injective,
)
from tenantrace.instrumentation.tenants import is_valid_tenant_id

__all__ = ["batch_from_env", "config_from_env"]

# Warnings keep the logger of the module users configure from (``from_env``'s).
_logger = logging.getLogger("tenantrace.instrumentation.config")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

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


def config_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``TelemetryConfig`` fields the environment sets (``batch_config`` aside)."""
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
        if protocol.strip() in PROTOCOLS:
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
    if raw.strip().lower() in ENCODERS:
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
        check_injective(
            values.get("tenant_project_template", DEFAULT_PROJECT_TEMPLATE),
            values.get("tenant_service_template", DEFAULT_SERVICE_TEMPLATE),
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
    if header is not None and HEADER_NAME.fullmatch(header) is None:
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
        if cross.strip().lower() in CROSS_TENANT:
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
        if value in EXPORTERS:
            return value
        _warn_once(name, raw, "otlp, console, memory or none")
    return None


def batch_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``BatchExportConfig`` fields the environment sets."""
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
