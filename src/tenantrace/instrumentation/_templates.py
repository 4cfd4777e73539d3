"""Project names from the tenant templates, their exact inverse, and the checks that
keep them injective (one project name, one tenant and service)."""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Final

from tenantrace.instrumentation.tenants import is_valid_tenant_id, validate_tenant_id

__all__ = [
    "DEFAULT_PROJECT_TEMPLATE",
    "DEFAULT_SERVICE_TEMPLATE",
    "check_injective",
    "check_template",
    "format_project_name",
    "read_project_name",
    "require",
]

DEFAULT_PROJECT_TEMPLATE: Final = "cogniverse-{tenant_id}"
DEFAULT_SERVICE_TEMPLATE: Final = "cogniverse-{tenant_id}-{service}"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# Project names must be injective: ("acme", service "prod") and tenant
# "acme-prod" must not share "cogniverse-acme-prod". Tenant ids and services
# may hold the punctuation the service template uses as separators, so those
# characters are escaped, each to a character no id can hold, in the tenant of
# a tenant-only project and in the service of a service project. The service
# project keeps its tenant as is ("cogniverse-tenant-123-video", as the seeds
# name it); the tenant-only project of a tenant with a separator in its id is
# the one that reads differently ("cogniverse-acme~prod").
_ESCAPES: Final = {"-": "~", ".": "!", "_": "*", "@": "$"}


def format_project_name(
    project_template: str, service_template: str, tenant_id: str, service: str | None
) -> str:
    """``TelemetryConfig.get_project_name``: the tenant (and service) validated, then named."""
    tenant = validate_tenant_id(tenant_id)
    if service is None:
        escape = _escaper(service_template)
        return project_template.format(tenant_id=tenant.translate(escape))
    validate_tenant_id(service, what="service/project name")
    escape = _escaper(service_template)
    return service_template.format(tenant_id=tenant, service=service.translate(escape))


def read_project_name(
    project_template: str, service_template: str, name: str
) -> tuple[str, str | None] | None:
    """``TelemetryConfig.parse_project_name``: the exact inverse of ``format_project_name``."""
    for template, pattern in _project_patterns(project_template, service_template):
        for match in (pattern.fullmatch(name), _lazy(pattern).fullmatch(name)):
            if match is None:
                continue
            unescape = _unescaper(service_template)
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
                and format_project_name(project_template, service_template, tenant, service) == name
            ):
                return tenant, service
    return None


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
def check_injective(project_template: str, service_template: str) -> None:
    """Refuse templates that give two (tenant, service) pairs one project name."""
    check_template(project_template, "tenant_project_template", ("tenant_id",))
    check_template(service_template, "tenant_service_template", ("tenant_id", "service"))
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
            require(
                other == pair,
                f"tenant_project_template {project_template!r} and tenant_service_template "
                f"{service_template!r} give {other} and {pair} the same project {name!r}; "
                "put a separator (such as '-') between {tenant_id} and {service}",
            )


def check_template(template: str, name: str, allowed: tuple[str, ...]) -> None:
    try:
        placeholders = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{name} is not a valid format string: {template!r} ({exc})") from None
    require("tenant_id" in placeholders, f"{name} must contain '{{tenant_id}}', got {template!r}")
    extra = placeholders - set(allowed)
    require(not extra, f"{name} has unknown placeholder(s) {sorted(extra)}: {template!r}")
