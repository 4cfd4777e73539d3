#!/usr/bin/env bash
# The main job: a small multi-tenant app, traced, each tenant's trace tree printed.
# No server needed (embedded in-memory exporter). Pass --endpoint HOST:PORT to send
# the same spans to a real OTLP collector (e.g. Arize Phoenix) instead.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" ""
exec .venv/bin/tenantrace demo "$@"
