#!/usr/bin/env python3
"""Watch-mode figures: change-to-mirror latency, a burst, one change in a big
tree, and the idle cost of a running `sluice watch`.

    bench/watch.py SLUICE WORK [--tree TREE] [--rsh CMD --remote-sluice CMD]
                   [--edits N] [--idle SECONDS]

SLUICE is the binary; WORK a scratch folder (emptied first). Steps:

  latency  N single small edits, one at a time (50 ms apart): the time from
           the close of the file at SRC until DST holds the same bytes
           (DST polled every 0.5 ms); median, p90, p99, max.
  burst    10,000 new small files written as fast as Python can: the time
           from the last close until all are at DST, and from the first.
  tree     (with --tree) a copy of TREE is watched; one file changed: the
           round's own duration and CPU time of the watch process, from its
           --json output and /proc.
  idle     CPU of the watch process over --idle seconds with nothing
           changing (of one core), and its resident memory.

With --rsh, DST is root@127.0.0.1:WORK/dst over that ssh command (latency
step only, plus idle). Prints one JSON object per step.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of a process and its threads."""
    with open(f"/proc/{pid}/stat") as f:
        after = f.read().rsplit(")", 1)[1].split()
    return (int(after[11]) + int(after[12])) / CLK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for(pred, timeout, step=0.0005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def same_bytes(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


class Watch:
    """A running `sluice watch --json`; its rounds collected from stdout."""

    def __init__(self, sluice, src, dst, state, extra):
        env = dict(os.environ, XDG_STATE_HOME=state)
        env.pop("SLUICE_LOG", None)
        self.proc = subprocess.Popen(
            [sluice, "watch", "--json", *extra, src, dst],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.rounds = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.rounds.append(json.loads(line))

    def count(self):
        with self.lock:
            return len(self.rounds)

    def since(self, n):
        with self.lock:
            return list(self.rounds[n:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def latency(w, src, dst, edits):
    os.makedirs(os.path.join(src, "edits"), exist_ok=True)
    got = []
    for i in range(edits):
        name = f"edits/f{i % 10}"
        data = f"edit {i} {time.time_ns()}\n".encode() * 4
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
        t0 = time.monotonic()
        if not wait_for(lambda: same_bytes(os.path.join(dst, name), data), 10):
            raise SystemExit(f"edit {i} did not reach the mirror within 10 s")
        got.append((time.monotonic() - t0) * 1000)
        time.sleep(0.05)
    return {
        "step": "latency",
        "edits": edits,
        "median_ms": round(statistics.median(got), 1),
        "p90_ms": round(pct(got, 90), 1),
        "p99_ms": round(pct(got, 99), 1),
        "max_ms": round(max(got), 1),
        "min_ms": round(min(got), 1),
    }


def burst(w, src, dst, files=10_000):
    d = os.path.join(src, "burst")
    os.makedirs(d)
    first = time.monotonic()
    for i in range(files):
        with open(os.path.join(d, f"{i:05}"), "wb") as f:
            f.write(b"burst file %d\n" % i)
    last = time.monotonic()
    out = os.path.join(dst, "burst")

    def done():
        try:
            return len(os.listdir(out)) == files
        except OSError:
            return False

    if not wait_for(done, 60, 0.005):
        raise SystemExit("the burst did not arrive within 60 s")
    end = time.monotonic()
    for i in (0, files // 2, files - 1):
        if not same_bytes(os.path.join(out, f"{i:05}"), b"burst file %d\n" % i):
            raise SystemExit(f"burst file {i} differs")
    return {
        "step": "burst",
        "files": files,
        "write_s": round(last - first, 2),
        "after_last_close_s": round(end - last, 2),
        "after_first_close_s": round(end - first, 2),
    }


def idle(w, seconds):
    c0 = cpu_seconds(w.proc.pid)
    time.sleep(seconds)
    c1 = cpu_seconds(w.proc.pid)
    return {
        "step": "idle",
        "seconds": seconds,
        "cpu_percent_of_one_core": round(100 * (c1 - c0) / seconds, 3),
        "rss_mb": round(rss_mb(w.proc.pid), 1),
    }


def tree_round(w, src, tries=5):
    """One file of the big tree changed, `tries` times: each round's
    duration (its own report) and the watch's CPU time for it."""
    victim = None
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".c"):
                victim = os.path.join(root, f)
                break
        if victim:
            break
    with open(victim, "rb") as f:
        original = f.read()
    out = []
    for i in range(tries):
        n = w.count()
        c0 = cpu_seconds(w.proc.pid)
        with open(victim, "wb") as f:
            f.write(original + b"/* edit %d */\n" % i)
        if not wait_for(lambda: w.count() > n, 10, 0.002):
            raise SystemExit("no round for the edit in the big tree")
        time.sleep(0.1)
        c1 = cpu_seconds(w.proc.pid)
        r = w.since(n)[0]
        out.append((r["duration_ms"], (c1 - c0) * 1000, r["changed"]))
        time.sleep(0.3)
    return {
        "step": "tree",
        "entries_in_tree": sum(len(d) + len(f) for _, d, f in os.walk(src)) + 1,
        "round_ms_median": round(statistics.median(x[0] for x in out), 1),
        "round_ms_max": round(max(x[0] for x in out), 1),
        "cpu_ms_median": round(statistics.median(x[1] for x in out), 1),
        "changed_per_round": [x[2] for x in out],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sluice")
    ap.add_argument("work")
    ap.add_argument("--tree")
    ap.add_argument("--rsh")
    ap.add_argument("--remote-sluice")
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--idle", type=int, default=60)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    src, dst, state = (os.path.join(a.work, x) for x in ("src", "dst", "state"))
    os.makedirs(src)
    if a.tree:
        # A copy, so the tree itself is never edited.
        subprocess.run(["cp", "-a", a.tree + "/.", src], check=True)
    with open(os.path.join(src, "ready"), "w") as f:
        f.write("ready\n")
    extra = ["--delete"]
    target = dst
    if a.rsh:
        extra += ["--rsh", a.rsh, "--remote-sluice", a.remote_sluice]
        target = f"root@127.0.0.1:{dst}"
    w = Watch(a.sluice, src, target, state, extra)
    try:
        if not wait_for(lambda: same_bytes(os.path.join(dst, "ready"), b"ready\n"), 600, 0.05):
            raise SystemExit("the first sync did not finish within 600 s")
        wait_for(lambda: w.count() > 0, 60, 0.05)
        time.sleep(0.5)
        if a.tree:
            print(json.dumps(tree_round(w, src)), flush=True)
        print(json.dumps(latency(w, src, dst, a.edits)), flush=True)
        if not a.rsh and not a.tree:
            print(json.dumps(burst(w, src, dst)), flush=True)
        if a.idle:
            time.sleep(1)
            print(json.dumps(idle(w, a.idle)), flush=True)
    finally:
        w.stop()


if __name__ == "__main__":
    sys.exit(main())
