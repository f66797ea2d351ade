#!/usr/bin/env bash
# Installs what Xoscar-C builds and tests with, from Debian 12's packages. Idempotent; needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      libmsgpack-dev libyaml-dev libhwloc-dev libucx-dev libssl-dev
      libgtest-dev googletest clang libclang-rt-14-dev iproute2 libjansson-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "dependencies ok"
