#!/usr/bin/env bash
# The xoscar CLI over a cluster file: up (daemons), status, call/create with JSON, down (nothing left), and the
# errors: a bad cluster file (file:line:col, exit 2), a second up of a running host, a call to a stopped cluster.
#
#   cli_cluster_test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/cluster_lib.sh"
cluster_begin "$1"
port=$(free_port_base)
cat >"$work/c.yaml" <<YAML
name: clitest
secret: "cli test secret"
modules: [$build/tests/modules/libxo_test_actors.so]
hosts:
  - name: solo
    address: 127.0.0.1
    port: $port
    launcher: local
    pools: [{count: 2, labels: [w]}]
YAML
down_local_on_exit "$work/c.yaml"

"$cli" up "$work/c.yaml" | grep -q "host solo up at 127.0.0.1:$port" || fail "up"
set +e
"$cli" up "$work/c.yaml" 2>/dev/null; rc=$?
set -e
[ $rc -ne 0 ] || fail "a second up of a running host succeeded"
status=$("$cli" status "$work/c.yaml")
[ "$(echo "$status" | grep -c ' up')" -eq 3 ] || fail "status: $status"
pids=$(echo "$status" | awk 'NR > 1 {print $3}')

# a client of the cluster: the secret comes from the file through `xoscar run`
"$cli" run "$work/c.yaml" -- "$cli" create "127.0.0.1:$port/1" Counter --uid c '[40]' | grep -qx c || fail "create"
[ "$("$cli" run "$work/c.yaml" -- "$cli" call "127.0.0.1:$port/1" c add '[2]')" = 42 ] || fail "call"
# without the secret: refused, with the exit code of "the pool refused us"
set +e
"$cli" call "127.0.0.1:$port/1" c get 2>/dev/null; rc=$?
set -e
[ $rc -eq 3 ] || fail "a call without the secret: exit $rc, expected 3"
# --cluster FILE: the secret from the file, a host named by the file (solo/1 is its sub pool 1)
[ "$("$cli" --cluster "$work/c.yaml" call solo/1 c add '[1]')" = 43 ] || fail "--cluster with a host name"
[ "$("$cli" --cluster "$work/c.yaml" call "127.0.0.1:$port/1" c get)" = 43 ] || fail "--cluster with an address"
set +e
err=$("$cli" --cluster "$work/c.yaml" call nosuch c get 2>&1); rc=$?
set -e
[ $rc -eq 2 ] && echo "$err" | grep -q "has no host named 'nosuch'" || fail "--cluster, unknown host: exit $rc: $err"

# actors: one pool, a host of the file, the whole cluster; a stateful actor's waiting messages are counted
"$cli" --cluster "$work/c.yaml" create solo/2 Slow --uid napper >/dev/null || fail "create Slow"
# The first nap outlasts the checks even where each CLI run takes seconds (a TSan build); the listing is asked
# until the two short naps have arrived behind it.
"$cli" --cluster "$work/c.yaml" tell solo/2 napper nap '[30000]'
"$cli" --cluster "$work/c.yaml" tell solo/2 napper nap '[1]'
"$cli" --cluster "$work/c.yaml" tell solo/2 napper nap '[1]'
for i in $(seq 50); do
    row=$("$cli" --cluster "$work/c.yaml" actors solo/2 | awk '$2 == "napper"')
    [ "$(echo "$row" | awk '{print $3, $4, $5, $6}')" = "Slow alive 2 1" ] && break
    sleep 0.1
done
[ "$(echo "$row" | awk '{print $3, $4, $5, $6}')" = "Slow alive 2 1" ] || fail "actors solo/2: '$row'"
all=$("$cli" actors "$work/c.yaml" --json)
[ "$(echo "$all" | grep -c '"state": "up"')" -eq 3 ] || fail "actors FILE --json: not 3 pools up: $all"
echo "$all" | grep -q '"uid": "c"' && echo "$all" | grep -q '"uid": "xo.host"' || fail "actors FILE --json: $all"
[ "$("$cli" actors "$work/c.yaml" solo | awk 'NR > 1' | cut -d' ' -f1 | sort -u | wc -l)" -eq 3 ] ||
    fail "actors FILE solo: not its 3 pools"
set +e
"$cli" actors "$work/c.yaml" nosuch 2>/dev/null; rc=$?
"$cli" actors 127.0.0.1:1 >/dev/null 2>&1; rc2=$?
set -e
[ $rc -eq 2 ] && [ $rc2 -eq 3 ] || fail "actors: an unknown host exits $rc (want 2), an unreachable pool $rc2 (want 3)"

"$cli" down "$work/c.yaml" | grep -q "host solo down" || fail "down"
for p in $pids; do
    if kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then fail "pid $p still runs"; fi
done
set +e
"$cli" run "$work/c.yaml" -- "$cli" call "127.0.0.1:$port" xo.host register '["x", "y"]' 2>/dev/null; rc=$?
set -e
[ $rc -eq 3 ] || fail "call to a stopped cluster: exit $rc, expected 3"

# a stale pid file whose pid now belongs to an unrelated process (pid reuse): down must not signal it, up must
# not refuse with "already up" (issue 10, item 10; both trusted the pid before)
sleep 60 & decoy=$!
echo "$decoy 127.0.0.1:$port" >"$XO_RUN_DIR/clitest/solo.pid"
out=$("$cli" down "$work/c.yaml") || fail "down with a stale pid file: exit $?"
echo "$out" | grep -q "stale" || fail "down with a stale pid file: $out"
kill -0 "$decoy" 2>/dev/null || fail "down signalled pid $decoy, which is not the daemon"
echo "$decoy 127.0.0.1:$port" >"$XO_RUN_DIR/clitest/solo.pid"
"$cli" up "$work/c.yaml" | grep -q "host solo up" || fail "up refused over a stale pid file"
"$cli" down "$work/c.yaml" | grep -q "host solo down" || fail "down after an up over a stale pid file"
kill -0 "$decoy" 2>/dev/null || fail "pid $decoy was signalled"
kill "$decoy"; wait "$decoy" 2>/dev/null || true

# a bad cluster file: refused with its position, nothing started
printf 'secret: s\nhosts:\n  - name: a\n    address: 127.0.0.1\n    pools: [{cpu: 1}]\n' >"$work/bad.yaml"
set +e
err=$("$cli" up "$work/bad.yaml" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad file: exit $rc"
echo "$err" | grep -q "bad.yaml:5:14: .*unknown key 'cpu'" || fail "bad file message: $err"
! echo "$err" | grep -q "usage" || fail "a bad file is followed by a usage text: $err"

# usage: per-command help, --version, numbers that do not parse
"$cli" up --help | grep -q "^  up FILE" || fail "up --help"
! "$cli" up --help | grep -q "^  call " || fail "up --help shows other commands"
"$cli" --version | grep -Eq "^xoscar [0-9]+\.[0-9]+\.[0-9]+$" || fail "--version"
set +e
"$cli" --timeout abc info "127.0.0.1:$port" 2>/dev/null; rc=$?
set -e
[ $rc -eq 2 ] || fail "--timeout abc: exit $rc, expected 2"
set +e
serr=$("$cli" status 2>&1); rc=$?
set -e
[ $rc -eq 2 ] && echo "$serr" | grep -q "^  status FILE" || fail "status without a file: exit $rc: $serr"
echo "PASS: up, status, run/create/call, actors, secret enforced, down leaves nothing, stale pid file ignored, bad file refused: ${err%%$'\n'*}"
