# Helpers for running things across a wanem link (sourced, not run).
#
#   . bench/wanem/netns.sh
#   wanem_ns_create                      # namespaces $WANEM_NS_A, $WANEM_NS_B
#   wanem_tcp_buffers                    # tcp_rmem/tcp_wmem max 64 MiB in both
#   wanem_udp_buffers                    # host rmem/wmem_max 32 MiB, restored after
#   wanem_start --rate 1G --delay 50ms   # background wanem, waits for `ready`
#   wanem_pin_cc cubic                   # congctl on the routes to the peer
#   wanem_spawn "$WANEM_NS_B" iperf3 -s -1    # a tracked background process
#   wanem_in "$WANEM_NS_A" iperf3 -c "$WANEM_ADDR_B" -t 10
#   wanem_stop                           # SIGTERM, counters in $WANEM_STATS
#   wanem_cleanup                        # also run by the traps
#
# Everything made here is recorded and undone by wanem_cleanup, which
# wanem_ns_create installs as the EXIT trap (and on INT/TERM): it kills
# only the pids it started and deletes only the namespaces it created.
# Scripts with their own EXIT trap should call wanem_cleanup from it.
#
# Needs root and iproute2. WANEM_BIN names the wanem binary (default: the
# release build in target/). Addresses live only on the two TUN devices
# inside the two namespaces; nothing is routed anywhere else.

WANEM_BIN=${WANEM_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/wanem}
WANEM_ADDR_A=${WANEM_ADDR_A:-10.199.0.1}
WANEM_ADDR_B=${WANEM_ADDR_B:-10.199.0.2}
WANEM_DEV=${WANEM_DEV:-wan0}
WANEM_READY_TIMEOUT=${WANEM_READY_TIMEOUT:-10}
WANEM_NS_MADE=()
WANEM_PIDS=()
WANEM_PID=
WANEM_DIR=

wanem_log() { echo "netns.sh: $*" >&2; }

# wanem_ns_create [PREFIX]: creates namespaces PREFIXa and PREFIXb (default
# prefix wn<pid>-, unique per run), sets WANEM_NS_A / WANEM_NS_B, a scratch
# directory WANEM_DIR, and the cleanup traps.
wanem_ns_create() {
    local prefix=${1:-wn$$-}
    WANEM_NS_A=${prefix}a
    WANEM_NS_B=${prefix}b
    trap wanem_cleanup EXIT
    trap 'wanem_cleanup; exit 130' INT TERM
    local ns
    for ns in "$WANEM_NS_A" "$WANEM_NS_B"; do
        if [ -e "/run/netns/$ns" ]; then
            wanem_log "namespace $ns already exists; not touching it"
            return 1
        fi
        ip netns add "$ns" || return 1
        WANEM_NS_MADE+=("$ns")
    done
    WANEM_DIR=$(mktemp -d /tmp/wanem.XXXXXX)
    WANEM_STATS=$WANEM_DIR/stats.json
}

# wanem_tcp_buffers [MAX]: TCP buffer maxima in both namespaces (default
# 64 MiB: 1 Gbit/s x 200 ms is 25 MB, and about half a receive buffer
# holds payload). Per namespace; the host is not changed.
wanem_tcp_buffers() {
    local max=${1:-67108864} ns
    for ns in "$WANEM_NS_A" "$WANEM_NS_B"; do
        ip netns exec "$ns" sysctl -q -w "net.ipv4.tcp_rmem=4096 131072 $max" "net.ipv4.tcp_wmem=4096 16384 $max" || return 1
    done
}

# wanem_udp_buffers [MAX]: raises the host's net.core.rmem_max and
# wmem_max (default 32 MiB, what sluice asks for) if lower; wanem_cleanup
# puts the old values back. These two are not per namespace.
wanem_udp_buffers() {
    local max=${1:-33554432}
    WANEM_OLD_RMEM=$(sysctl -n net.core.rmem_max) || return 1
    WANEM_OLD_WMEM=$(sysctl -n net.core.wmem_max) || return 1
    sysctl -q -w net.core.rmem_max="$(( WANEM_OLD_RMEM > max ? WANEM_OLD_RMEM : max ))" \
        net.core.wmem_max="$(( WANEM_OLD_WMEM > max ? WANEM_OLD_WMEM : max ))"
}

# wanem_start ARGS...: starts wanem between the two namespaces with ARGS
# (--stats goes to $WANEM_STATS), waits up to WANEM_READY_TIMEOUT seconds
# for it to be ready, and sets WANEM_PID. Fails if it exits or times out.
wanem_start() {
    [ -z "$WANEM_PID" ] || { wanem_log "wanem already running ($WANEM_PID)"; return 1; }
    [ -x "$WANEM_BIN" ] || { wanem_log "no wanem binary at $WANEM_BIN (cargo build --release -p wanem)"; return 1; }
    local ready=$WANEM_DIR/ready
    rm -f "$ready" "$WANEM_STATS"
    "$WANEM_BIN" --ns-a "$WANEM_NS_A" --ns-b "$WANEM_NS_B" --addr-a "$WANEM_ADDR_A" --addr-b "$WANEM_ADDR_B" \
        --dev-a "$WANEM_DEV" --dev-b "$WANEM_DEV" --ready-file "$ready" --stats "$WANEM_STATS" "$@" \
        >"$WANEM_DIR/wanem.out" 2>"$WANEM_DIR/wanem.err" &
    WANEM_PID=$!
    local i
    for ((i = 0; i < WANEM_READY_TIMEOUT * 20; i++)); do
        [ -e "$ready" ] && return 0
        if ! kill -0 "$WANEM_PID" 2>/dev/null; then
            wait "$WANEM_PID"
            WANEM_PID=
            wanem_log "wanem exited before it was ready:"
            cat "$WANEM_DIR/wanem.err" >&2
            return 1
        fi
        sleep 0.05
    done
    wanem_log "wanem not ready after ${WANEM_READY_TIMEOUT}s"
    wanem_stop
    return 1
}

# wanem_stop: SIGTERM to the wanem this file started, waits up to 5 s
# (then SIGKILL); its counters are then in $WANEM_STATS.
wanem_stop() {
    [ -n "$WANEM_PID" ] || return 0
    wanem_kill_pid "$WANEM_PID"
    WANEM_PID=
}

# wanem_kill_pid PID: SIGTERM, up to 5 s, then SIGKILL; reaps it.
wanem_kill_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# wanem_pin_cc ALGO: makes both ends use TCP congestion control ALGO
# (cubic, bbr, reno) on the route to the peer, for active and passive
# connections alike; a new namespace may refuse it as its default.
wanem_pin_cc() {
    ip -n "$WANEM_NS_A" route replace "$WANEM_ADDR_B/32" dev "$WANEM_DEV" congctl "$1" &&
        ip -n "$WANEM_NS_B" route replace "$WANEM_ADDR_A/32" dev "$WANEM_DEV" congctl "$1"
}

# wanem_in NS CMD...: runs CMD inside namespace NS (foreground).
wanem_in() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# wanem_spawn NS CMD...: runs CMD inside NS in the background, records its
# pid for cleanup and leaves it in WANEM_LAST_PID.
wanem_spawn() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@" &
    WANEM_LAST_PID=$!
    WANEM_PIDS+=("$WANEM_LAST_PID")
}

# wanem_cleanup: stops what this file started and deletes the namespaces
# it made. Safe to call more than once.
wanem_cleanup() {
    local pid ns
    for pid in "${WANEM_PIDS[@]}"; do
        wanem_kill_pid "$pid"
    done
    WANEM_PIDS=()
    wanem_stop
    for ns in "${WANEM_NS_MADE[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    WANEM_NS_MADE=()
    if [ -n "$WANEM_DIR" ] && [ -z "${WANEM_KEEP_DIR:-}" ]; then
        rm -rf "$WANEM_DIR"
    fi
    WANEM_DIR=
    if [ -n "${WANEM_OLD_RMEM:-}" ]; then
        sysctl -q -w net.core.rmem_max="$WANEM_OLD_RMEM" net.core.wmem_max="$WANEM_OLD_WMEM"
        WANEM_OLD_RMEM=
    fi
}
