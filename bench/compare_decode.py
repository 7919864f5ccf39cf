#!/usr/bin/env python3
"""Weighted decode of two builds of libbalancekv_cuda.so side by side.

  python3 bench/compare_decode.py --lib old.so --lib new.so [--quick]

For every shape of bench_kernels.py's decode table: each build's output
against float64 attention, and its graph-timed per-call time next to SDPA
on the full cache and on the compressed cache with a float mask. For
A/B-testing a kernel change in one device run.
"""
import argparse
import math
import os
import sys

import torch

from balancekv_bench import Lib, attention64, copies_beyond_l2, rel, table
from bench_kernels import time_sdpa_full, time_sdpa_masked, time_weighted_decode, with_float_masks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", action="append", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--warm-l2", action="store_true",
                    help="replay one copy of each cache (it may stay in L2) "
                    "instead of cycling through copies beyond L2")
    args = ap.parse_args()
    libs = [Lib(p) for p in args.lib]
    names = [os.path.basename(os.path.dirname(os.path.abspath(p))) or p
             for p in args.lib]
    print(f"device: {torch.cuda.get_device_name()}", flush=True)
    hq, hkv, d = 32, 8, 128
    rows, ok = [], True
    for n in ([8192, 32768] if args.quick else [8192, 32768, 131072]):
        for b in (1, 8, 32):
            k = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
            t_full = time_sdpa_full(q, copies_beyond_l2((k, v), args.warm_l2))
            for ratio in (4, 16):
                m = libs[0].m(n, libs[0].params(rounds=int(math.log2(ratio))))
                ck, cv = k[:, :, :m].contiguous(), v[:, :, :m].contiguous()
                lw = torch.randn(b, hkv, m, device="cuda") * 0.5
                sets = with_float_masks(
                    copies_beyond_l2((ck, cv, lw), args.warm_l2), hq // hkv)
                t_mask = time_sdpa_masked(q, sets)
                ref = attention64(q, ck, cv, lw) if b * m <= 8 * 33000 else None
                row = dict(N=n, B=b, ratio=ratio,
                           MB=round((ck.numel() + cv.numel()) * 2 / 1e6, 1),
                           copies=len(sets),
                           sdpa_full_us=round(t_full * 1e3, 1),
                           sdpa_mask_us=round(t_mask * 1e3, 1))
                for name, lib in zip(names, libs):
                    o = lib.decode_prepare(q, ck, cv)
                    lib.decode(q, ck, cv, lw, o)
                    if ref is not None:
                        err = rel(o["out"], ref)
                        ok &= err < 1e-2
                        row[f"{name}_err"] = f"{err:.1e}"
                    t = time_weighted_decode(lib, q, sets)
                    row[f"{name}_us"] = round(t * 1e3, 1)
                    row[f"{name}_vs_full"] = round(t_full / t, 2)
                    row[f"{name}_vs_mask"] = round(t_mask / t, 2)
                rows.append(row)
                print(row, flush=True)
                del ck, cv, lw, sets
            del k, v, q
            torch.cuda.empty_cache()
    print(table(rows))
    print("ALL CORRECT" if ok else "CORRECTNESS FAILURES")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
