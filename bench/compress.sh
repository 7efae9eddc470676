#!/usr/bin/env bash
# What compression and deltas cost where they should cost nothing, in the
# same run as the build before them (OLD):
#
#   random   a 2 GiB random file, local sync over UDP on loopback,
#            --compress on against --compress off (same build)
#   upgrade  the local 6.1 -> 6.12 mirror upgrade (--delete; auto: neither
#            compression nor deltas for two local folders), OLD against NEW
#   ssh      a first sync of linux-6.1 over ssh on loopback (auto: no
#            compression on loopback), OLD against NEW
#
#   OLD=/path/to/old/sluice bench/compress.sh
#
# Knobs: OLD (required: the previous build's binary), RUNS (default 3),
# STEPS (default "random upgrade ssh"), CARGO_TARGET_DIR, BUILD (default
# 1), FRESH_FS (default 1: destinations on a new ext4 filesystem).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
old_tree="$work/linux-6.1"
new_tree="$work/linux-6.12"
runs="${RUNS:-3}"
steps="${STEPS:-random upgrade ssh}"
target="${CARGO_TARGET_DIR:-$repo/target}"
new="$target/release/sluice"
old="${OLD:?set OLD to the sluice binary of the build before}"
out="$work/compress"
log="$out/runs.log"

for t in "$old_tree" "$new_tree"; do
    [ -d "$t" ] || { echo "no tree at $t: run bench/fetch-kernel.sh first" >&2; exit 1; }
done
if [ "${BUILD:-1}" = 1 ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
fi
mkdir -p "$out"
: >"$log"
# shellcheck source=lib.sh
. "$here/lib.sh"
dst_root dst
sshd_pid=
trap '[ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null; rm -rf "$droot"/d-*; [ -z "$cleanup_fs" ] || scratch_fs_remove "$cleanup_fs"' EXIT
n=0
fresh() { rm -rf "$droot"/d-* "$out"/state-*; n=$((n + 1)); dst="$droot/d-$n"; sync; }
warm() { find "$1" -type f -print0 | xargs -0 -n 512 cat >/dev/null; }

if [[ " $steps " == *" random "* ]]; then
    big="$out/random"
    if [ "$(stat -c %s "$big/big.bin" 2>/dev/null)" != $((2048 << 20)) ]; then
        mkdir -p "$big"; head -c $((2048 << 20)) /dev/urandom >"$big/big.bin"
    fi
    warm "$big"
    "$new" -q index --index "$out/random.db" "$big"
    for i in $(seq "$runs"); do
        for c in on off; do
            fresh
            timed "random_$c" "$new" -q sync --src-index "$out/random.db" --dst-index "$out/state-dst.db" \
                --transport udp --compress "$c" "$big" "$dst"
        done
    done
fi

if [[ " $steps " == *" upgrade "* ]]; then
    warm "$old_tree"; warm "$new_tree"
    for i in $(seq "$runs"); do
        for b in old new; do
            bin=$old; [ "$b" = new ] && bin=$new
            fresh
            "$bin" -q sync --dst-index "$out/state-dst.db" --src-index "$out/state-61.db" "$old_tree" "$dst"
            sync
            timed "upgrade_$b" "$bin" -q sync --delete --dst-index "$out/state-dst.db" \
                --src-index "$out/state-612-$b.db" "$new_tree" "$dst"
        done
    done
fi

if [[ " $steps " == *" ssh "* ]]; then
    [ -x /usr/sbin/sshd ] || { echo "sshd missing: apt-get install openssh-server" >&2; exit 1; }
    keys="$out/keys"
    start_private_sshd "$keys"
    warm "$old_tree"
    for i in $(seq "$runs"); do
        for b in old new; do
            bin=$old; [ "$b" = new ] && bin=$new
            fresh
            timed "ssh_$b" env XDG_STATE_HOME="$out/state-local-$b" "$bin" -q sync --rsh "$rsh" \
                --remote-sluice "env XDG_STATE_HOME=$out/state-remote $bin" "$old_tree" "root@127.0.0.1:$dst"
        done
    done
fi

stat3() { col "$1" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f [%.2f-%.2f]", m, v[1], v[NR] }'; }
ratio() { awk -v a="$(col "$1" | median)" -v b="$(col "$2" | median)" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
echo
echo "Compression's cost where it should cost nothing; $runs runs, medians [range] in seconds."
cpu=$(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }')
build=$(cd "$repo" && git rev-parse --short HEAD)
echo "Machine: $cpu, $(nproc) cores, Linux $(uname -r); new build $build, old: $old."
echo
echo "| step | A | B | A / B |"
echo "|---|---|---|---|"
echo "| 2 GiB random file, local over UDP: --compress on (A) vs off (B) | $(stat3 random_on) | $(stat3 random_off) | $(ratio random_on random_off) |"
echo "| local 6.1 -> 6.12 upgrade: new (A) vs old (B) | $(stat3 upgrade_new) | $(stat3 upgrade_old) | $(ratio upgrade_new upgrade_old) |"
echo "| linux-6.1 first sync over ssh on loopback: new (A) vs old (B) | $(stat3 ssh_new) | $(stat3 ssh_old) | $(ratio ssh_new ssh_old) |"
