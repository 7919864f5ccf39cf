#!/usr/bin/env python3
"""Summarises ncu's per-instruction stall samples by barrier-delimited region.

  ncu --section SourceCounters -k regex:walkRound --launch-count 1 -o rep \\
      python3 bench/profile_compress.py --lib build/lib/libbalancekv_cuda.so
  ncu -i rep.ncu-rep --page source --csv --print-source sass > sass.csv
  python3 bench/sass_regions.py sass.csv

A region ends at each BAR or EXIT instruction, so in a warp-specialised
kernel the regions are the phases between hand-offs. For every region with
at least --min percent of the samples: its share, its top stall reasons and
its most frequent opcodes.
"""
import argparse
import csv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--min", type=float, default=2.0)
    args = ap.parse_args()
    rows = list(csv.reader(open(args.csv)))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    hdr, data = rows[start], rows[start + 1:]
    ix = {h: i for i, h in enumerate(hdr)}
    reasons = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]
    recs = []
    for r in data:
        try:
            w = float(r[ix["Warp Stall Sampling (All Samples)"]] or 0)
        except (ValueError, IndexError):
            continue
        recs.append((r[ix["Source"]], w, {k: float(r[ix[k]] or 0) for k in reasons}))
    total = sum(x[1] for x in recs) or 1.0
    regions, cur = [], []
    for i, x in enumerate(recs):
        cur.append((i, x))
        op = [o for o in x[0].split() if not o.startswith("@")]
        if op and (op[0].startswith("BAR") or op[0].startswith("EXIT")):
            regions.append(cur)
            cur = []
    regions.append(cur)
    print(f"{len(recs)} instructions, {total:.0f} samples")
    for reg in regions:
        w = sum(x[1] for _, x in reg)
        if 100 * w / total < args.min:
            continue
        stalls, ops = {}, {}
        for _, x in reg:
            for k, v in x[2].items():
                stalls[k] = stalls.get(k, 0) + v
            op = [o for o in x[0].split() if not o.startswith("@")]
            op = op[0].split(".")[0] if op else ""
            ops[op] = ops.get(op, 0) + 1
        top = sorted(stalls.items(), key=lambda t: -t[1])[:4]
        print(f"instr {reg[0][0]}-{reg[-1][0]}: {100 * w / total:.1f} % of samples, "
              f"ends with {reg[-1][1][0].strip()[:40]}")
        print("  stalls: " + ", ".join(f"{k[6:]} {100 * v / total:.1f} %" for k, v in top))
        print("  opcodes: " + ", ".join(f"{k} {v}" for k, v in
                                        sorted(ops.items(), key=lambda t: -t[1])[:7]))


if __name__ == "__main__":
    main()
