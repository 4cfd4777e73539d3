# Sourced by the other scripts: a project-local virtualenv with the project installed.
# Usage: . scripts/_venv.sh "EXTRAS"   (EXTRAS like "" or "[dev]")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e ".${1:-}"
