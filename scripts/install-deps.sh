#!/usr/bin/env bash
# Installs what Xoscar-C builds and tests with, from Debian 12's packages. Idempotent; needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      libmsgpack-dev libyaml-dev libhwloc-dev libucx-dev libssl-dev
      libgtest-dev googletest clang libclang-rt-14-dev iproute2 libjansson-dev
      python3 python3-dev python3-venv)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Python client's tests (scripts/test-python.sh): a virtual environment with what building and testing
# python/ needs, from PyPI with pip. Kept when it already has them.
venv=${XO_PYENV:-$(cd "$(dirname "$0")/.." && pwd)/.pyenv}
if ! "$venv/bin/python" -c "import pytest, setuptools, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "setuptools>=61" wheel pytest numpy
fi
echo "dependencies ok"
