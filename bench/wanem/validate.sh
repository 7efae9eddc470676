#!/usr/bin/env bash
# Validates wanem with real traffic between two namespaces it creates:
# ping RTT against the configured delay, iperf3 UDP rate and loss against
# the configured rate and loss, iperf3 TCP (cubic, bbr) over long fat
# lossy links, and wanem's own ceiling and CPU cost per Gbit/s.
#
#   bench/wanem/validate.sh            # all sections, ~6 minutes
#   SECTIONS="ping udp" T=5 bench/wanem/validate.sh
#
# Needs root, iproute2, iperf3, ping, jq, and a release build of wanem
# (WANEM_BIN, default target/release/wanem). Raw output goes to $OUT
# (default bench/work/wanem-validate), the table to $OUT/results.md.
# Host sysctls are not changed; TCP buffer maxima are raised inside the
# two namespaces only.

set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns.sh"

T=${T:-10}            # seconds per UDP run
TT=${TT:-20}          # seconds per TCP run
SECTIONS=${SECTIONS:-ping udp tcp ceiling}
OUT=${OUT:-$here/../work/wanem-validate}
mkdir -p "$OUT"
results=$OUT/results.md
: >"$results"

for tool in iperf3 ping jq ip; do
    command -v "$tool" >/dev/null || { echo "validate.sh: $tool not found" >&2; exit 1; }
done
wanem_ns_create || exit 1
wanem_tcp_buffers || exit 1

say() { echo "$*" | tee -a "$results"; }

# CPU ticks (utime + stime, 1/100 s) of PID.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "idle total" jiffies of the whole machine.
cpu_idle_total() { awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# Waits (at most 120 s) until the machine was at least 90 % idle over one
# second, so that other work does not share the cores with a measurement;
# sets quiet_pct to the idle share last seen.
wait_quiet() {
    local i a b
    for ((i = 0; i < 120; i++)); do
        a=$(cpu_idle_total)
        sleep 1
        b=$(cpu_idle_total)
        quiet_pct=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
            printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
        [ "$quiet_pct" -ge 90 ] && return 0
    done
    echo "validate.sh: machine still busy (idle $quiet_pct %); measuring anyway" >&2
}

# Waits up to 5 s for iperf3's control port in namespace B.
wait_listening() {
    local i
    for ((i = 0; i < 100; i++)); do
        wanem_in "$WANEM_NS_B" ss -Hltn 'sport = :5201' | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

# run_iperf NAME CC "WANEM ARGS" IPERF_CLIENT_ARGS...: one measured run.
# Sets: bps (received), loss_pct (UDP), retrans (TCP), cpu_s (wanem),
# gbit (forwarded, both directions), idle_pct, and the wanem counters.
run_iperf() {
    local name=$1 cc=$2 wargs=$3
    shift 3
    # shellcheck disable=SC2086
    wanem_start --seed 1 $wargs || return 1
    [ "$cc" = - ] || wanem_pin_cc "$cc" || return 1
    wanem_spawn "$WANEM_NS_B" iperf3 -s -1 --json --logfile "$OUT/$name.server.json"
    local server=$WANEM_LAST_PID
    wait_listening || { echo "iperf3 server did not start" >&2; return 1; }
    local t0 t1 i0 i1
    wait_quiet
    t0=$(cpu_ticks "$WANEM_PID")
    i0=$(cpu_idle_total)
    timeout $((T > TT ? T + 30 : TT + 30)) ip netns exec "$WANEM_NS_A" \
        iperf3 -c "$WANEM_ADDR_B" --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
    t1=$(cpu_ticks "$WANEM_PID")
    i1=$(cpu_idle_total)
    wanem_stop
    wanem_kill_pid "$server"
    cp "$WANEM_STATS" "$OUT/$name.wanem.json"
    cpu_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
    idle_pct=$(awk -v a="$i0" -v b="$i1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
    local j=$OUT/$name.json w=$OUT/$name.wanem.json
    if jq -e '.end.sum_received' "$j" >/dev/null 2>&1 && [ "$(jq -r '.start.test_start.protocol' "$j")" = TCP ]; then
        bps=$(jq '.end.sum_received.bits_per_second' "$j")
        retrans=$(jq '.end.sum_sent.retransmits' "$j")
        loss_pct=-
    else
        # The receiver's own count and clock (it runs longer than the
        # sender by the queue's drain and the delay).
        bps=$(jq '(.end.sum.packets - .end.sum.lost_packets) * .start.test_start.blksize * 8 / .end.sum.seconds' "$OUT/$name.server.json")
        loss_pct=$(jq '.end.sum.lost_percent * 1000 | round / 1000' "$OUT/$name.server.json" | head -1)
        retrans=-
    fi
    gbit=$(jq '(.a_to_b.bytes_out + .b_to_a.bytes_out) * 8 / 1e9' "$w")
    wan=$(jq -r '.a_to_b | "in \(.packets_in) out \(.packets_out) lost \(.lost_packets) qdrop \(.queue_dropped_packets) maxq \(.max_queue_ms | floor) ms devdrop \(.dev_tx_dropped)"' "$w")
    mbps=$(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e6 }')
    iperf_cpu=$(jq -r '.end.cpu_utilization_percent | "\(.host_total | round) / \(.remote_total | round)"' "$j")
    per_gbit=$(awk -v c="$cpu_s" -v g="$gbit" 'BEGIN { if (g > 0) printf "%.2f", c / g; else print "-" }')
}

row() { # NAME DETAILS: one table row from run_iperf's results
    say "| $1 | $mbps | $loss_pct | $retrans | $cpu_s | $per_gbit | $idle_pct ($quiet_pct) | $iperf_cpu | $wan |"
}

header() {
    say ""
    say "| run | received Mbit/s | iperf3 loss % | retrans | wanem CPU s | CPU s per Gbit | idle % (before) | iperf3 CPU % snd / rcv | wanem A->B counters |"
    say "|---|---|---|---|---|---|---|---|---|"
}

section_ping() {
    say "### ping RTT (20 pings, 50 ms apart)"
    say ""
    say "| delay each way | expected RTT ms | min / avg / max / mdev ms |"
    say "|---|---|---|"
    local d rtt
    for d in 10 50 100; do
        wanem_start --delay "${d}ms" || return 1
        rtt=$(wanem_in "$WANEM_NS_A" timeout 20 ping -q -c 20 -i 0.05 "$WANEM_ADDR_B" | awk -F' = ' '/rtt/ { sub(/, pipe.*/, "", $2); print $2 }')
        wanem_stop
        say "| ${d} ms | $((2 * d)) | ${rtt:-failed} |"
    done
}

section_udp() {
    say ""
    say "### iperf3 UDP (1472-byte payloads = 1500-byte IP packets; ${T} s; received = sent x (1 - loss))"
    header
    local u="-u -l 1472 -w 2M -t $T"
    # shellcheck disable=SC2086
    {
        run_iperf udp-300M-400 - "--rate 300M --delay 5ms" $u -b 400M && row "300M link, offered 400M (expect 294.4 = 300 x 1472/1500)"
        run_iperf udp-300M-200-loss1 - "--rate 300M --delay 5ms --ab-loss 1%" $u -b 200M && row "300M link, offered 200M, A->B loss 1%"
        run_iperf udp-300M-200-loss5 - "--rate 300M --delay 5ms --ab-loss 5%" $u -b 200M && row "300M link, offered 200M, A->B loss 5%"
        run_iperf udp-300M-400-loss1 - "--rate 300M --delay 5ms --ab-loss 1%" $u -b 400M && row "300M link, offered 400M, A->B loss 1%"
        run_iperf udp-1G-1200 - "--rate 1G --delay 5ms" $u -b 1200M && row "1G link, offered 1.2G (expect 981.3)"
        run_iperf udp-1G-800-loss1 - "--rate 1G --delay 5ms --ab-loss 1%" $u -b 800M && row "1G link, offered 800M, A->B loss 1%"
        run_iperf udp-ge - "--rate 300M --delay 5ms --ab-ge 1%,25%,0,100%" $u -b 200M && row "300M link, offered 200M, A->B GE 1%,25%,0,100% (mean 3.85 %)"
    }
}

section_tcp() {
    say ""
    say "### iperf3 TCP, 1 Gbit/s link, 100 ms queue, loss in both directions (${TT} s, one flow)"
    header
    local cc rtt loss
    for cc in cubic bbr; do
        for spec in "100 0" "100 1" "200 0"; do
            read -r rtt loss <<<"$spec"
            run_iperf "tcp-$cc-$rtt-$loss" "$cc" "--rate 1G --delay $((rtt / 2))ms --loss ${loss}%" -t "$TT" &&
                row "$cc, RTT ${rtt} ms, loss ${loss} %"
        done
    done
}

section_ceiling() {
    say ""
    say "### wanem's ceiling: no rate limit, no delay (${T} s)"
    header
    run_iperf ceil-udp - "" -u -l 1472 -w 2M -b 0 -t "$T" && row "UDP unlimited"
    run_iperf ceil-tcp cubic "" -t "$T" && row "TCP cubic unlimited"
    run_iperf ceil-udp-300 - "" -u -l 1472 -w 2M -b 300M -t "$T" && row "UDP at 300M"
    run_iperf ceil-udp-1000 - "" -u -l 1472 -w 2M -b 1000M -t "$T" && row "UDP at 1G"
}

say "wanem validation, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$here" rev-parse --short HEAD), $(nproc) cores, kernel $(uname -r)"
say "host net.core.rmem_max=$(sysctl -n net.core.rmem_max) wmem_max=$(sysctl -n net.core.wmem_max) (unchanged); tcp_rmem/tcp_wmem max 64 MiB in both namespaces"
for s in $SECTIONS; do
    "section_$s" || echo "validate.sh: section $s failed" >&2
    wanem_stop
done
echo "results: $results" >&2
