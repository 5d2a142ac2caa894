#!/usr/bin/env bash
# Installs what tests/test_browser.py needs: Debian's chromium and the Python playwright package.
# Idempotent and quiet. Never runs `playwright install`: browser downloads are impossible here, so the
# test drives Debian's /usr/bin/chromium through playwright's executable_path instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"  # CI runs as root; a developer may not
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    "$PY" -m pip install -q playwright
fi

echo "browser deps: $(chromium --version 2>/dev/null | head -1); playwright $("$PY" -c 'from importlib.metadata import version; print(version("playwright"))')"
