"""Queue message carriers, span links and batch spans (in process; brokers in test_brokers.py)."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.trace import INVALID_SPAN, Link
from span_links import linked_ids

from tenantrace import current_tenant, tenant_scope
from tenantrace.propagation import (
    batch_span,
    extract_context_from_dict,
    link_spans,
    message_span,
    propagate_context_to_dict,
)
from tenantrace.testing import SpanCapture


def produce(spans: SpanCapture, tenant: str, n: int) -> list[dict[str, object]]:
    messages = []
    for i in range(n):
        with (
            tenant_scope(tenant),
            spans.manager.span(f"send-{tenant}-{i}", kind=trace_api.SpanKind.PRODUCER),
        ):
            messages.append(propagate_context_to_dict({"order": i, "tenant": tenant}))
    return messages


def test_the_message_is_copied_with_a_json_carrier(spans: SpanCapture) -> None:
    message = {"event_type": "memory_added", "data": {"k": [1, 2]}}
    with tenant_scope("acme"), spans.manager.span("send") as span:
        carried = propagate_context_to_dict(message)
    assert message == {"event_type": "memory_added", "data": {"k": [1, 2]}}  # untouched
    assert carried["event_type"] == "memory_added"
    carrier = carried["trace_context"]
    assert carrier == json.loads(json.dumps(carrier))
    ctx = span.get_span_context()
    assert carrier["traceparent"].split("-")[1:3] == [f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"]
    assert carrier["baggage"] == "tenant.id=acme"


def test_a_custom_key(spans: SpanCapture) -> None:
    with spans.manager.span("send"):
        carried = propagate_context_to_dict({"a": 1}, key="_otel")
    assert "_otel" in carried and "trace_context" not in carried
    assert (
        trace_api.get_current_span(extract_context_from_dict(carried, key="_otel"))
        .get_span_context()
        .is_valid
    )


@pytest.mark.parametrize("form", ["dict", "json-text", "json-bytes", "whole-message-json"])
def test_extract_from_every_form_a_consumer_sees(spans: SpanCapture, form: str) -> None:
    [message] = produce(spans, "acme", 1)
    if form == "json-text":
        message = {**message, "trace_context": json.dumps(message["trace_context"])}
    elif form == "json-bytes":
        message = {**message, "trace_context": json.dumps(message["trace_context"]).encode()}
    elif form == "whole-message-json":
        message = json.loads(json.dumps(message))
    ctx = extract_context_from_dict(message, trusted=True)
    assert current_tenant(ctx) == "acme"
    remote = trace_api.get_current_span(ctx).get_span_context()
    assert f"{remote.trace_id:032x}" == spans.one("send-acme-0").trace_id


def test_a_flat_header_dict_is_a_carrier_too(spans: SpanCapture) -> None:
    with spans.manager.span("send"):
        headers = propagate_context_to_dict({})["trace_context"]
    assert (
        trace_api.get_current_span(extract_context_from_dict(headers)).get_span_context().is_valid
    )


def test_untrusted_message_tenant_is_rejected_by_default(spans: SpanCapture) -> None:
    [message] = produce(spans, "acme", 1)
    assert current_tenant(extract_context_from_dict(message)) is None
    assert spans.manager.get_stats()["rejected_tenants"] == 1


@pytest.mark.parametrize(
    "message",
    [
        None,
        3,
        "text",
        [],
        {"trace_context": None},
        {"trace_context": "{bad json"},
        {"trace_context": "x" * 100_000},
    ],
)
def test_extract_from_garbage_gives_a_fresh_context(message: object) -> None:
    ctx = extract_context_from_dict(message)
    assert not trace_api.get_current_span(ctx).get_span_context().is_valid


def test_propagate_a_message_that_is_not_a_mapping(spans: SpanCapture) -> None:
    with spans.manager.span("send"):
        carried = propagate_context_to_dict(None)  # type: ignore[arg-type]
    assert set(carried) == {"trace_context"}


# ------------------------------------------------------------------------ links


def test_link_spans_takes_every_form_of_parent(spans: SpanCapture) -> None:
    with spans.manager.span("producer") as span:
        carrier = propagate_context_to_dict({})["trace_context"]
        current_ctx = trace_api.set_span_in_context(span)
    expected = span.get_span_context()
    for parent in (carrier, expected, span, current_ctx, {"trace_context": carrier}):
        link = link_spans(parent)
        assert isinstance(link, Link)
        assert (link.context.trace_id, link.context.span_id) == (
            expected.trace_id,
            expected.span_id,
        )
    attributed = link_spans(carrier, {"messaging.message.id": "m-1"})
    assert attributed is not None and dict(attributed.attributes or {}) == {
        "messaging.message.id": "m-1"
    }


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "garbage"}, INVALID_SPAN, "x", 5])
def test_link_spans_without_a_context_is_none(carrier: object) -> None:
    assert link_spans(carrier) is None


def test_link_spans_never_changes_the_tenant(spans: SpanCapture) -> None:
    link = link_spans({"traceparent": f"00-{'a' * 32}-{'b' * 16}-01", "baggage": "tenant.id=evil"})
    assert link is not None
    assert spans.manager.get_stats()["rejected_tenants"] == 0  # no claim was even judged


def test_batch_span_links_every_producer_and_counts_messages(spans: SpanCapture) -> None:
    messages = produce(spans, "acme", 3) + produce(spans, "globex", 2) + [{"no": "context"}]
    with (
        tenant_scope("consumer"),
        batch_span(messages, system="rabbitmq", destination="orders") as batch,
    ):
        for message in messages:
            with message_span(message, system="rabbitmq", destination="orders", trust=True):
                pass
    batch_span_data = [
        s
        for s in spans.by_name("process orders")
        if s.attributes.get("messaging.batch.message_count")
    ]
    [batch_data] = batch_span_data
    assert batch_data.tenant == "consumer"
    assert batch_data.kind == "CONSUMER"
    assert batch_data.attributes == {
        "tenant.id": "consumer",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "orders",
        "messaging.batch.message_count": 6,
    }
    producers = [s for s in spans.spans() if s.name.startswith("send-")]
    assert batch_data.raw is not None
    linked = linked_ids(batch_data)
    assert linked == {(p.trace_id, p.span_id) for p in producers}
    per_message = [s for s in spans.by_name("process orders") if s.span_id != batch_data.span_id]
    assert len(per_message) == 6
    assert (
        sorted(s.tenant or "" for s in per_message) == ["acme"] * 3 + ["consumer"] + ["globex"] * 2
    )
    batch_id = f"{batch.get_span_context().span_id:016x}"
    by_id = {p.span_id: p for p in producers}
    for span in per_message:
        if span.tenant == "consumer":  # the message without a context: the batch's child
            assert (span.parent_id, span.links) == (batch_id, 0)
            continue
        # One trace, one tenant: another tenant's message continues its producer's
        # trace, in its tenant, and links back to the batch span.
        producer = by_id[span.parent_id or ""]
        assert (span.trace_id, span.tenant) == (producer.trace_id, producer.tenant)
        assert linked_ids(span) == {(batch_data.trace_id, batch_id)}


def test_message_span_without_trust_stays_with_the_consumer(spans: SpanCapture) -> None:
    [message] = produce(spans, "acme", 1)
    with tenant_scope("consumer"), message_span(message, "handle"):
        pass
    assert spans.one("handle").tenant == "consumer"
