#!/usr/bin/env bash
# Fairness on a real path: one iperf3 TCP flow (cubic) and one sluice push
# share a wanem link; what does TCP keep?
#
#   bench/wan-fair.sh                       # 100 Mbit/s, 40 ms RTT, wanem's 100 ms queue
#   RATE=100M RTT=40 QUEUE=40ms CC=bbr bench/wan-fair.sh
#
# TCP runs alone for 10 s, then sluice (the daemon, default fair policy)
# pushes FILE_MB (default 400) while TCP goes on; the table gives TCP's
# mean rate alone and over seconds 15-40 (sluice running), and sluice's
# goodput. Needs root, iproute2, iperf3, jq. Everything started is
# stopped by pid; the namespaces are removed and the host's UDP buffer
# maxima restored (netns.sh's cleanup).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/lib.sh"
. "$here/wanem/netns.sh"

RATE=${RATE:-100M}
RTT=${RTT:-40}
QUEUE=${QUEUE:-}
CC=${CC:-cubic}
FILE_MB=${FILE_MB:-400}
SLUICE_ARGS=${SLUICE_ARGS:-}
OUT=${OUT:-$here/work/wan-fair}
target=${CARGO_TARGET_DIR:-$repo/target}
sluice=$target/release/sluice
WANEM_BIN=${WANEM_BIN:-$target/release/wanem}
mkdir -p "$OUT"

wanem_ns_create wfair$$- || exit 1
wanem_tcp_buffers && wanem_udp_buffers || exit 1

src=$OUT/src
[ "$(stat -c %s "$src/big.bin" 2>/dev/null)" = $((FILE_MB << 20)) ] ||
    { rm -rf "$src"; mkdir -p "$src"; head -c $((FILE_MB << 20)) /dev/urandom >"$src/big.bin"; }
export XDG_STATE_HOME=$OUT/state-snd
"$sluice" -q index "$src" >/dev/null || exit 1
keys=$OUT/keys dst=$OUT/dst
rm -rf "$keys" "$dst" "$OUT/state-rcv"; mkdir -p "$dst"
sluice_daemon_keys "$keys" "$dst" "$sluice" || exit 1

wargs=(--rate "$RATE" --delay "$((RTT / 2))ms" --seed 1)
[ -z "$QUEUE" ] || wargs+=(--queue "$QUEUE")
wanem_start "${wargs[@]}" || exit 1
wanem_pin_cc "$CC" || exit 1
XDG_STATE_HOME=$OUT/state-rcv wanem_spawn "$WANEM_NS_B" "$sluice" -q serve --config "$keys/serve.toml" --listen 0.0.0.0:7700
wanem_spawn "$WANEM_NS_B" iperf3 -s -1 --port 5201 >/dev/null 2>&1
sleep 1
wanem_spawn "$WANEM_NS_A" timeout 90 iperf3 -c "$WANEM_ADDR_B" -t 50 -i 1 -C "$CC" --json >"$OUT/iperf3.json" 2>"$OUT/iperf3.err"
tcp=$WANEM_LAST_PID
sleep 10
t0=$(now_ns)
ip netns exec "$WANEM_NS_A" timeout 120 "$sluice" -q sync $SLUICE_ARGS --key "$keys/client" --server-key "$server_pub" \
    "$src" "sluice://$WANEM_ADDR_B:7700/dst/run" 2>"$OUT/sluice.err"
status=$?
t1=$(now_ns)
wait "$tcp"
wanem_stop
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
sluice_mbit=$(awk -v s="$secs" -v m="$FILE_MB" 'BEGIN { printf "%.1f", m * 1048576 * 8 / s / 1e6 }')
mean() { jq --argjson a "$1" --argjson b "$2" '[.intervals[] | select(.sum.start >= $a and .sum.end <= $b) | .sum.bits_per_second] | add / length / 1e6 * 10 | round / 10' "$OUT/iperf3.json"; }
alone=$(mean 1 10)
shared=$(mean 15 40)
rate_mbit=$(awk -v r="$RATE" 'BEGIN { m = r + 0; if (r ~ /G$/) m *= 1000; print m }')
cat <<TABLE
Fairness through wanem, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$repo" rev-parse --short HEAD): $RATE, RTT $RTT ms, queue ${QUEUE:-100ms, the wanem default}, iperf3 $CC.

| TCP alone (s 1-10) | TCP with sluice (s 15-40) | TCP share of link | sluice push of $FILE_MB MiB | sluice goodput | sluice exit |
|---|---|---|---|---|---|
| $alone Mbit/s | $shared Mbit/s | $(awk -v s="$shared" -v m="$rate_mbit" 'BEGIN { printf "%.2f", s / m }') | $secs s | $sluice_mbit Mbit/s | $status |
TABLE
