#!/usr/bin/env bash
# bench/gpu_run.sh: the GPU checks of issue #5 in ONE go, for a session lent a GPU machine (a few minutes on an H100:
# build about 2 min with 16 cores, tests under 1 min, benchmarks about 1 min).
#
#   bench/gpu_run.sh OUT_DIR [--deps DIR] [--build DIR] [--runs N] [--allow-no-gpu] [--all-tests] [--no-bench]
#       (OUT_DIR and --deps relative to the caller's directory; --build relative to the repository root)
#       1. checks for a GPU (nvidia-smi -L); none: writes OUT_DIR/summary.txt saying so and exits 3, unless
#          --allow-no-gpu (then every step still runs and the CUDA steps skip with CUDA's own error text: the way
#          to test this script on a machine without a GPU)
#       2. configures (RelWithDebInfo, tests on, CUDA on, XO_CUDA_ARCHITECTURES=90: Hopper, the H100/H200) and
#          builds into --build (default build-gpu); exits 4 when the CUDA device backend did not get built
#       3. ctest: every gpu_device case (host and cuda instances), every test named cuda/Cuda/CUDA/Nccl, the
#          collectives suite and the examples (examples.pipeline_cluster runs its pools on the GPU); --all-tests:
#          the whole suite, with one job per core (a many-core run of the concurrency tests); --no-bench: stop there
#       4. xoscar-bench --filter dev --device cuda --runs N (default 5), then the same with --device host in the
#          same session, for the ratios between the two backends on one machine
#     Writes OUT_DIR/{summary.txt, gpu_run.log, ctest.txt, bench-cuda.json, bench-cuda.txt, bench-host.json,
#     bench-host.txt} (7 files: the device tool brings back at most 8). Exit status: 0 when every step passed and
#     nothing was skipped; 1 when a step failed or a benchmark skipped (see summary.txt); 2 bad usage; 3 no GPU;
#     4 no CUDA backend.
#
#   bench/gpu_run.sh --fetch-deps DIR
#       Run HERE (a Debian 12 machine with apt): downloads the .deb files of the build dependencies the GPU image
#       may lack (msgpack-c, libyaml, hwloc, jansson, OpenSSL, GoogleTest headers and libraries, pkgconf) into DIR.
#       Name a path git ignores (build-gpudeps: .gitignore has build-*/) and pass it in the device call's carry;
#       on the GPU machine --deps DIR unpacks them (dpkg -x, under DIR/root, never into /) and points the compiler,
#       pkg-config, CMake and the loader at them. Without --deps the system's packages are used.
#
# Device-tool call (from the repository root here):
#   bench/gpu_run.sh --fetch-deps build-gpudeps
#   run(command="bench/gpu_run.sh $OUT --deps build-gpudeps", carry=["build-gpudeps"], timeout_s=540)
set -uo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")/.."
abs() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_DIR/$1" ;; esac; } # paths given relative to the caller

die() { echo "gpu_run.sh: $*" >&2; exit 2; }

# ---- --fetch-deps ----------------------------------------------------------------------------------------------
DEPS_PKGS=(libmsgpack-dev libmsgpackc2 libyaml-dev libyaml-0-2 libhwloc-dev libhwloc15 libjansson-dev libjansson4
           libssl-dev libssl3 libgtest-dev pkgconf pkgconf-bin libpkgconf3)
DEPS_IF_MISSING=(libudev1) # hwloc needs it at run time; unpacked only when the system has none
if [ "${1:-}" = "--fetch-deps" ]; then
  [ $# -eq 2 ] || die "usage: bench/gpu_run.sh --fetch-deps DIR"
  mkdir -p "$(abs "$2")" || exit 1
  (cd "$(abs "$2")" && apt-get download "${DEPS_PKGS[@]}" "${DEPS_IF_MISSING[@]}") || { echo "gpu_run.sh: apt-get download failed" >&2; exit 1; }
  du -sh "$(abs "$2")"
  exit 0
fi

# ---- options ---------------------------------------------------------------------------------------------------
OUT=${1:-}
[ -n "$OUT" ] && [ "${OUT#-}" = "$OUT" ] || die "usage: bench/gpu_run.sh OUT_DIR [--deps DIR] [--build DIR] [--runs N] [--allow-no-gpu] | --fetch-deps DIR"
shift
DEPS="" BUILD=build-gpu RUNS=5 ALLOW_NO_GPU=0 ALL_TESTS=0 BENCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --deps) DEPS=${2:?}; shift 2 ;;
    --build) BUILD=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --allow-no-gpu) ALLOW_NO_GPU=1; shift ;;
    --all-tests) ALL_TESTS=1; shift ;;
    --no-bench) BENCH=0; shift ;;
    *) die "unknown option $1" ;;
  esac
done
OUT=$(abs "$OUT")
[ -z "$DEPS" ] || DEPS=$(abs "$DEPS")
mkdir -p "$OUT" || exit 1
LOG=$OUT/gpu_run.log SUMMARY=$OUT/summary.txt
: >"$LOG"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY" "$LOG"; }
T0=$(date +%s)
step() { say "[$(($(date +%s) - T0)) s] $*"; }
FAILED=0

say "gpu_run.sh  git $(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)  $(date -u +%FT%TZ)  $(uname -n)"
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"

# ---- 1. the GPU ------------------------------------------------------------------------------------------------
GPU=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU=$(nvidia-smi -L 2>&1 | grep '^GPU ' || true)
  NVS=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 || true)
else
  NVS="nvidia-smi not found"
fi
if [ -n "$GPU" ]; then
  say "gpu: $GPU"
  say "gpu: $NVS"
else
  say "gpu: NO GPU ($NVS)"
  if [ "$ALLOW_NO_GPU" != 1 ]; then
    say "gpu_run.sh: no GPU on this machine: nothing measured (--allow-no-gpu runs the steps anyway; the CUDA ones skip)"
    exit 3
  fi
  say "gpu_run.sh: --allow-no-gpu: running every step; the CUDA tests and benchmarks skip, no CUDA number is produced"
fi

# ---- dependencies from --deps ------------------------------------------------------------------------------------
if [ -n "$DEPS" ]; then
  [ -d "$DEPS" ] || die "--deps $DEPS: no such directory (bench/gpu_run.sh --fetch-deps $DEPS, here, first)"
  ROOT=$(cd "$DEPS" && pwd)/root
  # unpacked here, on this machine: the packages' pkg-config and CMake files name /usr, rewritten to $ROOT/usr below,
  # so a tree unpacked at another path is unpacked again
  if [ "$(cat "$ROOT/.xo-root" 2>/dev/null)" != "$ROOT" ]; then
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for f in "$DEPS"/*.deb; do
      case "$(basename "$f")" in
        libudev1_*) ldconfig -p 2>/dev/null | grep -q 'libudev\.so\.1 ' && continue ;;
      esac
      dpkg-deb -x "$f" "$ROOT" || { say "gpu_run.sh: dpkg-deb -x $f failed"; exit 1; }
    done
    find "$ROOT" -name '*.pc' -exec sed -E -i "s#^([A-Za-z_]+)=/usr#\\1=$ROOT/usr#" {} +
    find "$ROOT" -path '*/cmake/*' -name '*.cmake' -exec sed -i "s#\"/usr/#\"$ROOT/usr/#g; s#\"/usr\"#\"$ROOT/usr\"#g" {} +
    echo "$ROOT" >"$ROOT/.xo-root"
  fi
  LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
  export PATH=$ROOT/usr/bin:$PATH
  export CPATH=$ROOT/usr/include${CPATH:+:$CPATH}
  export LIBRARY_PATH=$LIBDIR${LIBRARY_PATH:+:$LIBRARY_PATH}
  export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_PATH=$LIBDIR/pkgconfig:$ROOT/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export CMAKE_PREFIX_PATH=$ROOT/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export OPENSSL_ROOT_DIR=$ROOT/usr
  say "deps: $ROOT (PATH, CPATH, LIBRARY_PATH, LD_LIBRARY_PATH, PKG_CONFIG_PATH, CMAKE_PREFIX_PATH)"
fi

# ---- NCCL: the toolkit's, else a pip package's (nvidia-nccl-*: headers and libnccl.so.2, no unversioned .so) ------
NCCL_ARGS=()
if ! ls /usr/local/cuda/include/nccl.h >/dev/null 2>&1; then
  NCCL_DIR=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  if [ -n "$NCCL_DIR" ] && [ -f "$NCCL_DIR/include/nccl.h" ] && ls "$NCCL_DIR"/lib/libnccl.so* >/dev/null 2>&1; then
    NCCL_LIB=$(ls "$NCCL_DIR"/lib/libnccl.so* | head -1)
    NCCL_ARGS=(-DXO_NCCL_INCLUDE_DIR="$NCCL_DIR/include" -DXO_NCCL_LIBRARY="$NCCL_LIB")
    say "nccl: the pip package's, $NCCL_LIB"
  else
    say "nccl: none found (collectives' nccl backend not built: its test will skip)"
  fi
fi

# ---- 2. configure and build ------------------------------------------------------------------------------------
step "configure $BUILD"
if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXO_BUILD_TESTS=ON -DXO_BUILD_BENCH=ON \
     -DXO_WITH_CUDA=ON -DXO_CUDA_ARCHITECTURES=90 "${NCCL_ARGS[@]}" >>"$LOG" 2>&1; then
  say "configure FAILED (the end of gpu_run.log says why: a missing package? see --fetch-deps)"
  tail -30 "$LOG"
  exit 1
fi
if ! grep -qE '^XO_GPU_CUDA:INTERNAL=(ON|TRUE|1)$' "$BUILD/CMakeCache.txt"; then
  say "the CUDA device backend was not built: $(grep -m1 'CUDA device backend' "$LOG" || echo 'no nvcc found?')"
  [ "$ALLOW_NO_GPU" = 1 ] || exit 4
fi
step "build"
if ! cmake --build "$BUILD" -j "$(nproc)" >>"$LOG" 2>&1; then
  say "build FAILED (end of gpu_run.log)"
  tail -40 "$LOG"
  exit 1
fi

# ---- 3. tests --------------------------------------------------------------------------------------------------
# gpu_device (host and cuda instances), anything named cuda, the collectives (their NCCL case), and the examples'
# device pools (examples.pipeline_cluster: `device: auto` takes the GPU: CUDA kernels, CUDA IPC between three pools,
# and the training example's allreduce among three pools on one GPU).
TESTS='gpu_device|cuda|Cuda|CUDA|Nccl|runtime_collective|device_buf_ready|examples'
[ "$ALL_TESTS" = 1 ] && TESTS='.' # the whole suite, on this machine's cores
step "ctest -R '$TESTS'"
ctest --test-dir "$BUILD" -R "$TESTS" -j "$([ "$ALL_TESTS" = 1 ] && nproc || echo 4)" --output-on-failure \
  >"$OUT/ctest.txt" 2>&1
rc=$?
say "ctest: exit $rc, $(grep -E 'tests passed|tests failed' "$OUT/ctest.txt" | tail -1)"
# a skipped gpu_device cuda case on a GPU machine fails this check: the GPU was there and the test did not use
# it. Other skips (CollNccl without an NCCL found at configure time) are listed, not failed.
SKIPPED=$(grep -F '***Skipped' "$OUT/ctest.txt" | sed -E 's/.*Test +#[0-9]+: ([^ ]+).*/\1/')
NSKIP=$(printf '%s' "$SKIPPED" | grep -c . || true)
# (two cuda cases skip by design, saying so: the host backend's own idle-import cache, and importing a handle in
# the process that exported it, which CUDA refuses)
NSKIP_DEV=$(printf '%s' "$SKIPPED" | grep '^gpu_device.*/cuda$' | grep -vcE 'IdleImportMappingsAreReused|IpcImportsAreCounted' || true)
say "ctest: $NSKIP case(s) skipped ($NSKIP_DEV gpu_device cuda)"
printf '%s\n' "$SKIPPED" | grep . | sed 's/^/  skipped: /' | tee -a "$SUMMARY" >>"$LOG"
[ $rc -eq 0 ] || FAILED=1
[ -n "$GPU" ] && [ "$NSKIP_DEV" -gt 0 ] && FAILED=1
# what the device pipeline and the training printed (where each stage ran, on which device, which allreduce backend)
ctest --test-dir "$BUILD" -R 'examples.pipeline_cluster' -V 2>&1 | grep -E ' (in pool|trainer|pipeline|matmul|sum|Kernels|converged|data-parallel)' \
  >>"$OUT/ctest.txt" || true

# ---- 4. benchmarks ---------------------------------------------------------------------------------------------
for dev in $([ "$BENCH" = 1 ] && echo cuda host); do
  step "xoscar-bench --filter dev --device $dev --runs $RUNS"
  timeout 300 "$BUILD/bench/xoscar-bench" --filter dev --device "$dev" --runs "$RUNS" \
    --json "$OUT/bench-$dev.json" >"$OUT/bench-$dev.txt" 2>&1
  rc=$?
  say "bench $dev: exit $rc$(grep -E '^SKIP' "$OUT/bench-$dev.txt" | head -3 | sed 's/^/; /' | tr -d '\n')"
  [ $rc -eq 0 ] || FAILED=1
done
# the issue's two CUDA targets, as the bench judged them
grep -E '^dev\.cuda\.ipc\.(4KiB|256MiB)( |\.hop)' "$OUT/bench-cuda.txt" 2>/dev/null | tee -a "$SUMMARY" >>"$LOG"
step "done, exit $FAILED"
exit $FAILED
