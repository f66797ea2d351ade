#!/usr/bin/env bash
# scripts/check_needed.sh CORE_FILE... [-- PLUGIN_FILE...]: the hardware backends are plugins (docs/plugins.md), so
# no core file (libxoscar.so, xoscar, xoscar-pool) may have a DT_NEEDED on CUDA, NCCL or UCX: fails naming each such
# entry. Each plugin file must need its own vendor library (libxoscar-cuda.so libcudart, libxoscar-nccl.so libnccl,
# libxoscar-ucx.so libucp), which shows the pattern below matches the names readelf prints. Used by the ctest
# `plugins.needed` on the build tree and by scripts/check-install.sh on an installed prefix.
set -euo pipefail
vendor='^lib(cudart|cuda|nccl|ucp|ucs|uct|ucm)\.so'
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'; }
bad=0 cores=0 plugins=0
while (($#)) && [ "$1" != "--" ]; do
  [ -f "$1" ] || { echo "check_needed: no such file: $1" >&2; exit 2; }
  hits=$(needed "$1" | grep -E "$vendor" || true)
  if [ -n "$hits" ]; then
    echo "check_needed: $1 needs $(echo $hits) (the core must load without CUDA, NCCL and UCX)"
    bad=1
  fi
  cores=$((cores + 1))
  shift
done
(($#)) && shift
for p in "$@"; do
  [ -f "$p" ] || { echo "check_needed: no such plugin: $p" >&2; exit 2; }
  case $(basename "$p") in
    libxoscar-cuda.so) want='^libcudart\.so' ;;
    libxoscar-nccl.so) want='^libnccl\.so' ;;
    libxoscar-ucx.so) want='^libucp\.so' ;;
    *) echo "check_needed: $p: not a plugin this script knows"; bad=1; continue ;;
  esac
  if ! needed "$p" | grep -Eq "$want"; then
    echo "check_needed: plugin $p does not need ${want//[\\^]/} (readelf -d: $(needed "$p" | tr '\n' ' '))"
    bad=1
  fi
  plugins=$((plugins + 1))
done
((cores)) || { echo "check_needed: no core file given" >&2; exit 2; }
((bad)) && exit 1
echo "check_needed: $cores core files need no CUDA, NCCL or UCX library; $plugins plugins need their own"
