"""Trust policy (who may pick the tenant) and egress policy (where baggage may go)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tenantrace import InvalidTenantError, current_tenant, tenant_scope
from tenantrace.propagation import (
    REJECT_ALL,
    TRUST_ALL,
    EgressPolicy,
    TenantTrustPolicy,
    extract_trace_context,
    get_baggage,
    inject_trace_context,
    propagate_context_to_dict,
    set_default_trust_policy,
    set_egress_policy,
)
from tenantrace.testing import SpanCapture

CLAIM = {"baggage": "tenant.id=acme", "Authorization": "Bearer t-acme"}


def claimed(trust: object = None, headers: Mapping[str, str] = CLAIM) -> str | None:
    return current_tenant(extract_trace_context(headers, trust=trust))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ trust


def test_the_process_default_rejects_every_claim(spans: SpanCapture) -> None:
    assert claimed() is None
    assert claimed(False) is None
    assert claimed(REJECT_ALL) is None
    assert spans.manager.get_stats()["rejected_tenants"] == 3


def test_trusted_flag_and_true_accept(spans: SpanCapture) -> None:
    assert claimed(True) == claimed(TRUST_ALL) == claimed(TenantTrustPolicy(trusted=True)) == "acme"


def test_allowlist(spans: SpanCapture) -> None:
    policy = TenantTrustPolicy(allowed_tenants=frozenset({"acme", "globex"}))
    assert claimed(policy) == "acme"
    assert claimed(policy, {"baggage": "tenant.id=initech"}) is None
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_allowlist_entries_are_validated() -> None:
    with pytest.raises(InvalidTenantError):
        TenantTrustPolicy(allowed_tenants=frozenset({"bad tenant"}))


def test_validator_sees_the_claim_and_the_headers(spans: SpanCapture) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def principal_matches(tenant: str, headers: Mapping[str, str]) -> bool:
        seen.append((tenant, dict(headers)))
        return headers.get("authorization") == f"Bearer t-{tenant}"

    policy = TenantTrustPolicy(validator=principal_matches)
    assert claimed(policy) == "acme"
    assert claimed(policy, {**CLAIM, "Authorization": "Bearer t-globex"}) is None
    assert seen[0] == ("acme", {"baggage": "tenant.id=acme", "authorization": "Bearer t-acme"})


def test_validator_is_not_called_without_a_claim() -> None:
    def never(tenant: str, headers: Mapping[str, str]) -> bool:
        raise AssertionError("called")

    assert claimed(TenantTrustPolicy(validator=never), {"traceparent": "x"}) is None


def test_every_configured_check_must_pass(spans: SpanCapture) -> None:
    policy = TenantTrustPolicy(
        allowed_tenants=frozenset({"acme"}), validator=lambda tenant, headers: False
    )
    assert claimed(policy) is None


def test_a_validator_that_raises_refuses(spans: SpanCapture) -> None:
    def broken(tenant: str, headers: Mapping[str, str]) -> bool:
        raise KeyError("auth")

    assert claimed(TenantTrustPolicy(validator=broken)) is None
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_a_validator_must_return_true_not_truthy(spans: SpanCapture) -> None:
    policy = TenantTrustPolicy(validator=lambda tenant, headers: "yes")  # type: ignore[arg-type,return-value]
    assert claimed(policy) is None


def test_validator_must_be_callable() -> None:
    with pytest.raises(TypeError):
        TenantTrustPolicy(validator="admin")  # type: ignore[arg-type]


def test_process_default_can_be_changed_and_a_call_can_override_it(spans: SpanCapture) -> None:
    old = set_default_trust_policy(True)
    assert old == REJECT_ALL
    assert claimed() == "acme"
    assert claimed(False) is None
    set_default_trust_policy(TenantTrustPolicy(allowed_tenants=frozenset({"globex"})))
    assert claimed() is None
    with pytest.raises(TypeError):
        set_default_trust_policy("yes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- egress


@pytest.fixture
def acme_span(spans: SpanCapture) -> object:
    with tenant_scope("acme"), spans.manager.span("client") as span:
        yield span


@pytest.mark.parametrize(
    ("url", "baggage"),
    [
        ("http://orders.internal/v1", True),
        ("http://ORDERS.internal./v1", True),
        ("https://a.svc.cluster.local:8443/x", True),
        ("http://svc.cluster.local/x", False),  # "*." means subdomains only
        ("http://10.0.0.5:9000/", True),
        ("http://10.0.0.5:9001/", False),
        ("https://billing.internal/", True),  # "billing.internal:443" and the default port
        ("http://billing.internal/", False),
        ("https://api.example.com/", False),
        ("http://orders.internal.evil.com/", False),
        ("http://evil.com/?orders.internal", False),
        ("http://user@evil.com/", False),
        ("//orders.internal/x", True),
        ("orders.internal/x", False),  # no scheme: no host to trust
        ("http://[::1", False),
        ("", False),
    ],
)
def test_baggage_goes_only_to_allowed_hosts(acme_span: object, url: str, baggage: bool) -> None:
    set_egress_policy(
        EgressPolicy(
            frozenset(
                {"orders.internal", "*.svc.cluster.local", "10.0.0.5:9000", "billing.internal:443"}
            )
        )
    )
    out = inject_trace_context(url=url)
    assert "traceparent" in out  # the trace context always goes
    assert ("baggage" in out) is baggage


def test_by_default_unknown_hosts_get_only_the_trace_context(acme_span: object) -> None:
    assert inject_trace_context(url="https://api.example.com/").keys() == {"traceparent"}
    assert inject_trace_context()["baggage"] == "tenant.id=acme"  # no destination named


def test_no_baggage_at_all_without_a_url_when_configured(acme_span: object) -> None:
    set_egress_policy(EgressPolicy(baggage_without_url=False))
    assert inject_trace_context().keys() == {"traceparent"}
    assert propagate_context_to_dict({})["trace_context"].keys() == {"traceparent"}


def test_message_carriers_honour_the_egress_url(acme_span: object) -> None:
    set_egress_policy(EgressPolicy.allow(["broker.internal"]))
    inside = propagate_context_to_dict({}, url="amqp://broker.internal:5672/")
    outside = propagate_context_to_dict({}, url="amqps://partner.example.com/")
    assert inside["trace_context"]["baggage"] == "tenant.id=acme"
    assert "baggage" not in outside["trace_context"]


def test_application_baggage_is_stripped_too(spans: SpanCapture) -> None:
    from tenantrace.propagation import baggage_scope

    with baggage_scope({"user.tier": "gold"}), spans.manager.span("client"):
        assert "baggage" not in inject_trace_context(url="https://api.example.com/")
        assert get_baggage("user.tier") == "gold"  # only the outgoing copy loses it


def test_bad_host_patterns_are_refused() -> None:
    for pattern in ("http://x/path", "", "*.", "a/b"):
        with pytest.raises(ValueError):
            EgressPolicy(frozenset({pattern}))
    with pytest.raises(TypeError):
        set_egress_policy("orders.internal")  # type: ignore[arg-type]


def test_a_single_host_string_is_one_host() -> None:
    policy = EgressPolicy("orders.internal")  # type: ignore[arg-type]
    assert policy.allowed_hosts == frozenset({"orders.internal"})
    assert policy.allows_baggage("http://orders.internal/")
