# Sourced by the tests that start pools on this machine's loopback: a TCP port base nobody else is using.
#
#   port=$(free_port_base)   prints a multiple of 10 in [20000, 31000) such that base..base+9 (main and sub pools)
#                            and base+500..base+509 (their UCX listeners) have no socket in any state, reserved for
#                            this shell until it exits
#
# Why: the tests run in parallel (ctest -j) and used to draw random ports independently; two drawing the same one, or
# one drawing a port another test's connection had as its ephemeral port, failed `xoscar up` with "Address already
# in use" (seen in CI). The range stays below Linux's ephemeral ports (32768+). The reservation is a directory named
# after the port holding the reserving shell's pid: mkdir is atomic, and a reservation whose shell is gone is taken
# over, so a killed test leaves nothing that blocks later ones.

free_port_base() {
    local dir=${TMPDIR:-/tmp}/xo-test-ports base p used owner tries
    mkdir -p "$dir"
    for tries in $(seq 200); do
        base=$((20000 + (RANDOM % 1100) * 10))
        if command -v ss >/dev/null; then
            used=$(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')
            for p in $(seq "$base" $((base + 9))) $(seq $((base + 500)) $((base + 509))); do
                grep -qx "$p" <<<"$used" && continue 2
            done
        fi
        if ! mkdir "$dir/$base" 2>/dev/null; then
            owner=$(cat "$dir/$base/pid" 2>/dev/null || true)
            [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
            # Stale (its shell exited) or being written right now: take it only if still stale a moment later.
            sleep 0.05
            owner=$(cat "$dir/$base/pid" 2>/dev/null || true)
            [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
        fi
        echo $$ >"$dir/$base/pid"
        # Reservations of shells that have exited are pruned here, so they do not pile up.
        for p in "$dir"/*/pid; do
            owner=$(cat "$p" 2>/dev/null || true)
            [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null && rm -rf "${p%/pid}"
        done
        echo "$base"
        return 0
    done
    echo "free_port_base: no free port range in 200 tries" >&2
    return 1
}
