#!/usr/bin/env bash
# Loopback throughput of sluice's UDP block transport (AES-256-GCM on),
# next to iperf3 UDP and TCP on the same machine, in the same run.
# RUNS rounds, each measuring every figure once (interleaved), medians
# quoted; only 127.0.0.1; every run is time-bounded.
#
# Usage: bench/transport/loopback.sh [SIZE_MB] [RUNS] [EXTRA_ARGS...]
#   EXTRA_ARGS go to the udp_loopback example (e.g. --fixed 15000,
#   --pattern). Set PACKET_SIZES="1500 9000" (the default) to choose which
#   IP packet sizes sluice is measured at; SLUICE_UDP_OFFLOAD=0 measures the
#   plain sendmmsg/recvmmsg path instead of GSO/GRO. BIN=path measures an
#   already built udp_loopback (e.g. one built from another commit).
#
# As root, raises net.core.{r,w}mem_max to 64 MiB for the run (so the
# sockets get the 32 MiB they ask for) and restores the old values on exit.
set -euo pipefail

SIZE_MB=${1:-1000}
RUNS=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
EXTRA=("$@")
PACKET_SIZES=${PACKET_SIZES:-"1500 9000"}
SECS=5
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if ! command -v iperf3 >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null
fi

if [ "$(id -u)" = 0 ]; then
    old_r=$(sysctl -n net.core.rmem_max)
    old_w=$(sysctl -n net.core.wmem_max)
    trap 'sysctl -q -w net.core.rmem_max="$old_r" net.core.wmem_max="$old_w"' EXIT
    sysctl -q -w net.core.rmem_max=$((64 << 20)) net.core.wmem_max=$((64 << 20))
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# The median of a space-separated list.
list_median() { tr ' ' '\n' <<<"$1" | grep . | median; }

if [ -z "${BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p sync-core --example udp_loopback)
    BIN=$CARGO_TARGET_DIR/release/examples/udp_loopback
fi

# Restart the one-shot server before each client run.
iperf_run() {
    iperf3 -s -1 -B 127.0.0.1 -p 5299 >/dev/null 2>&1 &
    local srv=$!
    sleep 0.3
    timeout $((SECS + 10)) iperf3 -c 127.0.0.1 -p 5299 -t "$SECS" -J "$@" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

# One round measures everything once, so that the machine's slow and fast
# spells (it is shared and noisy) fall on sluice and iperf3 alike; each
# round's sluice/TCP ratio is kept as well as the medians.
declare -A sluice ratio
tcp=(); udp=()
for _ in $(seq "$RUNS"); do
    t=$(iperf_run | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e6))')
    tcp+=("$t")
    # UDP at an unlimited offered rate, 1472-byte datagrams; receiver-side rate.
    udp+=("$(iperf_run -u -b 0 -l 1472 | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["end"]["sum"]; print(round(s["bits_per_second"]*(1-s["lost_percent"]/100)/1e6))')")
    for ps in $PACKET_SIZES; do
        out=$(timeout 120 "$BIN" "$SIZE_MB" --packet-size "$ps" "${EXTRA[@]}" 2>/dev/null) || out="failed: 0 Mbit/s goodput"
        v=$(sed -E 's/.*: ([0-9]+) Mbit\/s goodput.*/\1/' <<<"$out")
        sluice[$ps]="${sluice[$ps]:-} $v"
        ratio[$ps]="${ratio[$ps]:-} $(awk -v a="$v" -v b="$t" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')"
    done
done

printf '%-40s %10s   %s\n' "loopback 127.0.0.1 (median of $RUNS)" "Mbit/s" "runs"
for ps in $PACKET_SIZES; do
    printf '%-40s %10s   %s\n' "sluice UDP, AES-256-GCM, ${SIZE_MB} MB, ${ps} B" \
        "$(list_median "${sluice[$ps]}")" "${sluice[$ps]# }"
done
printf '%-40s %10s   %s\n' "iperf3 UDP (-b 0, 1472 B, delivered)" "$(list_median "${udp[*]}")" "${udp[*]}"
printf '%-40s %10s   %s\n' "iperf3 TCP" "$(list_median "${tcp[*]}")" "${tcp[*]}"
for ps in $PACKET_SIZES; do
    printf '%-40s %10s   %s\n' "sluice ${ps} B / TCP of its round" \
        "$(list_median "${ratio[$ps]}")" "${ratio[$ps]# }"
done
