#!/usr/bin/env bash
# Bytes and time to bring a mirror of linux-6.1 up to linux-6.12 over ssh:
# sluice in several modes against rsync --no-whole-file with and without
# -z, in the same run. Everything runs inside a network namespace made for
# the run, with its own sshd on the namespace's loopback, so the bytes
# counted on that loopback (both directions, headers included, the same
# way for both tools) are the transfer's and nothing else's.
#
#   bench/fetch-kernel.sh && bench/upgrade.sh
#
# Modes: w (-W --compress off: whole chunks), tcp-w (the same on the ssh
# connection), delta (--compress off: deltas only), zstd (--compress on),
# tcp-zstd (on the ssh connection), tcp-zstdN / zstdN (--compress-level N).
#
# Knobs: RUNS (default 1; bytes do not vary, times do), MODES (default
# "w tcp-w delta zstd tcp-zstd"), RSYNC (default 1; 0 skips rsync),
# CARGO_TARGET_DIR, BUILD (default 1).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
old="$work/linux-6.1"
new="$work/linux-6.12"
runs="${RUNS:-1}"
modes="${MODES:-w tcp-w delta zstd tcp-zstd}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
out="$work/upgrade"
log="$out/runs.log"
ns="sluice-upgrade-$$"

for t in "$old" "$new"; do
    [ -d "$t" ] || { echo "no tree at $t: run bench/fetch-kernel.sh first" >&2; exit 1; }
done
[ -x /usr/sbin/sshd ] || { echo "sshd missing: apt-get install openssh-server" >&2; exit 1; }
if [ "${BUILD:-1}" = 1 ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
fi
rm -rf "$out"; mkdir -p "$out"
: >"$log"
# shellcheck source=lib.sh
. "$here/lib.sh"

ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
keys="$out/keys"
port=2222
private_sshd_keys "$keys" 127.0.0.1 "$port"
in_ns /usr/sbin/sshd -D -f "$keys/sshd_config" &
sshd_pid=$!
cleanup() {
    # sshd's own pid (it re-executes itself under `ip netns exec`).
    [ -f "$keys/sshd.pid" ] && kill "$(cat "$keys/sshd.pid")" 2>/dev/null || true
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$out/dst"
}
trap cleanup EXIT
for _ in $(seq 100); do
    in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
    sleep 0.05
done
rsh="ssh -p $port -i $keys/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
remote_sluice="env XDG_STATE_HOME=$out/remote-state $sluice"

# Bytes through the namespace's loopback so far (it counts each packet
# once, as sent and as received).
lo_bytes() { in_ns cat /sys/class/net/lo/statistics/tx_bytes; }

# measured NAME CMD...: runs CMD in the namespace; logs "NAME seconds bytes".
measured() {
    local name="$1"; shift
    local t0 t1 b0 b1
    b0=$(lo_bytes); t0=$(now_ns)
    in_ns "$@" >"$out/$name.out" 2>"$out/$name.err" || { echo "$name failed:" >&2; cat "$out/$name.err" >&2; exit 1; }
    t1=$(now_ns); b1=$(lo_bytes)
    echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $((b1 - b0))" | tee -a "$log" >&2
}

# Each run starts from a 6.1 mirror made by the same tool (sluice's with
# its index), outside the measurement.
dst="$out/dst"
fresh_sluice() {
    rm -rf "$dst" "$out/remote-state" "$out/local-state"
    XDG_STATE_HOME="$out/local-state" in_ns "$sluice" -q sync --rsh "$rsh" \
        --remote-sluice "$remote_sluice" "$old" "root@127.0.0.1:$dst"
    sync
}
fresh_rsync() {
    rm -rf "$dst"
    in_ns rsync -a -e "$rsh" "$old/" "root@127.0.0.1:$dst/"
    sync
}
find "$new" -type f -print0 | xargs -0 -n 512 cat >/dev/null

for i in $(seq "$runs"); do
    for mode in $modes; do
        case "$mode" in
            w) args=(-W --compress off) ;;
            tcp-w) args=(-W --compress off --transport tcp) ;;
            delta) args=(--compress off) ;;
            zstd) args=(--compress on) ;;
            tcp-zstd) args=(--compress on --transport tcp) ;;
            tcp-zstd[0-9]*) args=(--compress on --transport tcp --compress-level "${mode#tcp-zstd}") ;;
            zstd[0-9]*) args=(--compress on --compress-level "${mode#zstd}") ;;
            *) echo "unknown mode $mode" >&2; exit 1 ;;
        esac
        fresh_sluice
        measured "sluice_$mode" env XDG_STATE_HOME="$out/local-state" "$sluice" sync --json --delete \
            --rsh "$rsh" --remote-sluice "$remote_sluice" "${args[@]}" "$new" "root@127.0.0.1:$dst"
        diff -r -q --no-dereference "$new" "$dst" >/dev/null || { echo "sluice $mode: trees differ" >&2; exit 1; }
        cp "$out/sluice_$mode.out" "$out/sluice_$mode.json"
    done
    [ "${RSYNC:-1}" = 1 ] || continue
    for z in "" z; do
        fresh_rsync
        measured "rsync$z" rsync -a$z --delete --no-whole-file --stats -e "$rsh" "$new/" "root@127.0.0.1:$dst/"
    done
done

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
col2() { awk -v n="$1" '$1 == n { print $2 }' "$log" | median; }
col3() { awk -v n="$1" '$1 == n { print $3 }' "$log" | median; }
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$out/sluice_$1.json" "$2"; }
rs() { awk -F': ' -v k="$2" '$1 == k { gsub(/[ ,a-z]/, "", $2); print $2 }' "$out/rsync$1.out"; }
echo
echo "Upgrade of a linux-6.1 mirror to linux-6.12 (--delete) over ssh on a private loopback; $runs run(s), medians."
echo "Machine: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores, Linux $(uname -r); build $(cd "$repo" && git rev-parse --short HEAD)."
echo
echo "| tool, mode | chunk / literal data MB | after compression and deltas MB | sent by the sender MB | loopback MB (both ways) | time s |"
echo "|---|---|---|---|---|---|"
for mode in $modes; do
    echo "| sluice $mode | $(mb "$(json "$mode" chunk_bytes_sent)") | $(mb "$(json "$mode" chunk_bytes_encoded)") | $(mb "$(json "$mode" wire_bytes_sent)") | $(mb "$(col3 "sluice_$mode")") | $(col2 "sluice_$mode") |"
done
[ "${RSYNC:-1}" = 1 ] || exit 0
for z in "" z; do
    echo "| rsync -a$z --no-whole-file | $(mb "$(rs "$z" 'Literal data')") | | $(mb "$(rs "$z" 'Total bytes sent')") (received $(mb "$(rs "$z" 'Total bytes received')")) | $(mb "$(col3 "rsync$z")") | $(col2 "rsync$z") |"
done
