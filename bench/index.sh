#!/usr/bin/env bash
# Times `sluice index` on a Linux kernel source tree (warm page cache) against
# `rsync -a` of the same tree, and prints a markdown table of medians.
#
#   bench/fetch-kernel.sh && bench/index.sh
#
# Knobs (environment): TREE (default bench/work/linux-6.1), RUNS (sluice and
# no-change rsync runs, default 5), COPY_RUNS (full rsync copies, default 3),
# CARGO_TARGET_DIR (where the release build goes), BUILD=0 (time the binary
# already built there).
# Peak memory is GNU time's %M (max resident set size) of the whole command.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
tree="${TREE:-$work/linux-6.1}"
runs="${RUNS:-5}"
copy_runs="${COPY_RUNS:-3}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
idx="$work/bench-index.sqlite"
dst="$work/rsync-dst" # .1, .2, ...: one per copy
log="$work/index-runs.log"
blob="$work/blake3-input.bin"

[ -d "$tree" ] || { echo "no tree at $tree: run bench/fetch-kernel.sh first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time missing: run bench/fetch-kernel.sh first" >&2; exit 1; }
command -v rsync >/dev/null || { echo "rsync missing: run bench/fetch-kernel.sh first" >&2; exit 1; }

if [ "${BUILD:-1}" != 0 ]; then
    echo "building sluice (release)..." >&2
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
fi
[ -x "$sluice" ] || { echo "no sluice binary at $sluice" >&2; exit 1; }

: >"$log"
# shellcheck source=lib.sh
. "$here/lib.sh"
maxof() { sort -g | tail -n 1; }

# timed NAME CMD...: runs CMD under GNU time, appends "NAME seconds peak_kib"
# to the log. Wall time comes from the clock around it (ns resolution).
# (Replaces lib.sh's timed, which does not record memory.)
timed() {
    local name="$1"; shift
    local t0 t1 rss
    t0=$(now_ns)
    /usr/bin/time -f %M -o "$work/.rss" "$@" >"$work/.out" 2>"$work/.err" || {
        echo "$name failed:" >&2; cat "$work/.err" >&2; exit 1; }
    t1=$(now_ns)
    rss=$(tail -n 1 "$work/.rss")
    echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $rss" | tee -a "$log" >&2
}
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$log"; }

fresh_index() { rm -f "$idx" "$idx-wal" "$idx-shm" "$idx-journal"; }

echo "warming the page cache..." >&2
find "$tree" -type f -print0 | xargs -0 -n 512 cat >/dev/null
find "$tree" >/dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
files=$(find "$tree" -type f | wc -l)
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')

# sluice: first index, fresh index file each run.
for _ in $(seq 1 "$runs"); do
    fresh_index
    timed first "$sluice" index --json --index "$idx" "$tree"
done
# sluice: no-change rescans of the last index.
for _ in $(seq 1 "$runs"); do
    timed rescan "$sluice" index --json --index "$idx" "$tree"
done
read_files=$(grep -o '"files_read": *[0-9]*' "$work/.out" | grep -o '[0-9]*$' || echo "?")

# rsync -a: full copy to a fresh, never used folder each run, then no-change
# runs onto the last copy. ext4 will not reuse inodes freed within the last
# 60-360 s when it has no journal, as here ("recently_deleted"), so creating
# 78,000 files right after deleting as many is ~6x slower (54 s instead of
# 8 s here). Copies are therefore removed only at the end, and a run that
# follows such a removal within 360 s waits the rest of that time (bounded).
stamp="$work/.rsync-removed-at"
if compgen -G "$dst.*" >/dev/null; then
    rm -rf "$dst".* # left over from an interrupted run
    date +%s >"$stamp"
fi
if [ -f "$stamp" ]; then
    wait_s=$(( $(cat "$stamp") + 360 - $(date +%s) ))
    if [ "$wait_s" -gt 0 ] && [ "$wait_s" -le 360 ]; then
        echo "waiting ${wait_s}s: the last run removed its copies recently (ext4 inode reuse)" >&2
        sleep "$wait_s"
    fi
fi
last=""
for i in $(seq 1 "$copy_runs"); do
    last="$dst.$i"
    sync
    timed rsync_copy rsync -a "$tree/" "$last/"
done
sync
for _ in $(seq 1 "$runs"); do
    timed rsync_nochange rsync -a "$tree/" "$last/"
done
rm -rf "$dst".*
date +%s >"$stamp"

# Single-core BLAKE3 on 1 GiB of cached random bytes, the yardstick for
# hashing speed.
b3=""
if command -v b3sum >/dev/null; then
    [ -f "$blob" ] || head -c $((1 << 30)) /dev/urandom >"$blob"
    cat "$blob" >/dev/null
    for _ in $(seq 1 "$runs"); do
        timed b3sum_1thread b3sum --num-threads 1 "$blob"
    done
    b3=$(col b3sum_1thread 2 | median)
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
first=$(col first 2 | median)
rescan=$(col rescan 2 | median)
copy=$(col rsync_copy 2 | median)
nochange=$(col rsync_nochange 2 | median)
first_rss=$(col first 3 | maxof)
rescan_rss=$(col rescan 3 | maxof)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
cores=$(nproc)

fmt() { awk -v v="$1" 'BEGIN { printf "%.2f s", v }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f MB", k * 1024 / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
ok() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "met" : "MISSED" }'; }

{
echo
echo "Tree: $(basename "$tree"), $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }'); warm page cache."
echo "Machine: $cpu, $cores cores, Linux $(uname -r), $(free -g | awk '/^Mem:/ { print $2 }') GiB; load average $load_before before, $load_after after."
echo
echo "| what | runs | median | peak RSS (max of runs) | target | vs rsync |"
echo "|---|---|---|---|---|---|"
echo "| sluice index, first (fresh index) | $runs | $(fmt "$first") | $(mb "$first_rss") | < 3 s, < 200 MB: $(ok "$first" 3), $(ok "$first_rss" 195313) | $(ratio "$first" "$copy") of copy |"
echo "| sluice index, no-change rescan ($read_files files read) | $runs | $(fmt "$rescan") | $(mb "$rescan_rss") | < 0.5 s, < 200 MB: $(ok "$rescan" 0.5), $(ok "$rescan_rss" 195313) | $(ratio "$rescan" "$nochange") of no-change |"
echo "| rsync -a, full copy (fresh dst) | $copy_runs | $(fmt "$copy") | $(mb "$(col rsync_copy 3 | maxof)") | (~9 s in the issue) | 1.00× |"
echo "| rsync -a, no change | $runs | $(fmt "$nochange") | $(mb "$(col rsync_nochange 3 | maxof)") | (~1 s in the issue) | 1.00× |"
if [ -n "$b3" ]; then
    b3gbs=$(awk -v s="$b3" 'BEGIN { printf "%.2f", 1.073741824 / s }')
    idxgbs=$(awk -v s="$first" -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e9 / s }')
    echo "| b3sum --num-threads 1, 1 GiB cached file | $runs | $(fmt "$b3") = $b3gbs GB/s | | | |"
    echo
    echo "First index: $idxgbs GB/s over $cores cores = $(awk -v i="$idxgbs" -v b="$b3gbs" -v c="$cores" 'BEGIN { printf "%.0f", 100 * i / c / b }') % of single-core BLAKE3 per core (whole command: walk, stat, read, chunk, hash, SQLite)."
fi
echo
echo "Raw runs (name, seconds, peak KiB): $log"
} | tee "$work/index-results.md"
