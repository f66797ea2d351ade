# Sourced by the multi-host tests: two hosts as Linux network namespaces joined by a veth pair, with addresses we
# create and remove. Needs root and iproute2.
#
#   netns_up TAG SUBNET   creates namespaces ${TAG}a (SUBNET.1/24) and ${TAG}b (SUBNET.2/24) and sets nsa and nsb;
#                         returns 1, creating nothing, where namespaces cannot be made (not root, no ip, no right)
#   netns_down            removes both (safe when netns_up failed, and twice)

netns_up() {
    local tag=$1 subnet=$2
    nsa="${tag}a" nsb="${tag}b"
    { [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && ip netns add "$nsa" 2>/dev/null; } || return 1
    ip netns add "$nsb"
    ip link add "${tag}va" type veth peer name "${tag}vb"
    ip link set "${tag}va" netns "$nsa"
    ip link set "${tag}vb" netns "$nsb"
    ip -n "$nsa" addr add "$subnet.1/24" dev "${tag}va"
    ip -n "$nsb" addr add "$subnet.2/24" dev "${tag}vb"
    for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
    ip -n "$nsa" link set "${tag}va" up
    ip -n "$nsb" link set "${tag}vb" up
}

netns_down() {
    ip netns del "${nsa:-}" 2>/dev/null || true
    ip netns del "${nsb:-}" 2>/dev/null || true
}
