"""Formats on the wire: W3C by default, B3 single and multi, OTEL_PROPAGATORS honoured."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tenantrace import tenant_scope
from tenantrace.propagation import (
    configure_propagators,
    extract_trace_context,
    get_baggage,
    inject_trace_context,
    propagators,
)
from tenantrace.testing import SpanCapture

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"


def remote(headers: object) -> tuple[str, str, bool] | None:
    ctx = trace_api.get_current_span(extract_trace_context(headers)).get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", ctx.trace_flags.sampled


@pytest.mark.parametrize(
    "headers",
    [
        {"b3": f"{TRACE}-{SPAN}-1"},
        {"B3": f"{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"},
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "X-B3-Sampled": "1"},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-flags": "1"},
    ],
    ids=["single", "single-with-parent", "multi", "multi-debug"],
)
def test_b3_is_extracted_in_both_forms_under_the_default_config(headers: object) -> None:
    assert remote(headers) == (TRACE, SPAN, True)


def test_b3_sampling_decision_is_kept() -> None:
    assert remote({"b3": f"{TRACE}-{SPAN}-0"}) == (TRACE, SPAN, False)


def test_w3c_wins_over_b3_when_both_are_valid() -> None:
    w3c = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{w3c}-00f067aa0ba902b7-01", "b3": f"{TRACE}-{SPAN}-1"}
    assert remote(headers) == (w3c, "00f067aa0ba902b7", True)


def test_b3_rescues_a_malformed_traceparent() -> None:
    assert remote({"traceparent": "garbage", "b3": f"{TRACE}-{SPAN}-1"}) == (TRACE, SPAN, True)


@pytest.mark.parametrize(
    "headers",
    [{"b3": "not-hex-at-all"}, {"b3": "0"}, {"x-b3-traceid": TRACE}, {"x-b3-spanid": SPAN}],
)
def test_malformed_b3_starts_a_new_trace(headers: object) -> None:
    assert remote(headers) is None


def _outgoing(spans: SpanCapture) -> dict[str, str]:
    with tenant_scope("acme"), spans.manager.span("client"):
        return inject_trace_context()


def test_default_injects_w3c_trace_context_and_baggage(spans: SpanCapture) -> None:
    assert _outgoing(spans).keys() == {"traceparent", "baggage"}


def test_b3_single_injected_when_configured(spans: SpanCapture) -> None:
    assert configure_propagators("b3") == ("b3",)
    out = _outgoing(spans)
    assert out.keys() == {"b3"}
    client = spans.one("client")
    assert out["b3"] == f"{client.trace_id}-{client.span_id}-1"
    assert remote(out) == (client.trace_id, client.span_id, True)


def test_b3_multi_injected_when_configured(spans: SpanCapture) -> None:
    configure_propagators(["tracecontext", "b3multi", "baggage"])
    out = _outgoing(spans)
    assert out.keys() == {"traceparent", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "baggage"}


def test_otel_propagators_environment_variable(
    spans: SpanCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PROPAGATORS", " B3 , baggage ")
    assert configure_propagators() == ("b3", "baggage")
    assert _outgoing(spans).keys() == {"b3", "baggage"}


def test_without_baggage_configured_no_baggage_goes_or_comes(spans: SpanCapture) -> None:
    configure_propagators("tracecontext")
    assert _outgoing(spans).keys() == {"traceparent"}
    ctx = extract_trace_context({"baggage": "k=v,tenant.id=acme"}, trust=True)
    assert get_baggage("k", ctx) is None


def test_none_turns_propagation_off(spans: SpanCapture) -> None:
    configure_propagators("none")
    assert _outgoing(spans) == {}
    assert remote({"traceparent": f"00-{TRACE}-{SPAN}-01"}) is None


def test_an_unknown_propagator_is_skipped_with_a_warning(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert configure_propagators("tracecontext,nosuchformat") == ("tracecontext",)
    assert "nosuchformat" in caplog.text
    assert _outgoing(spans).keys() == {"traceparent"}


def test_empty_configuration_means_the_default() -> None:
    assert configure_propagators(" , ") == ("tracecontext", "baggage")


class _HeaderPropagator(TextMapPropagator):
    """A third-party format: the trace in one ``X-My-Trace: <trace>:<span>`` header."""

    def extract(
        self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter
    ) -> Context:
        values = getter.get(carrier, "X-My-Trace") or []
        if len(values) != 1 or values[0].count(":") != 1:
            return context if context is not None else Context()
        trace_id, span_id = values[0].split(":")
        remote = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(1))
        return trace_api.set_span_in_context(NonRecordingSpan(remote), context)

    def inject(
        self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter
    ) -> None:
        span_context = trace_api.get_current_span(context).get_span_context()
        if span_context.is_valid:
            value = f"{span_context.trace_id:032x}:{span_context.span_id:016x}"
            setter.set(carrier, "x-my-trace", value)

    @property
    def fields(self) -> set[str]:
        return {"x-my-trace"}


class _EntryPoint:
    def load(self) -> type[TextMapPropagator]:
        return _HeaderPropagator


def test_other_propagators_load_from_entry_points(
    spans: SpanCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def entry_points(*, group: str, name: str) -> list[_EntryPoint]:
        assert group == "opentelemetry_propagator"
        return [_EntryPoint()] if name == "mytrace" else []

    monkeypatch.setattr(propagators, "entry_points", entry_points)
    assert configure_propagators("mytrace,baggage") == ("mytrace", "baggage")
    out = _outgoing(spans)
    client = spans.one("client")
    assert out == {"x-my-trace": f"{client.trace_id}:{client.span_id}", "baggage": "tenant.id=acme"}
    assert remote({"X-MY-TRACE": out["x-my-trace"]}) == (client.trace_id, client.span_id, True)
