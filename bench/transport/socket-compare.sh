#!/usr/bin/env bash
# Loopback goodput and CPU cost of sluice's UDP socket layer (net::socket,
# net::offload) next to quinn-udp's, through the udp_socket_compare
# example: one sender and one receiver thread on 127.0.0.1, GSO/GRO on,
# implementations interleaved over RUNS rounds, medians and ranges quoted.
# Only 127.0.0.1; every run is time-bounded (30 s deadline in the example,
# and a timeout around the whole).
#
# Usage: bench/transport/socket-compare.sh [SIZE_MB] [RUNS] [EXTRA_ARGS...]
#   SIZE_MB  megabytes a run moves (default 2000); RUNS rounds (default 5).
#   EXTRA_ARGS go to the example, e.g. --sizes 1472,8972 (datagram sizes),
#   --impls ours,quinn,ours-mmsg,quinn-nogso (the last two: no GSO),
#   --gbit 5 (pace the sender, to compare CPU at equal rates).
#   BIN=path measures an already built udp_socket_compare.
#
# As root, raises net.core.{r,w}mem_max to 64 MiB for the run (so the
# sockets get the 32 MiB they ask for) and restores the old values on exit.
set -euo pipefail

SIZE_MB=${1:-2000}
RUNS=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
EXTRA=("$@")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if [ "$(id -u)" = 0 ]; then
    old_r=$(sysctl -n net.core.rmem_max)
    old_w=$(sysctl -n net.core.wmem_max)
    trap 'sysctl -q -w net.core.rmem_max="$old_r" net.core.wmem_max="$old_w"' EXIT
    sysctl -q -w net.core.rmem_max=$((64 << 20)) net.core.wmem_max=$((64 << 20))
else
    echo "not root: socket buffers stay capped at net.core.{r,w}mem_max" >&2
fi

if [ -z "${BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p sync-core --example udp_socket_compare)
    BIN=$CARGO_TARGET_DIR/release/examples/udp_socket_compare
fi

# Each run takes at most the example's 30 s deadline plus its drain time;
# allow that for every run of every implementation and size, with margin.
timeout $(( RUNS * 8 * 35 + 60 )) "$BIN" --mb "$SIZE_MB" --runs "$RUNS" "${EXTRA[@]}"
