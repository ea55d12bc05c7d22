#!/usr/bin/env bash
# Install memharness and everything its tests and the quickstart need into .venv (idempotent).
# torch==2.13.0 first: it installs the CPU build from a local file; any other torch spec pulls CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
.venv/bin/python -m pip install -q torch==2.13.0 2> >(grep -v "is ignored" >&2)
.venv/bin/python -m pip install -q -c constraints/cpu-lock.txt -e ".[all,gpu,dev,explain]" 2> >(grep -v "is ignored" >&2)
# Headless Chromium renders the HTML report in its test (Debian package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed; the HTML rendering test needs it (apt-get install chromium)" >&2
  fi
fi
.venv/bin/memharness --help >/dev/null
echo "installed: $(.venv/bin/python -c 'import memharness, torch; print("memharness", memharness.__version__, "torch", torch.__version__)')"
