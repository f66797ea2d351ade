#!/usr/bin/env bash
# scripts/test-python.sh [BUILD_DIR]: installs python/ (xoscar_c) against BUILD_DIR's libxoscar into the test
# virtual environment that scripts/install-deps.sh made ($XO_PYENV, default .pyenv), then runs its pytest suite
# against a real cluster (python/tests). Exits non-zero when anything fails; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
venv=${XO_PYENV:-$PWD/.pyenv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytest, setuptools" 2>/dev/null; then
    echo "test-python: no test environment at $venv (run scripts/install-deps.sh)" >&2
    exit 1
fi
XOSCAR_C_BUILD_DIR=$build "$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps ./python
XOSCAR_C_BUILD_DIR=$build "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
