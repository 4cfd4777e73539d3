"""Configuration: explicit > environment > default; bad values fail early or warn once."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantrace import BatchExportConfig, InvalidTenantError, TelemetryConfig, TelemetryLevel


def test_seed_defaults() -> None:
    config = TelemetryConfig()
    assert config.enabled is True
    assert config.level is TelemetryLevel.DETAILED
    assert config.otlp_endpoint == "localhost:4317"
    assert config.tenant_project_template == "cogniverse-{tenant_id}"
    assert config.max_cached_tenants == 100
    batch = config.batch_config
    assert (batch.max_queue_size, batch.max_export_batch_size) == (2048, 512)
    assert (batch.export_timeout_millis, batch.schedule_delay_millis) == (30_000, 500)
    assert batch.drop_on_queue_full and batch.log_dropped_spans and not batch.use_sync_export


def test_project_names_from_templates() -> None:
    config = TelemetryConfig()
    assert config.get_project_name("acme") == "cogniverse-acme"
    assert config.get_project_name("tenant-123", "video") == "cogniverse-tenant-123-video"
    # The separator is escaped in a tenant-only project: it is not tenant "tenant"'s
    # service "123".
    assert config.get_project_name("tenant-123") == "cogniverse-tenant~123"
    assert config.get_project_name("tenant", "123") == "cogniverse-tenant-123"


_IDS = st.from_regex(r"[A-Za-z0-9._@-]{1,12}", fullmatch=True)
_TEMPLATES = st.sampled_from(
    [
        ("cogniverse-{tenant_id}", "cogniverse-{tenant_id}-{service}"),
        ("{tenant_id}", "{tenant_id}.{service}"),
        ("t_{tenant_id}", "t_{tenant_id}_{service}"),
        ("{tenant_id}", "{service}@{tenant_id}"),
        ("p-{tenant_id}", "p-{tenant_id}/{service}"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    templates=_TEMPLATES,
    first=st.tuples(_IDS, st.none() | _IDS),
    second=st.tuples(_IDS, st.none() | _IDS),
)
def test_project_names_are_injective(
    templates: tuple[str, str],
    first: tuple[str, str | None],
    second: tuple[str, str | None],
) -> None:
    project, service = templates
    config = TelemetryConfig(tenant_project_template=project, tenant_service_template=service)
    if first != second:
        assert config.get_project_name(*first) != config.get_project_name(*second)
    # ... and each name reads back as exactly its pair.
    assert config.parse_project_name(config.get_project_name(*first)) == first


@pytest.mark.parametrize(
    "templates",
    [
        ("cogniverse-{tenant_id}", "cogniverse-{tenant_id}{service}"),
        ("x-{tenant_id}-main", "x-{tenant_id}-{service}"),
    ],
)
def test_templates_that_cannot_be_injective_are_refused(templates: tuple[str, str]) -> None:
    project, service = templates
    with pytest.raises(ValueError, match="same project"):
        TelemetryConfig(tenant_project_template=project, tenant_service_template=service)


@pytest.mark.parametrize(
    "bad",
    ["", "a b", "t\r\nX-Evil: 1", "../etc", "x" * 129, "tenant/1", "tén", "a;b", "\x00"],
)
def test_invalid_tenant_ids_never_reach_a_project_name(bad: str) -> None:
    with pytest.raises(InvalidTenantError):
        TelemetryConfig().get_project_name(bad)


def test_valid_tenant_id_charset() -> None:
    assert TelemetryConfig().get_project_name("a.b_c-d@e") == "cogniverse-a.b_c~d@e"
    assert TelemetryConfig().get_project_name("x" * 128).endswith("x" * 128)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tenant_project_template": "proj"}, "tenant_id"),
        ({"tenant_service_template": "{tenant_id}-{oops}"}, "unknown placeholder"),
        ({"level": "loud"}, "unknown telemetry level"),
        ({"max_cached_tenants": 0}, "max_cached_tenants"),
        ({"exporter_type": "zipkin"}, "exporter_type"),
        ({"otlp_protocol": "http/json"}, "otlp_protocol"),
        ({"default_tenant_id": "bad id"}, "invalid tenant id"),
    ],
)
def test_bad_explicit_values_raise_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TelemetryConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_queue_size": -1},
        {"max_export_batch_size": 0},
        {"max_export_batch_size": 4096},
        {"export_timeout_millis": 0},
        {"schedule_delay_millis": -5},
    ],
)
def test_bad_batch_values_raise(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BatchExportConfig(**kwargs)


def test_level_parsing_accepts_names_and_values() -> None:
    assert TelemetryLevel.parse("VERBOSE") is TelemetryLevel.VERBOSE
    assert TelemetryConfig(level="basic").level is TelemetryLevel.BASIC  # type: ignore[arg-type]


def test_environment_is_read_under_explicit_arguments() -> None:
    env = {
        "TELEMETRY_SYNC_EXPORT": "true",
        "OTLP_ENDPOINT": "collector:4317",
        "OTEL_SERVICE_NAME": "search-api",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_TYPE": "console",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
    }
    config = TelemetryConfig.from_env(env, service_name="explicit")
    assert config.batch_config.use_sync_export is True
    assert config.otlp_endpoint == "collector:4317"
    assert config.service_name == "explicit"  # explicit beats environment
    assert config.otlp_protocol == "http/protobuf"
    assert config.exporter_type == "console"
    assert config.batch_config.max_queue_size == 100
    assert config.batch_config.max_export_batch_size == 100  # clamped to the queue


def test_standard_variables() -> None:
    env = {
        "OTEL_SDK_DISABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
        "OTEL_TRACES_EXPORTER": "none",
    }
    config = TelemetryConfig.from_env(env)
    assert config.enabled is False
    assert config.otlp_endpoint == "http://otel:4318"
    assert config.effective_exporter == "none"
    assert TelemetryConfig(otlp_enabled=False).effective_exporter == "none"


def test_bad_environment_values_warn_once_and_fall_back(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "TELEMETRY_LEVEL": "chatty",
        "OTEL_BSP_MAX_QUEUE_SIZE": "-3",
        "OTEL_TRACES_EXPORTER": "carrier-pigeon",
        "TELEMETRY_SYNC_EXPORT": "maybe",
    }
    with caplog.at_level(logging.WARNING):
        first = TelemetryConfig.from_env(env)
        second = TelemetryConfig.from_env(env)
    assert first == second
    assert first.level is TelemetryLevel.DETAILED
    assert first.batch_config.max_queue_size == 2048
    assert first.exporter_type == "otlp"
    assert first.batch_config.use_sync_export is False
    warned = [r.getMessage() for r in caplog.records if "TELEMETRY_LEVEL" in r.getMessage()]
    assert len(warned) <= 1  # once per process, never per call


def test_unknown_explicit_field_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown TelemetryConfig field"):
        TelemetryConfig.from_env({}, colour="blue")
