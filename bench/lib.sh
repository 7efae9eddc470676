# Shared helpers for the bench scripts (sourced, not run).

now_ns() { date +%s%N; }

# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed NAME CMD...: runs CMD, appends "NAME seconds" to $log; output goes
# to $out/.out and $out/.err, shown only if CMD fails (which ends the script).
timed() {
    local name="$1"; shift
    local t0 t1
    t0=$(now_ns)
    "$@" >"$out/.out" 2>"$out/.err" || { echo "$name failed:" >&2; cat "$out/.err" >&2; exit 1; }
    t1=$(now_ns)
    echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" | tee -a "$log" >&2
}

# The seconds logged under NAME, one per line.
col() { awk -v n="$1" '$1 == n { print $2 }' "$log"; }

# scratch_fs DIR SIZE: mounts a new ext4 filesystem (mkfs defaults, with a
# journal) at DIR, backed by a sparse file DIR.img, so destination copies
# land on a filesystem with no history. This machine's root filesystem is
# ext4 without a journal, which refuses to reuse inodes freed in the last
# minutes: there, creating 78,000 files soon after deleting as many is
# several times slower, and the result depends on what ran before.
# Needs root. Undo with scratch_fs_remove DIR.
scratch_fs() {
    mkdir -p "$1"
    truncate -s "$2" "$1.img"
    mkfs.ext4 -q -F "$1.img"
    mount -o loop "$1.img" "$1"
}

scratch_fs_remove() {
    if mountpoint -q "$1"; then umount "$1"; fi
    rm -f "$1.img"
}

# dst_root NAME: where a script's destination copies go: a scratch
# filesystem at $out/NAME (FRESH_FS=1, the default), or plain folders under
# $out on the machine's own disk (FRESH_FS=0). Registers the cleanup.
dst_root() {
    if [ "${FRESH_FS:-1}" = 1 ]; then
        scratch_fs_remove "$out/$1"
        scratch_fs "$out/$1" 40G
        echo "destination: a fresh ext4 filesystem at $out/$1" >&2
        cleanup_fs="$out/$1"
    else
        mkdir -p "$out/$1"
        cleanup_fs=""
    fi
    droot="$out/$1"
}

# private_sshd_keys DIR ADDR PORT: throwaway host and user keys in DIR and
# an sshd_config there that listens on ADDR:PORT and lets DIR/user in as
# root, touching nothing of the system's configuration. Start it with
# `/usr/sbin/sshd -D -f DIR/sshd_config`; log in with `-i DIR/user`.
private_sshd_keys() {
    local dir=$1 addr=$2 port=$3
    rm -rf "$dir"; mkdir -p "$dir" /run/sshd
    ssh-keygen -q -t ed25519 -N "" -f "$dir/host"
    ssh-keygen -q -t ed25519 -N "" -f "$dir/user"
    cp "$dir/user.pub" "$dir/authorized_keys"
    cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress $addr
HostKey $dir/host
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel FATAL
CONF
}

# start_private_sshd DIR: an sshd of our own on a free port of 127.0.0.1
# with throwaway keys in DIR (private_sshd_keys), waited for until it
# listens; sets sshd_pid (stop it by that pid) and rsh (the ssh command
# that logs in to it as root).
start_private_sshd() {
    local keys=$1 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    private_sshd_keys "$keys" 127.0.0.1 "$port"
    /usr/sbin/sshd -D -f "$keys/sshd_config" &
    sshd_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    rsh="ssh -p $port -i $keys/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
}

# sluice_daemon_keys DIR MODULE_PATH SLUICE: client and server key pairs in
# DIR and DIR/serve.toml serving MODULE_PATH as module `dst`, read-write,
# to that client; sets server_pub to the key `--server-key` wants.
sluice_daemon_keys() {
    local dir=$1 path=$2 sluice=$3 client_pub
    mkdir -p "$dir"
    client_pub=$("$sluice" keygen --out "$dir/client" 2>/dev/null) || return 1
    server_pub=$("$sluice" keygen --out "$dir/server" 2>/dev/null) || return 1
    cat >"$dir/serve.toml" <<CONF
key = "$dir/server"
[modules.dst]
path = "$path"
access = "read-write"
allowed_keys = ["$client_pub"]
CONF
}
