"""Memory layer spans: ``trace_recall`` (a RETRIEVER span) and ``trace_learn``.

::

    with trace_recall(query, max_concepts=10, tenant_id="user_123") as span:
        context = memory.recall(query)
        span.set_attribute("memory.concepts_found", context.concepts_found)

Both carry ``memory.operation`` and the OpenInference ``openinference.span.kind``
(RETRIEVER for recall, CHAIN for learn) so Phoenix shows them as such; the
query or content goes to ``input.value``, cut to ``max_input_chars``
(``record_input=False`` leaves it out, e.g. for personal data).
"""

from __future__ import annotations

from typing import Final

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.spans import NoOpScope, SpanScope
from tenantrace.layers._spans import layer_span, short_text

__all__ = ["trace_learn", "trace_recall"]

# OpenInference semantic conventions (openinference.semconv.trace.SpanAttributes).
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
RETRIEVER: Final = "RETRIEVER"
CHAIN: Final = "CHAIN"

MEMORY_OPERATION: Final = "memory.operation"
MEMORY_MAX_CONCEPTS: Final = "memory.max_concepts"
MEMORY_QUERY_LENGTH: Final = "memory.query_length"
MEMORY_CONCEPTS: Final = "memory.concepts"
MEMORY_SOURCE: Final = "memory.source"
MEMORY_CONTENT_LENGTH: Final = "memory.content_length"

DEFAULT_MAX_INPUT_CHARS: Final = 256


def _input(
    attributes: dict[str, AttributeValue], text: object, length_key: str, record: bool, limit: int
) -> None:
    if text is None:
        return
    if isinstance(text, str):
        attributes[length_key] = len(text)
    if record:
        attributes[INPUT_VALUE] = short_text(text, max(1, limit))


def trace_recall(
    query: str,
    max_concepts: int | None = None,
    tenant_id: str | None = None,
    *,
    record_input: bool = True,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope around a memory recall, yielding its span.

    Named ``memory.recall``; ``openinference.span.kind=RETRIEVER``,
    ``memory.operation=recall``, ``memory.max_concepts``, ``memory.query_length``
    and the query (truncated) as ``input.value``.
    """

    def describe() -> tuple[str, dict[str, AttributeValue]]:
        attributes: dict[str, AttributeValue] = {
            OPENINFERENCE_SPAN_KIND: RETRIEVER,
            MEMORY_OPERATION: "recall",
        }
        if isinstance(max_concepts, int) and not isinstance(max_concepts, bool):
            attributes[MEMORY_MAX_CONCEPTS] = max_concepts
        _input(attributes, query, MEMORY_QUERY_LENGTH, record_input, max_input_chars)
        return "memory.recall", attributes

    return layer_span("memory.recall", tenant_id, describe, level=level, context=context)


def trace_learn(
    content: str | None = None,
    concepts: int | None = None,
    tenant_id: str | None = None,
    *,
    source: str | None = None,
    record_input: bool = True,
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope around storing into memory, yielding its span.

    Named ``memory.learn``; ``openinference.span.kind=CHAIN``,
    ``memory.operation=learn``, ``memory.concepts`` (how many are stored, if
    known), ``memory.content_length``, ``memory.source`` (e.g. ``"conversation"``) and the content
    (truncated) as ``input.value``.
    """

    def describe() -> tuple[str, dict[str, AttributeValue]]:
        attributes: dict[str, AttributeValue] = {
            OPENINFERENCE_SPAN_KIND: CHAIN,
            MEMORY_OPERATION: "learn",
        }
        if isinstance(concepts, int) and not isinstance(concepts, bool):
            attributes[MEMORY_CONCEPTS] = concepts
        if isinstance(source, str) and source:
            attributes[MEMORY_SOURCE] = short_text(source, 64)
        _input(attributes, content, MEMORY_CONTENT_LENGTH, record_input, max_input_chars)
        return "memory.learn", attributes

    return layer_span("memory.learn", tenant_id, describe, level=level, context=context)
