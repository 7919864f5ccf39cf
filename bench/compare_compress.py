#!/usr/bin/env python3
"""Compression of several builds of libbalancekv_cuda.so side by side.

  python3 bench/compare_compress.py --lib a/libbalancekv_cuda.so \
      --lib b/libbalancekv_cuda.so [--quick] [--repeats 3]

First each build's correctness table (bench_kernels.py's compress cases
against the CPU reference, and whether its kept indices equal the first
build's on the timed shapes), then per shape the builds timed in turn,
`--repeats` times over (per-call CUDA events, median per repeat), next to
causal SDPA prefill over the same tokens. A build name is its folder's name
(scripts/ab-build.sh NAME). Builds that break the result on purpose (an
ablation) show FAIL and are still timed.
"""
import argparse
import os
import statistics

import torch
import torch.nn.functional as F

from balancekv_bench import Lib, bench, compress_cache, table
from bench_kernels import check_compress


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", action="append", required=True)
    ap.add_argument("--quick", action="store_true",
                    help="only the target shape, 32k tokens x 32 heads")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    libs = [Lib(p) for p in args.lib]
    names = [os.path.basename(os.path.dirname(os.path.abspath(p))) or p
             for p in args.lib]
    print(f"device: {torch.cuda.get_device_name()}", flush=True)
    for name, lib in zip(names, libs):
        rows = []
        ok = check_compress(lib, rows)
        print(f"\n{name}: {'ALL CORRECT' if ok else 'FAILURES'}")
        print(table(rows), flush=True)
    shapes = [(32768, 32)] if args.quick else [
        (8192, 32), (32768, 8), (32768, 32), (131072, 8)]
    out = []
    for n, h in shapes:
        k, v = compress_cache(h, n)
        p = libs[0].params(rounds=2)
        outs = [lib.compress_prepare(k, v, p) for lib in libs]
        for lib, o in zip(libs, outs):
            lib.compress(k, v, p, o)
        torch.cuda.synchronize()
        same = [torch.equal(o["idx"], outs[0]["idx"]) for o in outs]
        q = torch.randn_like(k)
        reps = 10 if n >= 131072 else 30
        t_p = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    reps=reps)
        times = [[] for _ in libs]
        for _ in range(args.repeats):
            for i, (lib, o) in enumerate(zip(libs, outs)):
                times[i].append(bench(
                    lambda: lib.compress(k, v, p, o, indices=False), reps=reps))
        row = dict(N=n, H=h, prefill_ms=round(t_p, 3))
        for name, t, s in zip(names, times, same):
            med = statistics.median(t)
            row[f"{name}_ms"] = round(med, 3)
            row[f"{name}_pct"] = round(100 * med / t_p, 2)
            row[f"{name}_spread"] = round(max(t) - min(t), 3)
            if not s:
                row[f"{name}_idx"] = "differs"
        out.append(row)
        print(row, flush=True)
        del k, v, q, outs
        torch.cuda.empty_cache()
    print("\n" + table(out))


if __name__ == "__main__":
    main()
