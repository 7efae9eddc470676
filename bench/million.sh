#!/usr/bin/env bash
# A tree of many small files, as the million-file issue tried it: sluice
# against `rsync -a` in the same run, local and over ssh on loopback, first
# sync and no-change re-sync, with wall time, CPU and peak RSS (largest
# process) of each.
#
#   bench/million.sh                      # 1,000,000 files in 1,000 folders
#   FILES=200000 FOLDERS=1 bench/million.sh   # one folder of 200,000
#
# Knobs (environment): FILES (default 1000000), FOLDERS (1000), RUNS (3),
# STEPS (default "local indexed ssh"; local always runs), CARGO_TARGET_DIR.
# The tree is written once by bench/gen-tree.py (16-1,500 bytes a file) under
# bench/work/million/ and kept. Every copy lands on a fresh ext4 filesystem
# (see scratch_fs in lib.sh), since this disk's own filesystem slows down
# creating files soon after as many were deleted. The source stays in the
# page cache (read once before the runs), as it would for both tools.
#
# Steps, per run:
#   local    rsync -a SRC/ A/; sluice sync SRC B with no index on either
#            side (a new user's first sync: sluice reads and hashes every
#            file); then both again, nothing changed (the re-sync).
#   indexed  sluice sync into a new folder with SRC already indexed (what a
#            scheduled job meets after its first run: new destination).
#   ssh      both over ssh to 127.0.0.1 (a private sshd), first sync.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
work="$here/work"
files="${FILES:-1000000}"
folders="${FOLDERS:-1000}"
runs="${RUNS:-3}"
steps="${STEPS:-local indexed ssh}"
target="${CARGO_TARGET_DIR:-$repo/target}"
sluice="$target/release/sluice"
out="$work/million"
log="$out/runs-$files-$folders.log"
src="$out/src-$files-$folders"

echo "building sluice (release)..." >&2
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p sync-cli)
mkdir -p "$out"
# shellcheck source=lib.sh
. "$here/lib.sh"
if [ ! -f "$src/.complete" ]; then
    echo "writing $files files in $folders folders to $src..." >&2
    rm -rf "$src"
    python3 "$here/gen-tree.py" "$src" "$folders" $((files / folders))
    touch "$src/.complete"
fi
find "$src" -type f -print0 | xargs -0 -n 2048 cat >/dev/null

: >"$log"
fs=()
sshd_pid=""
cleanup() {
    [ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null || true
    for f in "${fs[@]}"; do scratch_fs_remove "$f"; done
}
trap cleanup EXIT

# fresh NAME: a new filesystem at $out/NAME (inodes for 3 x the tree).
fresh() {
    local d="$out/$1"
    scratch_fs_remove "$d"
    mkdir -p "$d"
    truncate -s 60G "$d.img"
    mkfs.ext4 -q -F -N $((files * 3 + 100000)) "$d.img"
    mount -o loop "$d.img" "$d"
    fs+=("$d")
}

# measured NAME CMD...: runs CMD under GNU time; logs
# "NAME wall_s peak_rss_kb user_s sys_s".
measured() {
    local name="$1"; shift
    sync
    if ! /usr/bin/time -o "$out/.time" -f "%e %M %U %S" "$@" >"$out/.out" 2>"$out/.err"; then
        echo "$name failed:" >&2; cat "$out/.err" >&2; exit 1
    fi
    echo "$name $(cat "$out/.time")" | tee -a "$log" >&2
}

same_tree() {
    diff -r -q "$1" "$2" >/dev/null || { echo "$2 differs from $1" >&2; exit 1; }
}

if [[ " $steps " == *" ssh "* ]]; then
    keys="$out/keys"
    start_private_sshd "$keys"
fi

for i in $(seq "$runs"); do
    state="$out/state"
    rm -rf "$state"
    fresh rsync; fresh sluice
    measured rsync_first rsync -a "$src/" "$out/rsync/t/"
    measured sluice_first env XDG_STATE_HOME="$state" "$sluice" sync -q "$src" "$out/sluice/t"
    measured rsync_again rsync -a "$src/" "$out/rsync/t/"
    measured sluice_again env XDG_STATE_HOME="$state" "$sluice" sync -q "$src" "$out/sluice/t"
    [ "$i" != 1 ] || { same_tree "$src" "$out/rsync/t"; same_tree "$src" "$out/sluice/t"; }
    scratch_fs_remove "$out/rsync"; scratch_fs_remove "$out/sluice"
    if [[ " $steps " == *" indexed "* ]]; then
        fresh sluice
        measured sluice_indexed env XDG_STATE_HOME="$state" "$sluice" sync -q "$src" "$out/sluice/u"
        scratch_fs_remove "$out/sluice"
    fi
    if [[ " $steps " == *" ssh "* ]]; then
        fresh rsync; fresh sluice
        rm -rf "$state" "$out/remote-state"
        measured rsync_ssh rsync -a -e "$rsh" "$src/" "root@127.0.0.1:$out/rsync/t/"
        # nohup: sshd hangs up on the remote command when the session ends,
        # which would stop time(1) before it writes.
        remote="nohup /usr/bin/time -o $out/.remote-time -f %M env XDG_STATE_HOME=$out/remote-state $sluice"
        measured sluice_ssh env XDG_STATE_HOME="$state" "$sluice" sync -q --rsh "$rsh" \
            --remote-sluice "$remote" "$src" "root@127.0.0.1:$out/sluice/t"
        sleep 1
        echo "sluice_ssh_remote_rss_kb $(tail -1 "$out/.remote-time")" | tee -a "$log" >&2
        [ "$i" != 1 ] || same_tree "$src" "$out/sluice/t"
        scratch_fs_remove "$out/rsync"; scratch_fs_remove "$out/sluice"
    fi
done

field() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$log" | median; }
range() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$log" | sort -g | sed -n '1p;$p' | paste -sd- -; }
row() {
    local what="$1" s="$2" r="$3"
    grep -q "^$s " "$log" || return 0
    local st rt
    st=$(field "$s" 2); rt=""
    if grep -q "^$r " "$log"; then rt=$(field "$r" 2); fi
    printf '| %s | %s [%s] | %s [%s] | %s | %s | %s |\n' "$what" "$st" "$(range "$s" 2)" \
        "${rt:--}" "$( [ -n "$rt" ] && range "$r" 2 || echo -)" \
        "$( [ -n "$rt" ] && awk -v a="$st" -v b="$rt" 'BEGIN { printf "%.2f", a / b }' || echo -)" \
        "$(awk -v k="$(field "$s" 3)" 'BEGIN { printf "%.0f", k / 1024 }')" \
        "$(field "$s" 4) / $(field "$s" 5)"
}
cat <<TABLE

$files files in $folders folders ($runs runs, medians [range] of wall seconds; $(date -u +%F), commit $(git -C "$repo" rev-parse --short HEAD)).

| step | sluice s | rsync -a s | sluice / rsync | sluice peak RSS MB | sluice user / sys s |
|---|---|---|---|---|---|
TABLE
row "first sync, local, no index" sluice_first rsync_first
row "re-sync, nothing changed" sluice_again rsync_again
row "first sync, SRC indexed" sluice_indexed rsync_first
row "first sync over ssh" sluice_ssh rsync_ssh
if grep -q '^sluice_ssh_remote_rss_kb' "$log"; then
    echo
    echo "Over ssh the remote sluice peaked at $(awk '$1 == "sluice_ssh_remote_rss_kb" { print $2 / 1024 }' "$log" | median) MB (median)."
fi
