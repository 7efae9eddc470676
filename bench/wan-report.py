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
commit = rows[-1]["commit"]
rows = [r for r in rows if r["commit"] == commit]

cells = defaultdict(list)
for r in rows:
    key = (r["rate"], int(r["rtt_ms"]), float(r["loss_pct"]), r["loss_dir"], r["tool"], r["workload"], r["args"])
    cells[key].append(r)


def rate_mbit(rate):
    return float(rate[:-1]) * (1000 if rate.endswith("G") else 1)


def med(rs, col):
    return statistics.median(float(r[col]) for r in rs)


out = [
    f"Real path, commit {commit}, {rows[0]['date']} to {rows[-1]['date']}: push from namespace A to B through wanem.",
    "Goodput = file bytes delivered x 8 / wall time of the whole command; share = goodput / link rate;",
    "wire = bytes offered to the link A->B / file bytes; CPU in seconds (sender / receiver / emulator); idle = machine idle share.",
    "`complete` counts runs that delivered everything in time (rsync and iperf3 run a bounded time: their goodput is what arrived).",
    "",
    "| rate | RTT ms | loss % | tool | workload | args | runs (complete) | goodput Mbit/s median [range] | share | wire | CPU snd / rcv / emu s | idle % |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for key in sorted(cells, key=lambda k: (rate_mbit(k[0]), k[1], k[2], k[3], k[4], k[5], k[6])):
    rs = cells[key]
    rate, rtt, loss, ldir, tool, workload, args = key
    g = [float(r["goodput_mbps"]) for r in rs]
    done = sum(r["complete"] == "1" for r in rs)
    out.append(
        f"| {rate} | {rtt} | {loss:g}{'' if ldir == 'both' else ' (A->B)'} | {tool} | {workload} | {args or '-'} | {len(rs)} ({done}) "
        f"| {statistics.median(g):.1f} [{min(g):.1f}-{max(g):.1f}] | {med(rs, 'share'):.3f} | {med(rs, 'wire'):.3f} "
        f"| {med(rs, 'cpu_snd_s'):.1f} / {med(rs, 'cpu_rcv_s'):.1f} / {med(rs, 'cpu_emu_s'):.1f} | {med(rs, 'idle_pct'):.0f} |"
    )
open(md, "w").write("\n".join(out) + "\n")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("matplotlib missing (pip install matplotlib): table written, no plot")

panels = sorted({(k[0], k[5]) for k in cells}, key=lambda p: (rate_mbit(p[0]), p[1]))
tools = sorted({k[4] for k in cells})
fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
for ax, (rate, workload) in zip(axes[:, 0], panels):
    conds = sorted({(k[1], k[2]) for k in cells if k[0] == rate and k[5] == workload})
    width = 0.8 / max(1, len(tools))
    for i, tool in enumerate(tools):
        ys = []
        for rtt, loss in conds:
            rs = [r for k, v in cells.items() if k[:3] == (rate, rtt, loss) and k[4] == tool and k[5] in (workload, "file") for r in v
                  if k[5] == workload or tool.startswith("iperf3")]
            ys.append(statistics.median(float(r["share"]) for r in rs) if rs else 0)
        ax.bar([j + i * width for j in range(len(conds))], ys, width, label=tool)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(conds))])
    ax.set_xticklabels([f"{rtt} ms\n{loss:g} %" for rtt, loss in conds])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of link")
    ax.set_title(f"{rate} link, {workload} (iperf3 bars: its bulk TCP flow)")
    ax.axhline(0.9, color="grey", lw=0.5, ls="--")
    ax.legend(fontsize=7, ncol=3)
fig.tight_layout()
fig.savefig(png, dpi=90)
