#!/usr/bin/env bash
# Times `sluice sync` local to local on the Linux kernel source tree (warm
# page cache) against `rsync -a` in the same run, and measures what a
# 6.1 -> 6.12 upgrade of a mirror ships against rsync's "Literal data".
#
#   bench/fetch-kernel.sh && bench/sync.sh
#
# Knobs (environment): RUNS (default 3), CARGO_TARGET_DIR, FRESH_FS (default 1:
# destinations on a new ext4 filesystem made for the run; 0: on this disk).
# Every sluice run uses fresh index files (SRC and DST are indexed from
# scratch inside the timing) unless the step says otherwise.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
old="$work/linux-6.1"
new="$work/linux-6.12"
runs="${RUNS:-3}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
out="$work/sync"
log="$work/sync-runs.log"

for t in "$old" "$new"; do
    [ -d "$t" ] || { echo "no tree at $t: run bench/fetch-kernel.sh first" >&2; exit 1; }
done
command -v rsync >/dev/null || { echo "rsync missing: run bench/fetch-kernel.sh first" >&2; exit 1; }

echo "building sluice (release)..." >&2
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
mkdir -p "$out"
: >"$log"
# shellcheck source=lib.sh
. "$here/lib.sh"
# Every run writes into a folder never used before, on a fresh filesystem
# unless FRESH_FS=0 (see scratch_fs in lib.sh).
dst_root dst
n=0
fresh() { n=$((n + 1)); dst="$droot/dst-$n"; rm -f "$out"/*.db "$out"/*.db-wal "$out"/*.db-shm; }
trap 'rm -rf "$droot"/dst-* "$droot"/rsync-dst-*; [ -z "$cleanup_fs" ] || scratch_fs_remove "$cleanup_fs"' EXIT
warm() { find "$1" -type f -print0 | xargs -0 -n 512 cat >/dev/null; }
S() { "$sluice" -q sync --src-index "$out/src.db" --dst-index "$out/dst.db" "$@"; }

warm "$old"
rsync_round() {
    fresh; sync; timed rsync_first rsync -a "$old/" "$dst/"
    for j in 1 2 3; do timed rsync_nochange rsync -a "$old/" "$dst/"; done
}
sluice_round() {
    fresh; sync; timed sluice_first S "$old" "$dst"
    for j in 1 2 3; do timed sluice_nochange S "$old" "$dst"; done
}
# The tools take turns going first: a run can be slowed by what the one
# before it left to the filesystem.
for i in $(seq "$runs"); do
    if [ $((i % 2)) = 1 ]; then rsync_round; sluice_round; else sluice_round; rsync_round; fi
done

# Upgrade: a 6.1 mirror made current with 6.12, by each tool.
warm "$new"
fresh
S "$old" "$dst"
rsync -a "$old/" "$droot/rsync-dst-$n/"
t0=$(now_ns)
"$sluice" sync --json --delete --src-index "$out/new.db" --dst-index "$out/dst.db" "$new" "$dst" >"$out/upgrade.json"
t1=$(now_ns)
up_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
t0=$(now_ns)
rsync -a --delete --no-whole-file --stats "$new/" "$droot/rsync-dst-$n/" >"$out/rsync-upgrade.txt"
t1=$(now_ns)
rs_up_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
diff -r -q --no-dereference "$new" "$dst" >/dev/null || { echo "sluice upgrade: trees differ" >&2; exit 1; }
chunk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunk_bytes_sent"])' "$out/upgrade.json")
wire=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wire_bytes_sent"])' "$out/upgrade.json")
literal=$(awk -F': ' '/Literal data/ { gsub(/[ ,a-z]/, "", $2); print $2 }' "$out/rsync-upgrade.txt")
sent=$(awk -F': ' '/Total bytes sent/ { gsub(/[ ,a-z]/, "", $2); print $2 }' "$out/rsync-upgrade.txt")

rf=$(col rsync_first | median); sf=$(col sluice_first | median)
rn=$(col rsync_nochange | median); sn=$(col sluice_nochange | median)
files=$(find "$old" -type f | wc -l); bytes=$(du -sb "$old" | cut -f1)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
cat <<TABLE
Tree: linux-6.1 ($files files, $(mb "$bytes")), warm page cache; $runs runs (no-change: $((runs * 3))), medians.
Machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores, Linux $(uname -r).

| step | sluice | rsync -a | sluice / rsync |
|---|---|---|---|
| first sync (fresh indexes) | $sf s | $rf s | $(awk -v a="$sf" -v b="$rf" 'BEGIN { printf "%.2f", a / b }') |
| no-change re-sync | $sn s | $rn s | $(awk -v a="$sn" -v b="$rn" 'BEGIN { printf "%.2f", a / b }') |

| upgrade 6.1 -> 6.12 mirror | sluice | rsync --no-whole-file |
|---|---|---|
| data shipped | $(mb "$chunk") chunk payload | $(mb "$literal") literal data |
| all bytes sent by the sender | $(mb "$wire") | $(mb "$sent") |
| time | $up_s s | $rs_up_s s |
TABLE
