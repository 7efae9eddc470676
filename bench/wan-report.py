#!/usr/bin/env python3
"""Table and plot for bench/wan.sh: runs.tsv -> results.md, goodput.png.

Rows of the last commit in runs.tsv only (earlier commits stay in the file
for comparison). Each cell (rate, RTT, loss, tool, workload, extra args)
shows the median goodput and its range over the runs, the median share of
the link rate, wire bytes over file bytes, and CPU seconds.
"""
import csv
import statistics
import sys
from collections import defaultdict

tsv, md, png = sys.argv[1:4]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
if not rows:
    sys.exit("no rows")
# The last build's rows ("+": built with uncommitted changes to the
# bench's own files or diagnostics, not to what is measured).
commit = rows[-1]["commit"].rstrip("+")
rows = [r for r in rows if r["commit"].rstrip("+") == commit]

cells = defaultdict(list)
for r in rows:
    key = (r["rate"], int(r["rtt_ms"]), float(r["loss_pct"]), r["loss_dir"], r["tool"], r["workload"], r["args"])
    cells[key].append(r)


def rate_mbit(rate):
    return float(rate[:-1]) * (1000 if rate.endswith("G") else 1)


def med(rs, col):
    vals = [float(r[col]) for r in rs if r.get(col) not in (None, "", "-")]
    return statistics.median(vals) if vals else float("nan")


out = [
    f"Real path, commit {commit}, {rows[0]['date']} to {rows[-1]['date']}: push from namespace A to B through wanem.",
    "Goodput = file bytes delivered x 8 / wall time of the whole command; share = goodput / link rate;",
    "wire = bytes offered to the link A->B / file bytes; CPU in seconds (sender / receiver / emulator); idle = machine idle share.",
    "`complete` counts runs that delivered everything in time (rsync and iperf3 run a bounded time: their goodput is what arrived).",
    "",
    "| rate | RTT ms | loss % | tool | workload | args | runs (complete) | goodput Mbit/s median [range] | share | wire | x rsync-ssh | data phase s | CPU snd / rcv / emu s | idle % |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for key in sorted(cells, key=lambda k: (rate_mbit(k[0]), k[1], k[2], k[3], k[4], k[5], k[6])):
    rs = cells[key]
    rate, rtt, loss, ldir, tool, workload, args = key
    g = [float(r["goodput_mbps"]) for r in rs]
    done = sum(r["complete"] == "1" for r in rs)
    rsync = cells.get((rate, rtt, loss, ldir, "rsync-ssh", workload, ""))
    ratio = "-"
    if tool.startswith("sluice") and rsync:
        base = statistics.median(float(r["goodput_mbps"]) for r in rsync)
        ratio = f"{statistics.median(g) / base:.0f}x" if base > 0 else "inf"
    data_s = med(rs, "data_s")
    out.append(
        f"| {rate} | {rtt} | {loss:g}{'' if ldir == 'both' else ' (A->B)'} | {tool} | {workload} | {args or '-'} | {len(rs)} ({done}) "
        f"| {statistics.median(g):.1f} [{min(g):.1f}-{max(g):.1f}]{'' if done else ' (timed out)'} | {med(rs, 'share'):.3f} | {med(rs, 'wire'):.3f} "
        f"| {ratio} | {'-' if data_s != data_s else f'{data_s:.2f}'} "
        f"| {med(rs, 'cpu_snd_s'):.1f} / {med(rs, 'cpu_rcv_s'):.1f} / {med(rs, 'cpu_emu_s'):.1f} | {med(rs, 'idle_pct'):.0f} |"
    )
open(md, "w").write("\n".join(out) + "\n")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("matplotlib missing (pip install matplotlib): table written, no plot")

# The plot: goodput against loss at 100 ms (or PLOT_RTT), one
# line per tool, a panel per link rate and workload; log scale, since
# TCP's figures are a hundredth of sluice's.
import os

plot_rtt = int(os.environ.get("PLOT_RTT", "100"))
panels = sorted({(k[0], k[5]) for k in cells if k[1] == plot_rtt and not k[6]}, key=lambda p: (rate_mbit(p[0]), p[1]))
if not panels:
    sys.exit(f"no cells at {plot_rtt} ms: table written, no plot")
fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
for ax, (rate, workload) in zip(axes[0], panels):
    for tool in sorted({k[4] for k in cells}):
        # iperf3 moves no files: its bulk flow is drawn on every panel.
        w = "file" if tool.startswith("iperf3") else workload
        pts = sorted(
            (k[2], statistics.median(float(r["goodput_mbps"]) for r in v))
            for k, v in cells.items()
            if k[0] == rate and k[1] == plot_rtt and k[4] == tool and k[5] == w and not k[6]
        )
        if pts:
            ax.plot([p[0] for p in pts], [max(p[1], 0.05) for p in pts], marker="o", label=tool)
    ax.axhline(rate_mbit(rate), color="grey", lw=0.5, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(0.1, rate_mbit(rate) * 1.5)
    ax.set_xlabel("loss % (both directions)")
    ax.set_ylabel("goodput Mbit/s")
    ax.set_title(f"{rate}, {plot_rtt} ms, {workload}")
    ax.legend(fontsize=7)
fig.suptitle(f"commit {commit}: goodput through wanem (whole command, wall time)", fontsize=9)
fig.tight_layout()
fig.savefig(png, dpi=90)
