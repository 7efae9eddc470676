#!/usr/bin/env bash
# Watch-mode figures (bench/watch.py does the measuring): change-to-mirror
# latency of single edits local and over ssh on loopback, a burst of 10,000
# files, one change in a watched copy of the Linux 6.12 tree (when
# bench/fetch-kernel.sh 6.12 has fetched it), and the idle cost.
#
#   bench/watch.sh            # RUNS=3 EDITS=200 IDLE=60
#
# Results (one JSON object per step and run) go to bench/work/watch/runs.log.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
runs="${RUNS:-3}"
edits="${EDITS:-200}"
idle="${IDLE:-60}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
out="$here/work/watch"
log="$out/runs.log"
tree="$here/work/linux-6.12"

echo "building sluice (release)..." >&2
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
# shellcheck source=lib.sh
. "$here/lib.sh"
mkdir -p "$out"
: >"$log"

keys="$out/keys"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
private_sshd_keys "$keys" 127.0.0.1 "$port"
/usr/sbin/sshd -D -f "$keys/sshd_config" &
sshd_pid=$!
trap 'kill "$sshd_pid" 2>/dev/null || true; rm -rf "$out/w"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
rsh="ssh -p $port -i $keys/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
remote="env XDG_STATE_HOME=$out/remote-state $sluice"

for i in $(seq "$runs"); do
    echo "run $i: local" >&2
    python3 "$here/watch.py" "$sluice" "$out/w" --edits "$edits" --idle 0 | sed "s/^/local /" | tee -a "$log"
    echo "run $i: ssh" >&2
    rm -rf "$out/remote-state"
    python3 "$here/watch.py" "$sluice" "$out/w" --edits "$edits" --idle 0 \
        --rsh "$rsh" --remote-sluice "$remote" | sed "s/^/ssh /" | tee -a "$log"
    if [ -f "$here/work/.linux-6.12.extracted" ]; then
        echo "run $i: kernel tree" >&2
        python3 "$here/watch.py" "$sluice" "$out/w" --tree "$tree" --edits 20 \
            --idle "$([ "$i" = 1 ] && echo "$idle" || echo 0)" | sed "s/^/kernel /" | tee -a "$log"
    fi
done
echo "commit $(git -C "$repo" rev-parse --short HEAD), $(date -u +%F)" | tee -a "$log"
