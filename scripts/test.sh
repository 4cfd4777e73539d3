#!/usr/bin/env bash
# Everything CI checks: lint, types, docs, then the whole test suite (real Phoenix,
# PostgreSQL, Redis and RabbitMQ included; with CI=true a missing service fails).
set -euo pipefail
. "$(dirname "$0")/_venv.sh" "[dev]"
# Debian packages the tests use: headless Chromium renders the analytics report,
# a real Prometheus server scrapes the per-tenant metrics endpoint.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "warning: could not install$missing; the tests that need them will say why" >&2
fi
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/mypy
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
exec .venv/bin/pytest "$@"
