#!/usr/bin/env bash
# Loopback throughput of sluice's UDP block transport (AES-256-GCM on),
# next to iperf3 UDP and TCP on the same machine, in the same run.
# Median of RUNS runs each; only 127.0.0.1; every run is time-bounded.
#
# Usage: bench/transport/loopback.sh [SIZE_MB] [RUNS]
set -euo pipefail

SIZE_MB=${1:-1000}
RUNS=${2:-3}
SECS=5
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if ! command -v iperf3 >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

(cd "$ROOT" && cargo build --release -q -p sync-core --example udp_loopback)
BIN=$CARGO_TARGET_DIR/release/examples/udp_loopback

sluice=()
for _ in $(seq "$RUNS"); do
    out=$(timeout 120 "$BIN" "$SIZE_MB" 2>/dev/null)
    sluice+=("$(sed -E 's/.*: ([0-9]+) Mbit\/s goodput.*/\1/' <<<"$out")")
done

# Restart the one-shot server before each client run.
iperf_run() {
    iperf3 -s -1 -B 127.0.0.1 -p 5299 >/dev/null 2>&1 &
    local srv=$!
    sleep 0.3
    timeout $((SECS + 10)) iperf3 -c 127.0.0.1 -p 5299 -t "$SECS" -J "$@" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

tcp=(); udp=()
for _ in $(seq "$RUNS"); do
    tcp+=("$(iperf_run | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e6))')")
    # UDP at an unlimited offered rate, 1472-byte datagrams; receiver-side rate.
    udp+=("$(iperf_run -u -b 0 -l 1472 | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["end"]["sum"]; print(round(s["bits_per_second"]*(1-s["lost_percent"]/100)/1e6))')")
done

printf '%-34s %10s   %s\n' "loopback 127.0.0.1 (median of $RUNS)" "Mbit/s" "runs"
printf '%-34s %10s   %s\n' "sluice UDP, AES-256-GCM, ${SIZE_MB} MB" "$(printf '%s\n' "${sluice[@]}" | median)" "${sluice[*]}"
printf '%-34s %10s   %s\n' "iperf3 UDP (-b 0, delivered)" "$(printf '%s\n' "${udp[@]}" | median)" "${udp[*]}"
printf '%-34s %10s   %s\n' "iperf3 TCP" "$(printf '%s\n' "${tcp[@]}" | median)" "${tcp[*]}"
