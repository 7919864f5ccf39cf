#!/usr/bin/env python3
"""Averages balancekv-eval CSVs (one per cache) into one table: mean relative
error per method and ratio, +- the standard error over caches, the best
fixed policy per ratio, adaptive's gain over it, and the cells where
adaptive loses to a cache's own best fixed policy. Also writes the averages
as a CSV for scripts/plot_quality.py.

  scripts/quality_table.py NAME OUT.csv A.csv B.csv ...   (Markdown on stdout)
"""
import collections
import csv
import os
import statistics
import sys

FIXED = ["balance", "uniform", "streaming", "knorm", "snapkv", "snapkv-pool1"]


def read(path):
    cells = collections.defaultdict(dict)  # ratio -> method -> error
    memory = {}
    for r in csv.DictReader(open(path)):
        ratio = float(r["ratio"])
        cells[ratio][r["method"]] = float(r["mean_rel_error"])
        memory[ratio] = float(r.get("memory_ratio") or ratio)
    return cells, memory


def main(name, out_csv, paths):
    per_cache = {os.path.basename(p)[:-4]: read(p) for p in paths}
    ratios = sorted(next(iter(per_cache.values()))[0])
    methods = [m for m in FIXED + ["balance-gamma0", "adaptive-norefit", "adaptive"]
               if all(m in c[0][r] for c in per_cache.values() for r in ratios)]
    values = {(r, m): [c[0][r][m] for c in per_cache.values()]
              for r in ratios for m in methods}
    mean = {k: statistics.mean(v) for k, v in values.items()}
    sem = {k: statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0
           for k, v in values.items()}
    print(f"**{name}** ({len(paths)} caches; mean relative error, ± standard "
          "error over caches)\n")
    print("| method | " + " | ".join(f"x{r:g}" for r in ratios) + " |")
    print("|---|" + "---|" * len(ratios))
    for m in methods:
        print(f"| {m} | " + " | ".join(f"{mean[r, m]:.4f} ± {sem[r, m]:.4f}"
                                      for r in ratios) + " |")
    fixed = [m for m in methods if m in FIXED]
    if fixed and "adaptive" in methods:
        best = [min(fixed, key=lambda m: mean[r, m]) for r in ratios]
        print("| best fixed | " + " | ".join(
            f"{mean[r, b]:.4f} ({b})" for r, b in zip(ratios, best)) + " |")
        print("| adaptive vs best fixed | " + " | ".join(
            f"{100 * (1 - mean[r, 'adaptive'] / mean[r, b]):+.1f} %"
            for r, b in zip(ratios, best)) + " |")
        worse = []
        for cache, (cells, _) in sorted(per_cache.items()):
            for r in ratios:
                b = min(cells[r][m] for m in fixed)
                if cells[r]["adaptive"] > b:
                    worse.append(f"{cache} x{r:g} ({cells[r]['adaptive']:.4f} "
                                 f"vs {b:.4f})")
        print("\nCells where adaptive is worse than that cache's best fixed "
              "policy: " + (", ".join(worse) if worse else "none") + ".")
    memory = next(iter(per_cache.values()))[1]
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "method", "ratio", "memory_ratio",
                    "mean_rel_error", "std_rel_error"])
        for r in ratios:
            for m in methods:
                w.writerow([name, m, r, memory[r], mean[r, m], sem[r, m]])


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
