"""Memory layer: recall (an OpenInference RETRIEVER span) and learn, per tenant.

Run: python examples/layer_memory.py  (no server: spans are captured in memory and printed)
"""

from tenantrace import tenant_scope
from tenantrace.layers import trace_learn, trace_recall
from tenantrace.testing import capture_spans


class Memory:
    """A toy concept store standing in for your vector store."""

    def __init__(self) -> None:
        self.concepts: dict[str, list[str]] = {}

    def learn(self, tenant: str, text: str) -> int:
        words = [w for w in text.lower().split() if len(w) > 4]
        self.concepts.setdefault(tenant, []).extend(words)
        return len(words)

    def recall(self, tenant: str, query: str, max_concepts: int) -> list[str]:
        wanted = set(query.lower().split())
        return [c for c in self.concepts.get(tenant, []) if c in wanted][:max_concepts]


memory = Memory()

with capture_spans() as spans:
    for tenant, note in (("acme", "launch planned for october"), ("globex", "budget review")):
        with tenant_scope(tenant):
            with trace_learn(note, source="conversation") as span:
                span.set_attribute("memory.concepts", memory.learn(tenant, note))
            query = "when is the launch planned"
            with trace_recall(query, max_concepts=10) as span:
                found = memory.recall(tenant, query, max_concepts=10)
                span.set_attribute("memory.concepts_found", len(found))
            print(f"{tenant:7} recalled {found}")

    for span in spans.spans():
        kind = span.attributes["openinference.span.kind"]
        print(f"[{span.project}] {span.name:13} {kind:9} {span.attributes.get('input.value')!r}")
    recalls = spans.by_name("memory.recall")
    assert [s.attributes["memory.concepts_found"] for s in recalls] == [2, 0]
    assert {s.tenant for s in recalls} == {"acme", "globex"}
