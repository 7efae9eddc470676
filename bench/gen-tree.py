#!/usr/bin/env python3
"""Writes a tree of many small files for the million-file bench.

    bench/gen-tree.py DIR FOLDERS FILES_PER_FOLDER [MIN_BYTES MAX_BYTES [SEED]]

Folders d0000 .. and files f00000 .. inside each; sizes uniform in
[MIN_BYTES, MAX_BYTES] (default 16-1500), contents pseudo-random from SEED
(default 1), so two runs with the same arguments write the same tree.
"""
import os
import random
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    root = sys.argv[1]
    folders, per = int(sys.argv[2]), int(sys.argv[3])
    lo = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    hi = int(sys.argv[5]) if len(sys.argv) > 5 else 1500
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    pool = rng.randbytes(1 << 20)
    os.makedirs(root, exist_ok=True)
    for d in range(folders):
        folder = os.path.join(root, f"d{d:04d}")
        os.makedirs(folder, exist_ok=True)
        for f in range(per):
            n = rng.randint(lo, hi)
            at = rng.randrange(len(pool) - n)
            with open(os.path.join(folder, f"f{f:06d}"), "wb") as out:
                out.write(pool[at:at + n])


if __name__ == "__main__":
    main()
