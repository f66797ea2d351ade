#!/usr/bin/env bash
# scripts/check-install.sh [BUILD_DIR]: installs BUILD_DIR (default build) into a fresh prefix and uses it from
# outside the tree, as a user would: builds examples/out-of-tree (an actor module and a client) with
# find_package(xoscar), builds the client again with pkg-config, launches a cluster with the installed `xoscar`
# (which must start the installed xoscar-pool) loading that module, and runs both clients against it. Checks the
# plugins too: installed in lib/xoscar, loaded by the installed CLI, and absent from the core's DT_NEEDED.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
work=$(mktemp -d)
prefix=$work/prefix
xoscar=$prefix/bin/xoscar
cleanup() { [ -f "$work/oot/cluster.yaml" ] && "$xoscar" down "$work/oot/cluster.yaml" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "check-install: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/xoscar/xoscar.h lib/libxoscar.a lib/cmake/xoscar/xoscarConfig.cmake lib/pkgconfig/xoscar.pc \
         bin/xoscar bin/xoscar-pool share/doc/xoscar/README.md share/doc/xoscar/examples/cluster.yaml; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
soname=$(readelf -d "$prefix/lib/libxoscar.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ $soname =~ ^libxoscar\.so\.[0-9]+$ ]] || fail "libxoscar.so has no versioned SONAME (got '$soname')"

# The plugins (docs/plugins.md): every one the build made is installed in lib/xoscar; the core files need no CUDA,
# NCCL or UCX library; the installed CLI loads the installed plugins, and without them still runs and says why.
plugins=()
for f in "$build"/lib/xoscar/libxoscar-*.so; do
  [ -e "$f" ] || continue
  [ -f "$prefix/lib/xoscar/$(basename "$f")" ] || fail "plugin not installed: lib/xoscar/$(basename "$f")"
  plugins+=("$prefix/lib/xoscar/$(basename "$f")")
done
scripts/check_needed.sh "$prefix/lib/libxoscar.so" "$xoscar" "$prefix/bin/xoscar-pool" -- "${plugins[@]}" \
  || fail "DT_NEEDED of the installed files (above)"
version=$(env -u XO_PLUGIN_PATH "$xoscar" --version 2>&1)
for p in "${plugins[@]}"; do
  name=$(basename "$p" .so); name=${name#libxoscar-}
  grep -qxF "plugin $name: loaded $p" <<<"$version" || fail "the installed xoscar does not load $p: $version"
done
mv "$prefix/lib/xoscar" "$work/plugins-away"
version=$(env -u XO_PLUGIN_PATH "$xoscar" --version 2>&1) || fail "xoscar --version without its plugins: $version"
for p in "${plugins[@]}"; do
  name=$(basename "$p" .so); name=${name#libxoscar-}
  grep -q "^plugin $name: not loaded: not installed: $(basename "$p") is in none of " <<<"$version" \
    || fail "xoscar without its plugins does not say so for $name: $version"
done
mv "$work/plugins-away" "$prefix/lib/xoscar"

# find_package(xoscar)
cmake -S examples/out-of-tree -B "$work/oot" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/oot" >/dev/null
# pkg-config
PKG_CONFIG_PATH=$prefix/lib/pkgconfig cc -o "$work/counter_client_pc" examples/out-of-tree/counter_client.c \
  $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs xoscar)

. tests/integration/ports.sh
port=$(free_port_base)
sed "s/port: 7400/port: $port/" examples/out-of-tree/cluster.yaml >"$work/oot/cluster.yaml"
"$xoscar" up "$work/oot/cluster.yaml" >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "xoscar up"; }
# The installed CLI must have started the installed sub pool binary, not the build tree's.
pool_pid=$(pgrep -f "^$prefix/bin/xoscar-pool .*127.0.0.1:$port/1" | head -1 || true)
[ -n "$pool_pid" ] || { ps -ef | grep xoscar-pool >&2; fail "no installed xoscar-pool serves the cluster"; }
out=$("$xoscar" run "$work/oot/cluster.yaml" -- "$work/oot/counter_client") || fail "counter_client (find_package): $out"
echo "find_package client: $out"
out=$(LD_LIBRARY_PATH=$prefix/lib "$xoscar" run "$work/oot/cluster.yaml" -- "$work/counter_client_pc") \
  || fail "counter_client (pkg-config): $out"
echo "pkg-config client: $out"
# The Python client, built by pip against the installed prefix (pkg-config), in a fresh virtual environment
python3 -m venv "$work/venv"
PKG_CONFIG_PATH=$prefix/lib/pkgconfig "$work/venv/bin/pip" install -q ./python >"$work/pip.log" 2>&1 \
  || { cat "$work/pip.log"; fail "pip install ./python against the prefix"; }
ldd "$work"/venv/lib/python3*/site-packages/xoscar_c/_core*.so | grep -q "libxoscar.so.0 => $prefix/lib/" \
  || fail "xoscar_c does not load the prefix's libxoscar"
out=$("$xoscar" run "$work/oot/cluster.yaml" -- "$work/venv/bin/python" examples/python/counter_client.py) \
  || fail "python client: $out"
echo "python client: $out"
"$xoscar" down "$work/oot/cluster.yaml" >/dev/null
echo "check-install: ok (prefix layout, SONAME $soname, ${#plugins[@]} plugins and no CUDA/NCCL/UCX DT_NEEDED in" \
  "the core, find_package, pkg-config, installed CLI and pools, pip install ./python)"
