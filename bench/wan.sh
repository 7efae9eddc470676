#!/usr/bin/env bash
# The real-path bench: sluice (over ssh and to a daemon), rsync (over ssh
# and to rsyncd) and iperf3 (TCP cubic and bbr) pushing from namespace A
# to namespace B across wanem, over a grid of rate x RTT x loss, for one
# big file and a tree of small files.
#
#   bench/wan.sh                                  # the whole grid (hours)
#   RATES=300M RTTS=100 LOSSES=1 TOOLS="sluice-daemon iperf3-bbr" bench/wan.sh
#   WORKLOADS=file FILE_MB=512 RUNS=3 bench/wan.sh
#
# Workloads: file (one random file), tree (small random files), kernel
# (a Linux source tree, KERNEL_TREE, default bench/work/linux-6.1: text
# that compresses; not in the default set).
#
# Knobs: RATES (300M 1G), RTTS in ms (20 100 200), LOSSES in % (0 1 5,
# applied in both directions, so feedback and ACKs are lost too; LOSS_DIR=ab
# for the data direction only, ba for the feedback direction only), TOOLS, WORKLOADS (file tree), FILE_MB
# (2048), TREE_FILES (20000 files of 1-64 KiB), RUNS (1), LIMIT (seconds a
# sluice run may take before it counts as stalled, 600), TCP_LIMIT (seconds
# rsync and iperf3 run; rsync is measured by what arrived by then, 60),
# QUEUE (wanem's queue, default its own 100ms), SLUICE_ARGS (added to every
# `sluice sync`, e.g. "--policy fixed --rate 300M"), REMOTE_LOG (SLUICE_LOG
# for the remote end over ssh; its log lands in the run's log), OUT
# (bench/work/wan).
#
# Goodput is file bytes delivered x 8 / wall time of the whole command
# (connect, plan, transfer, close); the source's index is built before the
# runs, as a repeated sync would find it. "wire" is the bytes the sender
# offered to the link (wanem's A->B count) over the file bytes. CPU seconds
# come from cgroups: the sending command, the receiving servers (sshd and
# what it starts, the daemons), and wanem; "idle" is the machine's idle
# share over the run. Rows go to $OUT/runs.tsv (appended), the table of
# medians to $OUT/results.md, the plot to $OUT/goodput.png (python3 with
# matplotlib). Needs root, iproute2, iperf3, rsync, openssh-server, jq.
#
# Traffic stays between the two namespaces this script makes; servers
# listen inside namespace B only. Everything started is stopped by pid,
# the namespaces and cgroups are removed, and net.core.rmem_max/wmem_max
# (raised to 32 MiB so UDP sockets get the buffers they ask for) are
# restored on exit.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/lib.sh"
. "$here/wanem/netns.sh"

RATES=${RATES:-300M 1G}
RTTS=${RTTS:-20 100 200}
LOSSES=${LOSSES:-0 1 5}
LOSS_DIR=${LOSS_DIR:-both}
TOOLS=${TOOLS:-sluice-ssh sluice-daemon rsync-ssh rsyncd iperf3-cubic iperf3-bbr}
WORKLOADS=${WORKLOADS:-file tree}
FILE_MB=${FILE_MB:-2048}
TREE_FILES=${TREE_FILES:-20000}
RUNS=${RUNS:-1}
LIMIT=${LIMIT:-600}
TCP_LIMIT=${TCP_LIMIT:-60}
QUEUE=${QUEUE:-}
SLUICE_ARGS=${SLUICE_ARGS:-}
OUT=${OUT:-$here/work/wan}
target=${CARGO_TARGET_DIR:-$repo/target}
sluice=$target/release/sluice
WANEM_BIN=${WANEM_BIN:-$target/release/wanem}

for tool in iperf3 rsync jq ip ssh-keygen /usr/sbin/sshd; do
    command -v "$tool" >/dev/null || { echo "wan.sh: $tool not found" >&2; exit 1; }
done
if [ "${BUILD:-1}" = 1 ]; then
    (cd "$repo" && cargo build --release -q -p sync-cli -p wanem) || exit 1
fi
mkdir -p "$OUT"
commit=$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- sync-core sync-cli || echo +)
stamp=$(date -u +%Y-%m-%dT%H:%MZ)

# --- cleanup: servers, cgroups, sysctls, namespaces ------------------------
server_pids=()
cg=
# reap_strays: kills what is left in our cgroups besides the servers
# (everything in them was started by this script or its children, e.g. an
# sshd session of a run that was cut off).
reap_strays() {
    local g p s keep
    for g in snd rcv emu; do
        [ -f "$cg/$g/cgroup.procs" ] || continue
        for p in $(cat "$cg/$g/cgroup.procs"); do
            keep=0
            for s in "${server_pids[@]}" "$WANEM_PID"; do [ "$p" = "$s" ] && keep=1; done
            [ "$keep" = 1 ] || kill -9 "$p" 2>/dev/null
        done
    done
}
finish() {
    local p
    for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${server_pids[@]}"; do wait "$p" 2>/dev/null; done
    server_pids=()
    reap_strays
    wanem_cleanup
    if [ -n "$cg" ]; then
        sleep 0.2
        for p in snd rcv emu; do rmdir "$cg/$p" 2>/dev/null; done
        rmdir "$cg" 2>/dev/null
    fi
}
wanem_ns_create wanb$$- || exit 1
trap finish EXIT
trap 'finish; exit 130' INT TERM
wanem_tcp_buffers && wanem_udp_buffers || exit 1

# --- CPU accounting by cgroup (v1 cpuacct, else v2) -------------------------
if [ -d /sys/fs/cgroup/cpuacct ]; then
    cg=/sys/fs/cgroup/cpuacct/sluice-wan-$$
    cg_ns() { cat "$cg/$1/cpuacct.usage"; }
else
    cg=/sys/fs/cgroup/sluice-wan-$$
    [ -f /sys/fs/cgroup/cgroup.controllers ] || cg=/sys/fs/cgroup/unified/sluice-wan-$$
    cg_ns() { awk '$1 == "usage_usec" { print $2 * 1000 }' "$cg/$1/cpu.stat"; }
fi
mkdir -p "$cg/snd" "$cg/rcv" "$cg/emu" || exit 1
# in_cg GROUP NS CMD... &: runs CMD in namespace NS, accounted to GROUP.
# Background use only: it execs, so that $! is CMD's own pid (killing a
# subshell would leave CMD running).
in_cg() {
    local group=$1 ns=$2
    shift 2
    # The cgroup first: `ip netns exec` mounts a sysfs of its own, without it.
    exec sh -c 'echo $$ >"$0/cgroup.procs" && exec ip netns exec "$@"' "$cg/$group" "$ns" "$@"
}
cpu_idle_total() { awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# --- workloads --------------------------------------------------------------
src_file=$OUT/src-file
src_tree=$OUT/src-tree
src_kernel=${KERNEL_TREE:-$here/work/linux-6.1}
if [ "$(stat -c %s "$src_file/big.bin" 2>/dev/null)" != $((FILE_MB << 20)) ]; then
    rm -rf "$src_file"; mkdir -p "$src_file"
    head -c $((FILE_MB << 20)) /dev/urandom >"$src_file/big.bin"
fi
if [ "$(find "$src_tree" -type f 2>/dev/null | wc -l)" != "$TREE_FILES" ]; then
    rm -rf "$src_tree"; mkdir -p "$src_tree"
    python3 - "$src_tree" "$TREE_FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20000)
for i in range(n):
    d = os.path.join(root, f"d{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(rng.randint(1024, 65536)))
PY
fi
bytes_of() { du -sb --apparent-size "$1" | cut -f1; }
payload_file=$(bytes_of "$src_file/big.bin")
payload_tree=$(find "$src_tree" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
payload_kernel=0
if [[ " $WORKLOADS " == *" kernel "* ]]; then
    [ -d "$src_kernel" ] || { echo "wan.sh: no tree at $src_kernel (bench/fetch-kernel.sh)" >&2; exit 1; }
    payload_kernel=$(find "$src_kernel" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
fi
# The sender's index, built once (a repeated sync finds it there).
export XDG_STATE_HOME=$OUT/state-snd
"$sluice" -q index "$src_file" >/dev/null && "$sluice" -q index "$src_tree" >/dev/null || exit 1
[ "$payload_kernel" = 0 ] || "$sluice" -q index "$src_kernel" >/dev/null || exit 1

# --- servers in namespace B ---------------------------------------------------
dst_root=$OUT/dst
keys=$OUT/keys
rm -rf "$dst_root"; mkdir -p "$dst_root"
private_sshd_keys "$keys" 0.0.0.0 22
in_cg rcv "$WANEM_NS_B" /usr/sbin/sshd -D -f "$keys/sshd_config" &
server_pids+=($!)
cat >"$keys/rsyncd.conf" <<CONF
use chroot = no
[dst]
path = $dst_root
read only = no
uid = root
gid = root
CONF
in_cg rcv "$WANEM_NS_B" rsync --daemon --no-detach --port 873 --config "$keys/rsyncd.conf" &
server_pids+=($!)
sluice_daemon_keys "$keys/daemon" "$dst_root" "$sluice" || exit 1
XDG_STATE_HOME=$OUT/state-rcv in_cg rcv "$WANEM_NS_B" "$sluice" -q serve --config "$keys/daemon/serve.toml" --listen 0.0.0.0:7700 &
server_pids+=($!)
in_cg rcv "$WANEM_NS_B" iperf3 -s --port 5201 >/dev/null 2>&1 &
server_pids+=($!)

rsh="ssh -i $keys/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
remote_sluice="env XDG_STATE_HOME=$OUT/state-rcv${REMOTE_LOG:+ SLUICE_LOG=$REMOTE_LOG} $sluice"
B=$WANEM_ADDR_B

# --- one run --------------------------------------------------------------------
# run TOOL WORKLOAD: sets secs, delivered, complete, and the CPU figures.
run() {
    local tool=$1 workload=$2 src limit=$LIMIT dst=$dst_root/run
    delivered=0
    src=$src_file; [ "$workload" = tree ] && src=$src_tree
    [ "$workload" = kernel ] && src=$src_kernel
    rm -rf "$dst" "$OUT/state-rcv"; sync
    # The source from memory, as for every tool (a first run would
    # otherwise read it from disk after the previous workload evicted it).
    find "$src" -type f -exec cat {} + >/dev/null
    local cmd
    # shellcheck disable=SC2206
    case $tool in
    sluice-ssh) cmd=("$sluice" -q sync $SLUICE_ARGS --rsh "$rsh" --remote-sluice "$remote_sluice" "$src" "root@$B:$dst") ;;
    sluice-daemon) cmd=("$sluice" -q sync $SLUICE_ARGS --key "$keys/daemon/client" --server-key "$server_pub" "$src" "sluice://$B:7700/dst/run") ;;
    rsync-ssh) cmd=(rsync -a -e "$rsh" "$src/" "root@$B:$dst/"); limit=$TCP_LIMIT ;;
    rsyncd) cmd=(rsync -a "$src/" "rsync://$B:873/dst/run/"); limit=$TCP_LIMIT ;;
    iperf3-*) cmd=(iperf3 -c "$B" -t "$TCP_LIMIT" -C "${tool#iperf3-}" --json); limit=$((TCP_LIMIT + 30)) ;;
    esac
    local s0 r0 e0 i0 s1 r1 e1 i1 t0 t1 pid status
    s0=$(cg_ns snd); r0=$(cg_ns rcv); e0=$(cg_ns emu); i0=$(cpu_idle_total)
    t0=$(now_ns)
    # The sending driver's progress lines time the data phase.
    SLUICE_LOG=${SLUICE_LOG:-error,sync_core::net::sender=debug} \
        in_cg snd "$WANEM_NS_A" "${cmd[@]}" >"$OUT/last.out" 2>"$OUT/last.err" &
    pid=$!
    local deadline=$((t0 + limit * 1000000000))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ns)" -lt "$deadline" ]; do sleep 0.2; done
    t1=$(now_ns)
    complete=1
    if kill -0 "$pid" 2>/dev/null; then
        complete=0
        delivered=$(bytes_of "$dst" 2>/dev/null || echo 0)
        kill "$pid"; wait "$pid" 2>/dev/null
        status=timeout
        # Give the peer a moment to see the connection close, then end
        # whatever of the run is left (the far end of an ssh session).
        sleep 1
        reap_strays
    else
        wait "$pid"; status=$?
    fi
    delivered=${delivered:-0}
    s1=$(cg_ns snd); r1=$(cg_ns rcv); e1=$(cg_ns emu); i1=$(cpu_idle_total)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    if [[ $tool == iperf3-* ]]; then
        delivered=$(jq '.end.sum_received.bytes // 0' "$OUT/last.out" 2>/dev/null || echo 0)
        secs=$(jq '.end.sum_received.seconds * 100 | round / 100' "$OUT/last.out" 2>/dev/null || echo "$secs")
        [ "$status" = 0 ] || complete=0
    elif [ "$complete" = 1 ]; then
        local want=$payload_file
        [ "$workload" = tree ] && want=$payload_tree
        [ "$workload" = kernel ] && want=$payload_kernel
        delivered=$(find "$dst" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }')
        [ "$status" = 0 ] && [ "$delivered" = "$want" ] || complete=0
    fi
    [ "$status" = 0 ] || sed 's/^/    /' "$OUT/last.err" | tail -5 >&2
    cpu_snd=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    cpu_rcv=$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    cpu_emu=$(awk -v a="$e0" -v b="$e1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    idle=$(awk -v a="$i0" -v b="$i1" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }')
    run_status=$status
    # The last data phase (the chunks; earlier ones carry the manifest),
    # from its first to its last line of the sender's log.
    data_s=$(awk '/UDP send path/ { s = $1 } /UDP send progress/ { e = $1 }
        END { sub(/s$/, "", s); sub(/s$/, "", e); if (s != "" && e != "") printf "%.2f", e - s; else print "-" }' "$OUT/last.err")
}

[ -s "$OUT/runs.tsv" ] || printf 'date\tcommit\trate\trtt_ms\tloss_pct\tloss_dir\ttool\tworkload\trun\tseconds\tbytes\tcomplete\tstatus\tgoodput_mbps\tshare\twire\tcpu_snd_s\tcpu_rcv_s\tcpu_emu_s\tidle_pct\targs\tdata_s\n' >"$OUT/runs.tsv"
mbit() { awk -v r="$1" 'BEGIN { m = r + 0; if (r ~ /G$/) m *= 1000; print m }'; }

for rate in $RATES; do
    for rtt in $RTTS; do
        for loss in $LOSSES; do
            wargs=(--rate "$rate" --delay "$((rtt / 2))ms" --seed 1)
            case $LOSS_DIR in
            ab) wargs+=(--ab-loss "$loss%") ;;
            ba) wargs+=(--ba-loss "$loss%") ;;
            *) wargs+=(--loss "$loss%") ;;
            esac
            [ -z "$QUEUE" ] || wargs+=(--queue "$QUEUE")
            for tool in $TOOLS; do
                for workload in $WORKLOADS; do
                    [[ $tool == iperf3-* && $workload == tree ]] && continue
                    for r in $(seq "$RUNS"); do
                        wanem_start "${wargs[@]}" || exit 1
                        echo "$WANEM_PID" >"$cg/emu/cgroup.procs"
                        if [[ $tool == iperf3-* ]]; then wanem_pin_cc "${tool#iperf3-}"; else wanem_pin_cc cubic; fi
                        run "$tool" "$workload"
                        wanem_stop
                        mkdir -p "$OUT/logs"
                        cp "$OUT/last.err" "$OUT/logs/$rate-$rtt-$loss-$tool-$workload-$r.err"
                        cp "$WANEM_STATS" "$OUT/logs/$rate-$rtt-$loss-$tool-$workload-$r.wanem.json"
                        wire_in=$(jq '.a_to_b.bytes_in' "$WANEM_STATS")
                        want=$payload_file; [ "$workload" = tree ] && want=$payload_tree
                        [ "$workload" = kernel ] && want=$payload_kernel
                        # A bounded run (iperf3, rsync cut off): relative to what arrived.
                        [[ $tool == iperf3-* || $complete == 0 ]] && want=$delivered
                        goodput=$(awk -v b="$delivered" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? b * 8 / s / 1e6 : 0) }')
                        share=$(awk -v g="$goodput" -v m="$(mbit "$rate")" 'BEGIN { printf "%.3f", g / m }')
                        wire=$(awk -v w="$wire_in" -v b="$want" 'BEGIN { printf "%.3f", (b > 0 ? w / b : 0) }')
                        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                            "$stamp" "$commit" "$rate" "$rtt" "$loss" "$LOSS_DIR" "$tool" "$workload" "$r" "$secs" "$delivered" \
                            "$complete" "$run_status" "$goodput" "$share" "$wire" "$cpu_snd" "$cpu_rcv" "$cpu_emu" "$idle" "$SLUICE_ARGS" "$data_s" |
                            tee -a "$OUT/runs.tsv" >&2
                    done
                done
            done
        done
    done
done

python3 "$here/wan-report.py" "$OUT/runs.tsv" "$OUT/results.md" "$OUT/goodput.png" || echo "wan.sh: report failed" >&2
echo "rows: $OUT/runs.tsv, table: $OUT/results.md" >&2
