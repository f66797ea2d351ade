#!/usr/bin/env bash
# The host daemons of `xoscar up` and their logs (issue 12): up returns with its daemons detached from the caller's
# terminal and pipes; every pool logs to its own file in the cluster's run directory (and where asked: a host in the
# foreground logs to its stderr too); one log level (the file's log_level, then XO_LOG_LEVEL, then --log-level)
# reaches every pool; `xoscar logs` merges them by time, picks one pool, follows; `status --json` parses as JSON and
# says what the table says. Every check runs and reports, so that a run on a build without these shows each one.
#
#   cli_daemon_test.sh BUILD_DIR
set -uo pipefail
build=$(cd "$1" && pwd)
cli=$build/cluster/xoscar
work=$(mktemp -d)
. "$(dirname "$0")/ports.sh"
port=$(free_port_base) || exit 1
failures=0
unset XO_LOG_LEVEL XO_LOG_FILE
bad() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
# file LEVEL: a cluster file with that log_level (and the tune profile it will get)
cluster() {
    cat >"$work/c-$1.yaml" <<YAML
name: dtest
secret: "daemon test secret"
modules: [$build/tests/modules/libxo_test_actors.so]
log_level: $1
placement: {profile: $work/profile.json}
hosts:
  - name: solo
    address: 127.0.0.1
    port: $port
    launcher: local
    pools: [{count: 2}]
YAML
    echo "$work/c-$1.yaml"
}
runs=()
down_all() { for r in "${runs[@]}"; do XO_RUN_DIR=$r timeout 20 "$cli" down "$work/c-info.yaml" >/dev/null 2>&1; done; }
trap 'down_all; rm -rf "$work"' EXIT
use_run() { export XO_RUN_DIR=$work/$1; runs+=("$XO_RUN_DIR"); logs=$XO_RUN_DIR/dtest; }
# pool_pids FILE: the pids of the table's pools, main first (empty when the table does not show them up)
pool_pids() { timeout 20 "$cli" status "$1" 2>/dev/null | awk 'NR > 1 && $5 == "up" {print $3}'; }
# wait_for FILE PATTERN SECONDS: until a line of FILE matches
wait_for() {
    local i
    for i in $(seq $((${3} * 10))); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# lines_named FILE NAME: how many log lines of FILE name NAME as their writer, and how many name another
lines_named() {
    awk -v name="$2" '/^\[[EWIDT] [0-9-]+T[0-9:.]+Z / {if ($3 == name) mine++; else other++}
                      END {printf "%d %d\n", mine, other}' "$1" 2>/dev/null || echo "0 0"
}
levels() { grep -ho '^\[[EWIDT] ' "$@" 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ',' ; }

f=$(cluster info)
main=127.0.0.1:$port

# ---- 1: up returns at once even when its output is a pipe; the daemons hold none of the caller's descriptors ----
use_run run1
timeout 20 bash -c '"$0" up "$1" 2>&1 | cat' "$cli" "$f" >"$work/up.out"; rc=$?
if [ $rc -eq 0 ] && grep -q "host solo up at $main" "$work/up.out"; then ok "up ... 2>&1 | cat returned"
else bad "up ... 2>&1 | cat: exit $rc (124: it did not return): $(cat "$work/up.out")"; fi
# the daemon's lines from before it was ready still reach up's caller (the profile is not measured yet)
grep -q "placement.profile not used" "$work/up.out" || bad "up's output lacks the daemon's startup warning: $(cat "$work/up.out")"
pids=($(pool_pids "$f"))
[ ${#pids[@]} -eq 3 ] || bad "status shows ${#pids[@]} pools up, expected 3"
daemon=${pids[0]:-0}
if [ "$(readlink "/proc/$daemon/fd/0")" = /dev/null ] && [ "$(readlink "/proc/$daemon/fd/1")" = "$logs/solo.log" ] &&
    [ "$(readlink "/proc/$daemon/fd/2")" = "$logs/solo.log" ]; then ok "the daemon's stdin is /dev/null, its stdout and stderr its log"
else bad "daemon $daemon: fd 0 $(readlink "/proc/$daemon/fd/0"), 1 $(readlink "/proc/$daemon/fd/1"), 2 $(readlink "/proc/$daemon/fd/2")"; fi
for p in "${pids[@]}"; do
    held=$(for fd in /proc/$p/fd/*; do readlink "$fd"; done 2>/dev/null | grep -E '^pipe:|^/dev/pts|^/dev/tty' | sort -u | tr '\n' ' ')
    [ -z "$held" ] || bad "pool pid $p holds $held"
    [ "$(ps -o tty= -p "$p" | tr -d ' ')" = "?" ] || bad "pool pid $p has a terminal"
done

# ---- 2: one file per pool in the run directory, each with that pool's lines only (its name and pid) ------------
for k in 0 1 2; do
    if [ $k -eq 0 ]; then file=$logs/solo.log; name=$main; else file=$logs/solo@$k.log; name=$main/$k; fi
    read -r mine other < <(lines_named "$file" "$name")
    pid=${pids[$k]:-x}
    if [ "$mine" -ge 1 ] && [ "$other" -eq 0 ] && grep -q "^\[I .* $name pid $pid " "$file"; then ok "$file: $mine lines of $name (pid $pid), info level"
    else bad "$file: $mine lines of $name, $other of others, an info line of pid $pid: $(grep -c "pid $pid" "$file" 2>/dev/null)"; fi
done

# ---- 5: status --json: the table's facts, parsed by a JSON parser; the profile's age once there is one ---------
json=$(timeout 20 "$cli" status "$f" --json); rc=$?
echo "$json" >"$work/status.json"
check_json() {
    python3 - "$work/status.json" "$1" "$main" "$logs" "${pids[*]}" <<'PY'
import json, sys
path, phase, main, logs, pids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split()
d = json.load(open(path))
assert d["cluster"] == "dtest" and d["down"] == 0, d
(h,) = d["hosts"]
assert h["name"] == "solo" and h["address"] == main, h
assert [p["address"] for p in h["pools"]] == [main, main + "/1", main + "/2"], h["pools"]
assert [p["index"] for p in h["pools"]] == [0, 1, 2] and [p["main"] for p in h["pools"]] == [True, False, False]
assert [str(p["pid"]) for p in h["pools"]] == pids, (h["pools"], pids)
assert all(p["state"] == "up" and isinstance(p["actors"], int) for p in h["pools"]), h["pools"]
assert [p["log"] for p in h["pools"]] == [logs + "/solo.log", logs + "/solo@1.log", logs + "/solo@2.log"], h["pools"]
prof = d["profile"]
if phase == "before":
    assert "error" in prof and "age_s" not in prof, prof
else:
    assert 0 <= prof["age_s"] < 600 and prof["pairs"] == 9 and prof["covers"] == 3, prof
PY
}
if [ $rc -eq 0 ] && check_json before; then ok "status --json parses and matches the table"
else bad "status --json: exit $rc: $(head -c 600 "$work/status.json")"; fi
timeout 60 "$cli" tune "$f" --quick >/dev/null 2>&1 || bad "tune --quick"
timeout 20 "$cli" status "$f" --json >"$work/status.json"
if check_json after; then ok "status --json: the profile's age"; else bad "status --json with a profile: $(head -c 600 "$work/status.json")"; fi

# ---- 4: xoscar logs: all pools merged by time, one pool by name, NAME/N or address; -f follows ------------------
timeout 20 "$cli" logs "$f" >"$work/all.out"; rc=$?
named() { awk -v name="$2" '$3 == name' "$1" | wc -l; }
if [ $rc -eq 0 ] && [ "$(named "$work/all.out" "$main")" -ge 1 ] && [ "$(named "$work/all.out" "$main/1")" -ge 1 ] &&
    [ "$(named "$work/all.out" "$main/2")" -ge 1 ] && awk '{print $2}' "$work/all.out" | LC_ALL=C sort -c 2>/dev/null &&
    [ "$(wc -l <"$work/all.out")" -eq "$(cat "$logs"/solo*.log | wc -l)" ]; then ok "logs: $(wc -l <"$work/all.out") lines of 3 pools, in time order"
else bad "logs: exit $rc: $(head -c 600 "$work/all.out")"; fi
for sel in "solo=$main" "solo/1=$main/1" "$main/2=$main/2" "$main=$main"; do
    p=${sel%%=*}; want=${sel#*=}
    timeout 20 "$cli" logs "$f" --pool "$p" >"$work/one.out"; rc=$?
    n=$(named "$work/one.out" "$want"); all=$(grep -c '^\[' "$work/one.out")
    if [ $rc -eq 0 ] && [ "$n" -ge 1 ] && [ "$n" -eq "$all" ]; then ok "logs --pool $p: $n lines, all of $want"
    else bad "logs --pool $p: exit $rc, $n of $all lines of $want"; fi
done
# a line that is no log line (a crash report a pool wrote to stderr) stays after the line before it in its file
last=$(grep '^\[' "$logs/solo@1.log" | tail -1)
echo "raw text without a time" >>"$logs/solo@1.log"
timeout 20 "$cli" logs "$f" >"$work/all.out"
after=$(grep -A1 -F -x -- "$last" "$work/all.out" | tail -1)
[ "$after" = "raw text without a time" ] && ok "logs: a line without a time stays after its file's line before it" ||
    bad "logs: the line after sub pool 1's last is '$after'"
timeout 20 "$cli" logs "$f" --pool nosuch >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 2 ] && grep -q "no host named 'nosuch'" "$work/err" || bad "logs --pool nosuch: exit $rc: $(cat "$work/err")"
timeout 20 "$cli" logs >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 2 ] && grep -q "^  logs FILE" "$work/err" || bad "logs without a file: exit $rc: $(cat "$work/err")"
timeout 20 "$cli" logs "$f" --frobnicate >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 2 ] && grep -q "^  logs FILE" "$work/err" || bad "logs --frobnicate: exit $rc: $(cat "$work/err")"
# -f: a sub pool killed and restarted by its host shows up in the running follower (its new file lines)
timeout 30 "$cli" logs "$f" -f >"$work/follow.out" 2>&1 &
follower=$!
if wait_for "$work/follow.out" "serving at $main/2" 5; then
    kill -9 "${pids[2]:-0}" 2>/dev/null
    for i in $(seq 100); do [ "$(grep -c "serving at $main/2" "$work/follow.out")" -ge 2 ] && break; sleep 0.1; done
    if [ "$(grep -c "serving at $main/2" "$work/follow.out")" -ge 2 ] && kill -0 $follower 2>/dev/null; then
        ok "logs -f: the restarted sub pool's line came, and it still follows"
    else bad "logs -f: no line of the restarted sub pool in 10 s: $(tail -c 600 "$work/follow.out")"; fi
else bad "logs -f: nothing in 5 s: $(head -c 600 "$work/follow.out")"; fi
kill $follower 2>/dev/null; wait $follower 2>/dev/null
timeout 20 "$cli" down "$f" >/dev/null || bad "down"
timeout 20 "$cli" status "$f" --json >"$work/status.json" 2>/dev/null; rc=$?
python3 - "$work/status.json" <<'PY' && [ $rc -eq 3 ] && ok "status --json of a stopped cluster: exit 3, every pool down" || bad "status --json after down: exit $rc: $(head -c 400 "$work/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
pools = d["hosts"][0]["pools"]
assert d["down"] == 3 and len(pools) == 3, d
assert all(p["state"] != "up" and p["pid"] is None and p["actors"] is None for p in pools), pools
PY

# ---- 3: one log level for every pool: the file's, then XO_LOG_LEVEL, then --log-level -------------------------
# fg_levels RUN LEVEL-IN-FILE ENV CLI-LEVEL: runs the host in the foreground, every pool writing to its stderr, and
# prints per pool (main first, by pid) how many debug lines it wrote, e.g. "5 2 2"
fg_levels() {
    use_run "$1"
    local file; file=$(cluster "$2")
    env ${3:+XO_LOG_LEVEL=$3} timeout 30 "$cli" ${4:+--log-level $4} up "$file" --foreground >"$work/lv.out" 2>"$work/lv.err" &
    local up=$! p counts=""
    wait_for "$work/lv.out" "Ctrl-C stops it" 10 || bad "foreground up ($*): $(cat "$work/lv.err")"
    local lpids=($(pool_pids "$file"))
    kill -TERM $up 2>/dev/null; wait $up 2>/dev/null
    for p in "${lpids[@]}"; do counts+="$(grep -c "^\[D .* pid $p " "$work/lv.err") "; done
    echo "${counts% }"
}
all_debug() { [ "$(echo "$1" | wc -w)" -eq 3 ] && ! echo " $1 " | grep -q " 0 "; }
c=$(fg_levels run2 error debug "")
all_debug "$c" && ok "XO_LOG_LEVEL=debug wins over the file's error in every pool ($c debug lines)" ||
    bad "XO_LOG_LEVEL=debug over log_level: error: debug lines per pool: $c"
c=$(fg_levels run3 error "" debug)
all_debug "$c" && ok "--log-level debug wins over the file's error in every pool ($c debug lines)" ||
    bad "--log-level debug over log_level: error: debug lines per pool: $c"
c=$(fg_levels run4 debug debug error)
[ "$c" = "0 0 0" ] && ok "--log-level error wins over XO_LOG_LEVEL=debug and the file's debug in every pool" ||
    bad "--log-level error over XO_LOG_LEVEL=debug and log_level: debug: debug lines per pool: $c"
c=$(fg_levels run5 debug "" "")
all_debug "$c" && ok "the file's debug reaches every pool ($c debug lines)" ||
    bad "log_level: debug alone: debug lines per pool: $c"
# the same setting reaches a daemon's pools, whose lines go to their files
use_run run6
XO_LOG_LEVEL=debug timeout 20 "$cli" up "$(cluster error)" >/dev/null 2>&1 || bad "up with XO_LOG_LEVEL=debug"
timeout 20 "$cli" down "$f" >/dev/null 2>&1
n=0; for k in .log @1.log @2.log; do grep -q '^\[D ' "$logs/solo$k" 2>/dev/null && n=$((n + 1)); done
[ $n -eq 3 ] && ok "XO_LOG_LEVEL=debug: debug lines in the 3 pools' files" || bad "XO_LOG_LEVEL=debug: debug lines in $n of the 3 pools' files"
use_run run7
timeout 20 "$cli" --log-level loud up "$f" >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 2 ] && grep -q "log-level" "$work/err" && [ ! -e "$logs/solo.pid" ] || bad "--log-level loud: exit $rc: $(cat "$work/err")"
XO_LOG_LEVEL=loud timeout 20 "$cli" up "$f" >/dev/null 2>"$work/err"; rc=$?
[ $rc -eq 2 ] && grep -q "XO_LOG_LEVEL" "$work/err" && [ ! -e "$logs/solo.pid" ] || bad "XO_LOG_LEVEL=loud: exit $rc: $(cat "$work/err")"
timeout 20 "$cli" down "$f" >/dev/null 2>&1

# ---- 2 (where asked): a host in the foreground logs to its stderr as well as to its pools' files ---------------
use_run run8
timeout 30 "$cli" up "$f" --foreground >"$work/fg.out" 2>"$work/fg.err" &
fg=$!
if wait_for "$work/fg.out" "Ctrl-C stops it" 10; then
    if wait_for "$work/fg.err" "serving at $main/1" 5 && wait_for "$logs/solo@1.log" "serving at $main/1" 5 &&
        grep -q "host solo up at $main" "$work/fg.err" && grep -q "host solo up at $main" "$logs/solo.log"; then
        ok "foreground: lines on stderr and in the files"
    else bad "foreground: stderr $(head -c 300 "$work/fg.err"); files: $(levels "$logs"/solo*.log)"; fi
    n=$(grep -c "serving at $main/1" "$logs/solo@1.log" 2>/dev/null)
    [ "${n:-0}" -eq 1 ] || bad "foreground: solo@1.log has its line ${n:-0} times, expected once"
else bad "foreground up did not start: $(cat "$work/fg.err")"; fi
kill -TERM $fg 2>/dev/null; wait $fg 2>/dev/null

if [ $failures -ne 0 ]; then echo "FAILED: $failures checks" >&2; exit 1; fi
echo "PASS: up detached from a pipe, a log file per pool, one log level (file < XO_LOG_LEVEL < --log-level), logs (merged, --pool, -f), status --json"
