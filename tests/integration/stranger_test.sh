#!/usr/bin/env bash
# Strangers at a pool's door: a client with the wrong cluster secret, raw garbage, and a 4 GiB length prefix on the
# pool's TCP port. Each gets nothing (no actor is reached) and the pool keeps serving the clients that know the
# secret.
#
#   stranger_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
pool=$build/cluster/xoscar-pool
cli=$build/cluster/xoscar
module=$build/tests/modules/libxo_test_actors.so
. "$(dirname "$0")/ports.sh"
port=$(free_port_base)
addr="127.0.0.1:$port"
out=$(mktemp)
fail() { echo "FAIL: $*" >&2; exit 1; }
trap '' PIPE # the pool hangs up on strangers: our writes then fail with EPIPE instead of killing this shell
XO_SECRET=s3cret "$pool" --address "$addr" --module "$module" >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out"' EXIT
for i in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done

export XO_TRANSPORT=tcp
[ "$(XO_SECRET=s3cret "$cli" create "$addr" Counter --uid c '[1]')" = c ] || fail "a client with the secret"

# wrong secret: refused during the handshake, before any message
set +e
err=$(XO_SECRET=wrong "$cli" call "$addr" c get 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "a wrong secret was accepted"
echo "$err" | grep -q "XO_EAUTH" || fail "wrong secret: expected XO_EAUTH, got: $err"

# garbage and an oversize length prefix on the raw TCP port
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3 || true
exec 3>&-
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff' >&3 || true
exec 3>&-
exec 3<>"/dev/tcp/127.0.0.1/$port"
head -c 65536 /dev/urandom >&3 || true
exec 3>&-

kill -0 $pid || fail "the pool died"
[ "$(XO_SECRET=s3cret "$cli" call "$addr" c add '[1]')" = 2 ] || fail "the pool stopped serving after the strangers"
echo "PASS: wrong secret refused ($(echo "$err" | head -1)); garbage, 4 GiB prefix and random bytes ignored; pool serves"
