#!/usr/bin/env python3
"""Plots balancekv-eval's CSV: relative error vs memory (the frontier), one
line per method, one panel per data set. The x axis is the memory ratio N/M
where the CSV has one (memory_ratio), else the ratio column. Usage:
plot_quality.py CSV OUT.svg"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, out):
    rows = defaultdict(lambda: defaultdict(list))
    with open(src) as f:
        for r in csv.DictReader(f):
            x = float(r.get("memory_ratio") or r["ratio"])
            rows[r["dataset"]][r["method"]].append(
                (x, float(r["mean_rel_error"]), float(r["std_rel_error"])))
    datasets = sorted(rows)
    # One colour per method in every panel (panels may lack some methods).
    methods = sorted({m for ds in rows.values() for m in ds})
    colour = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2))
    if len(datasets) == 1:
        axes = [axes]
    for ax, ds in zip(axes, datasets):
        for method, pts in sorted(rows[ds].items()):
            pts.sort()
            xs, ys, es = zip(*pts)
            style = ("-" if method.startswith("balance") or method == "adaptive"
                     else "--")
            ax.errorbar(xs, ys, yerr=es, label=method, marker="o",
                        linestyle=style, capsize=3, color=colour[method])
        ax.set_xscale("log", base=2)
        ax.set_xticks([2, 4, 8, 16])
        ax.set_xticklabels(["2", "4", "8", "16"])
        ax.set_xlabel("memory ratio N/M (tokens of the cache per token kept)")
        ax.set_ylabel("mean relative attention error")
        ax.set_title(ds)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
