#!/usr/bin/env bash
# Two fair flows on one bottleneck, simulated (virtual time, deterministic):
# eight paths of the README's two-flow table (its six 100 Mbit/s rows and 1
# Gbit/s at 20 and 100 ms), each also with its round
# trip and its buffer moved together by -3..+3 ms, and with the round trip
# alone moved (the buffer kept), so that a controller which shares a path
# only at the exact figures it was tuned on shows up. Prints each pair's
# shares over seconds 8-12 (the second flow starts at 2 s) and how many
# differ by 20 % or more, and by 40 % or more (one flow starved).
#
# Usage: bench/transport/fair-survey.sh [OFFSETS]
#   OFFSETS: the millisecond offsets to try (default "-3 -2 -1 0 1 2 3").
#   JOBS=n runs n simulations at once (default: the number of CPUs).
#   BIN=path uses an already built sim_diagnostics bench binary (e.g. another
#   commit's).
set -euo pipefail

OFFSETS=${1:-"-3 -2 -1 0 1 2 3"}
JOBS=${JOBS:-$(nproc)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p sync-core --bench sim_diagnostics)
    BIN=$(ls -t "${CARGO_TARGET_DIR:-$ROOT/target}"/release/deps/sim_diagnostics-* |
        grep -v '\.d$' | head -1)
fi
[ -x "$BIN" ] || { echo "no sim_diagnostics binary ($BIN)" >&2; exit 1; }

# Mbit/s, RTT ms, buffer ms: the README's table.
ROWS=("100 10 10" "100 20 20" "100 20 40" "100 40 40" "100 100 100"
      "100 200 200" "1000 20 20" "1000 100 100")

out=$(mktemp)
trap 'rm -f "$out"' EXIT
one() {
    local mbit=$1 rtt=$2 queue=$3 shares
    shares=$(RTT=$rtt MBIT=$mbit QUEUE_MS=$queue WITHIN=1 timeout 600 "$BIN" fair_pair 2>&1 | sed -n 's/^last 4 s: \(.*\) Mbit\/s$/\1/p')
    echo "$mbit Mbit/s, $rtt ms, buffer $queue ms: $shares" >>"$out"
}
for row in "${ROWS[@]}"; do
    read -r mbit rtt queue <<<"$row"
    for d in $OFFSETS; do
        one "$mbit" $((rtt + d)) $((queue + d)) &
        while (( $(jobs -r | wc -l) >= JOBS )); do wait -n; done
        if [ "$d" != 0 ]; then
            one "$mbit" $((rtt + d)) "$queue" &
            while (( $(jobs -r | wc -l) >= JOBS )); do wait -n; done
        fi
    done
done
wait
sort -n -k1,1 -k3,3 -k6,6 "$out" | awk -F': ' '{
    split($2, s, " / "); a = s[1] + 0; b = s[2] + 0
    hi = a > b ? a : b; d = hi > 0 ? (a > b ? a - b : b - a) / hi : 1
    bad = d >= 0.2; n++; nbad += bad; nsevere += d >= 0.4
    printf "%-42s %8s / %-8s %s\n", $1, s[1], s[2], d >= 0.4 ? "outside 40 %" : bad ? "outside 20 %" : ""
} END { printf "%d of %d pairs differ by 20 %% or more, %d by 40 %% or more\n", nbad, n, nsevere }'
