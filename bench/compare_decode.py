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
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kernels import (Lib, attention64, bench_graph_cycle,  # noqa: E402
                           copies_beyond_l2, rel, table)


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
            nf = 1 if args.warm_l2 else copies_beyond_l2(2 * k.numel() * 2)
            kvs = [(k, v)] + [(k.clone(), v.clone()) for _ in range(nf - 1)]
            t_full = bench_graph_cycle([
                lambda kk=kk, vv=vv: F.scaled_dot_product_attention(
                    q, kk, vv, enable_gqa=True) for kk, vv in kvs])
            del kvs
            for ratio in (4, 16):
                m = libs[0].m(n, libs[0].params(rounds=int(math.log2(ratio))))
                ck, cv = k[:, :, :m].contiguous(), v[:, :, :m].contiguous()
                lw = torch.randn(b, hkv, m, device="cuda") * 0.5
                mask = lw.repeat_interleave(hq // hkv, 1)[:, :, None, :].to(
                    torch.bfloat16)
                nc = 1 if args.warm_l2 else copies_beyond_l2(
                    2 * ck.numel() * 2 + lw.numel() * 4)
                sets = [(ck, cv, lw, mask)] + [
                    (ck.clone(), cv.clone(), lw.clone(), mask.clone())
                    for _ in range(nc - 1)]
                t_mask = bench_graph_cycle([
                    lambda a=a: F.scaled_dot_product_attention(
                        q, a[0], a[1], attn_mask=a[3], enable_gqa=True)
                    for a in sets])
                ref = attention64(q, ck, cv, lw) if b * m <= 8 * 33000 else None
                row = dict(N=n, B=b, ratio=ratio,
                           MB=round((ck.numel() + cv.numel()) * 2 / 1e6, 1),
                           copies=nc,
                           sdpa_full_us=round(t_full * 1e3, 1),
                           sdpa_mask_us=round(t_mask * 1e3, 1))
                for name, lib in zip(names, libs):
                    o = lib.decode_prepare(q, ck, cv)
                    outs = [o] + [lib.decode_prepare(q, ck, cv)
                                  for _ in range(nc - 1)]
                    lib.decode(q, ck, cv, lw, o)
                    if ref is not None:
                        err = rel(o["out"], ref)
                        ok &= err < 1e-2
                        row[f"{name}_err"] = f"{err:.1e}"
                    t = bench_graph_cycle([
                        lambda a=a, oo=oo: lib.decode(q, a[0], a[1], a[2], oo)
                        for a, oo in zip(sets, outs)])
                    row[f"{name}_us"] = round(t * 1e3, 1)
                    row[f"{name}_vs_full"] = round(t_full / t, 2)
                    row[f"{name}_vs_mask"] = round(t_mask / t, 2)
                rows.append(row)
                print(row, flush=True)
                del ck, cv, lw, mask, sets
            del k, v, q
            torch.cuda.empty_cache()
    print(table(rows))
    print("ALL CORRECT" if ok else "CORRECTNESS FAILURES")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
