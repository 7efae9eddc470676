#!/usr/bin/env bash
# Fetches the Linux kernel source trees the index benchmark runs on, from
# Debian's packages, into bench/work/ (gitignored), and installs the tools
# bench/index.sh needs. Idempotent: a tree already extracted is left alone.
#
#   bench/fetch-kernel.sh            # linux-6.1 and linux-6.12
#   bench/fetch-kernel.sh 6.1        # only one
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="$here/work"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(6.1 6.12)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

updated=0
apt_update_once() {
    if [ "$updated" -eq 0 ]; then
        $sudo apt-get update -qq
        updated=1
    fi
}

# Tools: rsync (baseline), hyperfine (optional), GNU time (peak RSS),
# b3sum (single-core BLAKE3 reference), xz (the .deb holds a .tar.xz).
need=()
command -v rsync >/dev/null || need+=(rsync)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v b3sum >/dev/null || need+=(b3sum)
command -v xz >/dev/null || need+=(xz-utils)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

mkdir -p "$work"
for v in "${versions[@]}"; do
    dest="$work/linux-$v"
    # The marker lives beside the tree, not in it, so it is never indexed.
    marker="$work/.linux-$v.extracted"
    if [ -f "$marker" ]; then
        echo "linux-$v: already in $dest"
        continue
    fi
    pkg="linux-source-$v"
    deb=$(ls "$work"/${pkg}_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        if ! (cd "$work" && apt-get download "$pkg"); then
            apt_update_once
            (cd "$work" && apt-get download "$pkg")
        fi
        deb=$(ls "$work"/${pkg}_*.deb | head -n 1)
    fi
    echo "linux-$v: extracting $(basename "$deb")"
    tmp="$work/.unpack-$v"
    rm -rf "$tmp" "$dest"
    mkdir -p "$tmp" "$dest"
    # The .deb ships /usr/src/linux-source-V.tar.xz: take only that.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './usr/src/linux-source-*.tar.xz'
    tarball=$(ls "$tmp"/usr/src/linux-source-*.tar.xz | head -n 1)
    tar -xJf "$tarball" -C "$dest" --strip-components=1
    rm -rf "$tmp"
    touch "$marker"
    echo "linux-$v: $(find "$dest" -type f | wc -l) files, $(du -sh "$dest" | cut -f1)"
done
