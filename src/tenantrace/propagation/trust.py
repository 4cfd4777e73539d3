"""Who may pick the tenant (inbound trust) and where baggage may go (egress).

Inbound: a carrier may *claim* a tenant (baggage ``tenant.id``); the claim is
honoured only when the trust policy accepts it, otherwise it is dropped from
the extracted context and counted. The process default accepts no claim.

Outbound: baggage, the tenant included, is written only for destinations the
egress policy allows; toward any other host only the trace context goes out.

Both default to what the process-wide ``TelemetryConfig`` says (and so to its
``TENANTRACE_*`` environment variables) until a policy is set in code.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, TypeAlias
from urllib.parse import urlsplit

from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.tenants import is_valid_tenant_id, validate_tenant_id
from tenantrace.propagation.limits import is_token

__all__ = [
    "REJECT_ALL",
    "TRUST_ALL",
    "EgressPolicy",
    "TenantTrustPolicy",
    "TenantValidator",
    "TrustArg",
    "get_default_trust_policy",
    "get_egress_policy",
    "resolve_trust",
    "set_default_trust_policy",
    "set_egress_policy",
]

_logger = logging.getLogger(__name__)

TenantValidator: TypeAlias = Callable[[str, Mapping[str, str]], bool]
"""``validator(claimed_tenant, headers) -> bool``; ``headers`` are lowercase-keyed, read-only."""


@dataclass(frozen=True)
class TenantTrustPolicy:
    """Decides whether a tenant claimed by an inbound carrier is honoured.

    - ``trusted=True``: an internal hop; any *valid* claimed tenant is honoured.
    - ``allowed_tenants``: only these tenants may be claimed.
    - ``validator(claimed, headers)``: e.g. check the claim against the
      authenticated principal of the request.
    - ``tenant_header``: a header that a trusted gateway sets to the request's
      tenant (and strips from what clients send). When present with a valid
      id (one of ``allowed_tenants``, if given) it is the tenant, whatever the
      baggage claims; a baggage claim that disagrees is replaced.

    Without ``trusted``, every configured check must pass and at least one must
    be configured, so adding a check never widens what is accepted. A claim
    that is not a valid tenant id is refused whatever the policy. A validator
    that raises counts as a refusal.
    """

    trusted: bool = False
    allowed_tenants: frozenset[str] | None = None
    validator: TenantValidator | None = field(default=None, compare=False)
    tenant_header: str | None = None

    def __post_init__(self) -> None:
        if self.tenant_header is not None:
            if not isinstance(self.tenant_header, str) or not is_token(self.tenant_header):
                raise ValueError(f"tenant_header must be a header name, got {self.tenant_header!r}")
            object.__setattr__(self, "tenant_header", self.tenant_header.lower())
        if self.allowed_tenants is not None:
            allowed = frozenset(
                validate_tenant_id(t, what="allowed tenant") for t in self.allowed_tenants
            )
            object.__setattr__(self, "allowed_tenants", allowed)
        if self.validator is not None and not callable(self.validator):
            raise TypeError("validator must be callable(claimed_tenant, headers) -> bool")

    def accepts(
        self, claimed: object, headers: Callable[[], Mapping[str, str]] | Mapping[str, str]
    ) -> bool:
        """True when ``claimed`` may become the tenant of the extracted context."""
        if not isinstance(claimed, str) or not is_valid_tenant_id(claimed):
            return False
        if self.trusted:
            return True
        if self.allowed_tenants is None and self.validator is None:
            return False  # nothing vouches for the claim
        if self.allowed_tenants is not None and claimed not in self.allowed_tenants:
            return False
        return self.validator is None or self._validated(claimed, headers)

    def gateway_tenant(self, values: list[str]) -> str | None:
        """The tenant named by the gateway's ``tenant_header`` values, if they name one.

        Exactly one value: a repeated header means something other than the
        gateway wrote one of them.
        """
        if len(values) != 1:
            return None
        tenant = values[0].strip(" \t")
        if not is_valid_tenant_id(tenant):
            return None
        if self.allowed_tenants is not None and tenant not in self.allowed_tenants:
            return None
        return tenant

    def _validated(
        self, claimed: str, headers: Callable[[], Mapping[str, str]] | Mapping[str, str]
    ) -> bool:
        assert self.validator is not None
        view = headers() if callable(headers) else headers
        try:
            return self.validator(claimed, view) is True
        except Exception as exc:
            _logger.warning("tenantrace: tenant validator raised %r; claim refused", exc)
            return False


TRUST_ALL: Final = TenantTrustPolicy(trusted=True)
"""Honour any valid claimed tenant: for hops inside one trust boundary."""

REJECT_ALL: Final = TenantTrustPolicy()
"""Honour no claimed tenant (the process default)."""

TrustArg: TypeAlias = TenantTrustPolicy | bool | None
"""A policy, ``True`` (``TRUST_ALL``), ``False`` (``REJECT_ALL``) or None (the process default)."""


def set_default_trust_policy(
    policy: TenantTrustPolicy | bool | None,
) -> TenantTrustPolicy:
    """Set the trust policy of calls that pass no ``trust=``; return the old one.

    None goes back to the policy of the process-wide config
    (``trust_tenant_claims``, ``trusted_tenants``, ``tenant_header``).
    """
    old = get_default_trust_policy()
    _Defaults.trust = None if policy is None else _as_policy(policy)
    return old


def get_default_trust_policy() -> TenantTrustPolicy:
    """The process trust policy: the one set, else the one the config describes."""
    explicit = _Defaults.trust
    if explicit is not None:
        return explicit
    return _trust_of(get_telemetry_manager().config)


def _trust_of(config: TelemetryConfig) -> TenantTrustPolicy:
    key = (config.trust_tenant_claims, config.trusted_tenants, config.tenant_header)
    cached = _Defaults.from_config
    if cached is not None and cached[0] == key:
        return cached[1]
    policy = TenantTrustPolicy(
        trusted=config.trust_tenant_claims,
        allowed_tenants=frozenset(config.trusted_tenants) if config.trusted_tenants else None,
        tenant_header=config.tenant_header,
    )
    _Defaults.from_config = (key, policy)
    return policy


def _as_policy(policy: TenantTrustPolicy | bool) -> TenantTrustPolicy:
    if isinstance(policy, TenantTrustPolicy):
        return policy
    if isinstance(policy, bool):
        return TRUST_ALL if policy else REJECT_ALL
    raise TypeError(f"expected a TenantTrustPolicy or a bool, got {type(policy).__name__}")


def resolve_trust(trust: TrustArg) -> TenantTrustPolicy:
    """The policy a call uses: its own ``trust=`` or the process default."""
    if trust is None:
        return get_default_trust_policy()
    return _as_policy(trust)


# --------------------------------------------------------------------- egress


@dataclass(frozen=True)
class _HostPattern:
    host: str
    port: int | None
    subdomains: bool

    @classmethod
    def parse(cls, pattern: str) -> _HostPattern:
        text = pattern.strip().lower()
        subdomains = text.startswith("*.")
        if subdomains:
            text = text[2:]
        parts = urlsplit("//" + text)
        host = (parts.hostname or "").rstrip(".")
        if not host or parts.path or parts.query or parts.username:
            raise ValueError(f"not a host pattern: {pattern!r}")
        return cls(host, parts.port, subdomains)

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.subdomains:
            # An IP address has no subdomains ("[::1%25x.svc.internal]" is ::1).
            return not _is_ip(host) and host.endswith("." + self.host)
        return host == self.host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ":" in host  # an IPv6 literal ipaddress refuses (a zone id) is still one
    return True


@dataclass(frozen=True)
class EgressPolicy:
    """Where outgoing baggage (the tenant included) may be sent.

    ``allowed_hosts`` holds ``"api.internal"`` (any port), ``"api.internal:8443"``
    (that port), ``"*.svc.cluster.local"`` (any subdomain) or IP addresses. A URL
    whose host matches none gets only the trace context. ``baggage_without_url``
    decides for carriers with no destination (queue messages, in-process
    hand-offs, ``inject_trace_context()`` without ``url=``).
    """

    allowed_hosts: frozenset[str] = frozenset()
    baggage_without_url: bool = True
    _patterns: tuple[_HostPattern, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts = (
            frozenset((self.allowed_hosts,))
            if isinstance(self.allowed_hosts, str)
            else frozenset(self.allowed_hosts)
        )
        object.__setattr__(self, "allowed_hosts", hosts)
        object.__setattr__(self, "_patterns", tuple(_HostPattern.parse(h) for h in sorted(hosts)))

    @classmethod
    def allow(cls, hosts: Iterable[str], *, baggage_without_url: bool = True) -> EgressPolicy:
        return cls(frozenset(hosts), baggage_without_url)

    def allows_baggage(self, url: object) -> bool:
        """True when baggage may be sent to ``url`` (None: a carrier with no destination)."""
        if url is None:
            return self.baggage_without_url
        if not self._patterns or not isinstance(url, str):
            return False
        return _url_allowed(self, url)


_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# URLs longer than this are judged without the cache, so it stays small.
_MAX_CACHED_URL: Final = 2048


def _url_allowed(policy: EgressPolicy, url: str) -> bool:
    if len(url) > _MAX_CACHED_URL:
        return _judge(policy, url)
    return _judge_cached(policy, url)


# Characters HTTP clients read differently from urlsplit (a backslash ends the
# authority for some, whitespace and controls are stripped by others): a URL
# holding one is refused, not guessed at.
_AMBIGUOUS: Final = re.compile(r"[\\\x00-\x20\x7f]")


def _judge(policy: EgressPolicy, url: str) -> bool:
    if _AMBIGUOUS.search(url) is not None:
        return False
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:  # userinfo: "http://a.internal@evil/" has fooled parsers
            return False
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # "http://[::1" and friends
        return False
    if not host or "%" in host:  # a zone id or an encoded host: the clients differ
        return False
    return any(pattern.matches(host, port) for pattern in policy._patterns)


_judge_cached = lru_cache(maxsize=512)(_judge)


def set_egress_policy(policy: EgressPolicy | None) -> EgressPolicy:
    """Set the process-wide egress policy; return the old one.

    None goes back to the policy of the process-wide config
    (``egress_allowed_hosts``, ``baggage_without_url``).
    """
    if policy is not None and not isinstance(policy, EgressPolicy):
        raise TypeError(f"expected an EgressPolicy, got {type(policy).__name__}")
    old = get_egress_policy()
    _Defaults.egress = policy
    return old


def get_egress_policy() -> EgressPolicy:
    """The process egress policy: the one set, else the one the config describes."""
    explicit = _Defaults.egress
    if explicit is not None:
        return explicit
    config = get_telemetry_manager().config
    key = (config.egress_allowed_hosts, config.baggage_without_url)
    cached = _Defaults.egress_from_config
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        policy = EgressPolicy.allow(
            config.egress_allowed_hosts, baggage_without_url=config.baggage_without_url
        )
    except ValueError as exc:  # a bad host pattern in the environment: no baggage to URLs
        _logger.warning("tenantrace: egress_allowed_hosts ignored (%s)", exc)
        policy = EgressPolicy(baggage_without_url=config.baggage_without_url)
    _Defaults.egress_from_config = (key, policy)
    return policy


class _Defaults:
    """The process-wide policies (replaced whole; reads need no lock).

    None: derived from the process-wide config (cached by its values).
    """

    trust: TenantTrustPolicy | None = None
    egress: EgressPolicy | None = None
    from_config: tuple[object, TenantTrustPolicy] | None = None
    egress_from_config: tuple[object, EgressPolicy] | None = None
