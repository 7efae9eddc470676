#!/usr/bin/env python3
"""Regenerates testdata/sample deterministically (run from the repo root).

The sample is small (about 4 MB) but has what a mirror must get right:
nested folders, an empty folder, a symlink, a multi-chunk file, and
duplicate content (a copied file and a file sharing a 1 MiB prefix with
the large one), so dedup shows up in `sluice index`."""
import os, random, shutil

root = "testdata/sample"
shutil.rmtree(root, ignore_errors=True)
rng = random.Random(20261123)
def write(path, data):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)

big = rng.randbytes(3 * 1024 * 1024 + 12345)
write("media/video.bin", big)
write("media/clip-of-video.bin", big[: 1024 * 1024] + rng.randbytes(200_000))
words = "sluice moves big trees across long lossy networks in chunks named by hash".split()
for d in ["docs", "docs/guide", "docs/guide/deep/er/still"]:
    for i in range(3):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(50, 3000)))
        write(f"{d}/note-{i}.txt", text.encode())
write("src/main.c", b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
write("backup/main.c", b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
write("README.txt", b"A small sample tree for sluice.\n")
os.makedirs(os.path.join(root, "empty-folder"), exist_ok=True)
with open(os.path.join(root, "empty-folder", ".keep"), "wb"):
    pass
os.symlink("docs/guide/note-0.txt", os.path.join(root, "latest-note"))
