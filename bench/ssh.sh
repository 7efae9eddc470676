#!/usr/bin/env bash
# Push over ssh on loopback: sluice (chunks over UDP, the default) against
# `rsync -a` over the same ssh, in the same run. Starts its own sshd on
# 127.0.0.1 with throwaway keys (nothing of the system's configuration is
# touched) and stops it by pid at the end.
#
#   bench/fetch-kernel.sh && bench/ssh.sh
#
# Knobs: RUNS (default 3), BIG_MB (the single file, default 2048), CARGO_TARGET_DIR,
# FRESH_FS (default 1: destinations on a new ext4 filesystem; 0: on this disk).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
tree="$work/linux-6.1"
runs="${RUNS:-3}"
big_mb="${BIG_MB:-2048}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
out="$work/ssh"
log="$work/ssh-runs.log"

[ -d "$tree" ] || { echo "no tree at $tree: run bench/fetch-kernel.sh first" >&2; exit 1; }
[ -x /usr/sbin/sshd ] || { echo "sshd missing: apt-get install openssh-server" >&2; exit 1; }
if [ "${BUILD:-1}" = 1 ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
fi
mkdir -p "$out"
: >"$log"

# Destinations on a fresh filesystem unless FRESH_FS=0 (see scratch_fs in
# lib.sh); each copy is removed after its run, outside the timing.
# A private sshd on a free loopback port.
keys="$out/keys"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck source=lib.sh
. "$here/lib.sh"
private_sshd_keys "$keys" 127.0.0.1 "$port"
/usr/sbin/sshd -D -f "$keys/sshd_config" &
sshd_pid=$!
n=0
dst_root dst
trap 'kill "$sshd_pid" 2>/dev/null || true; rm -rf "$droot"/dst-*; [ -z "$cleanup_fs" ] || scratch_fs_remove "$cleanup_fs"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
rsh="ssh -p $port -i $keys/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
remote_sluice="env XDG_STATE_HOME=$out/remote-state $sluice"

fresh() {
    rm -rf "$droot"/dst-* "$out/remote-state" "$out/local-state"
    n=$((n + 1)); dst="$droot/dst-$n"
}
push() { XDG_STATE_HOME="$out/local-state" "$sluice" -q sync --rsh "$rsh" --remote-sluice "$remote_sluice" "$@"; }

bigdir="$out/big"
if [ ! -f "$bigdir/big.bin" ] || [ "$(stat -c %s "$bigdir/big.bin")" != $((big_mb << 20)) ]; then
    mkdir -p "$bigdir"
    head -c $((big_mb << 20)) /dev/urandom >"$bigdir/big.bin"
fi
find "$tree" -type f -print0 | xargs -0 -n 512 cat >/dev/null
cat "$bigdir/big.bin" >/dev/null

for i in $(seq "$runs"); do
    fresh; sync; timed rsync_tree rsync -a -e "$rsh" "$tree/" "root@127.0.0.1:$dst/"
    fresh; sync; timed sluice_tree push "$tree" "root@127.0.0.1:$dst"
    fresh; sync; timed rsync_big rsync -a -e "$rsh" "$bigdir/" "root@127.0.0.1:$dst/"
    fresh; sync; timed sluice_big push "$bigdir" "root@127.0.0.1:$dst"
done
diff -r -q "$bigdir" "$dst" >/dev/null || { echo "sluice big push: copy differs from the source" >&2; exit 1; }

rt=$(col rsync_tree | median); st=$(col sluice_tree | median)
rb=$(col rsync_big | median); sb=$(col sluice_big | median)
cat <<TABLE
Push over ssh on loopback ($runs runs, medians; sluice's chunks over UDP with AES-256-GCM).
Machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores, Linux $(uname -r).

| what | sluice | rsync -a over ssh | sluice / rsync |
|---|---|---|---|
| linux-6.1 tree (first push) | $st s | $rt s | $(awk -v a="$st" -v b="$rt" 'BEGIN { printf "%.2f", a / b }') |
| one ${big_mb} MiB file | $sb s | $rb s | $(awk -v a="$sb" -v b="$rb" 'BEGIN { printf "%.2f", a / b }') |
TABLE
