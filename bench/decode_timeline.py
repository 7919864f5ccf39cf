#!/usr/bin/env python3
"""Where one weighted-decode call's time goes, CTA by CTA:

  python3 bench/decode_timeline.py --lib build/ab/timeline/libbalancekv_cuda.so

Needs a build whose kernels record %globaltimer per CTA and export
balancekv_debug_timeline:

  python3 bench/decode_timeline_variant.py kernels/cuda/WeightedDecode.cu /tmp/WDtl.cu
  scripts/ab-build.sh timeline kernels/cuda/WeightedDecode.cu=/tmp/WDtl.cu

For each shape: the graph-timed per-call time, then from one cold call:
when the split CTAs start, wait for their first tile and end, how the two
CTAs of an SM compare, and when the combine CTAs are released and end (µs
from the first split CTA's start).
"""
import argparse
import ctypes
import math

import torch

from balancekv_bench import Lib, bench_graph_cycle, copies_beyond_l2


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--shape", action="append",
                    help="B,N,ratio (default: the four missed shapes)")
    args = ap.parse_args()
    lib = Lib(args.lib)
    dbg = lib.lib.balancekv_debug_timeline
    dbg.argtypes = [ctypes.c_void_p, ctypes.c_int]
    shapes = [tuple(int(x) for x in s.split(",")) for s in args.shape] if \
        args.shape else [(8, 32768, 4), (8, 131072, 16), (32, 8192, 4),
                         (32, 32768, 16)]  # the ~270 MB caches
    hq, hkv, d = 32, 8, 128
    buf = (ctypes.c_uint64 * (16384 * 4))()
    for b, n, ratio in shapes:
        m = lib.m(n, lib.params(rounds=int(math.log2(ratio))))
        ck = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
        cv = torch.randn_like(ck)
        lw = torch.randn(b, hkv, m, device="cuda") * 0.5
        q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
        sets = copies_beyond_l2((ck, cv, lw))
        outs = [lib.decode_prepare(q, a[0], a[1]) for a in sets]
        mb = (ck.numel() + cv.numel()) * 2 / 1e6
        t = bench_graph_cycle([lambda a=a, o=o: lib.decode(q, a[0], a[1], a[2], o)
                               for a, o in zip(sets, outs)]) * 1e3
        dbg(None, 1)
        torch.cuda.synchronize()
        torch.cuda._sleep(1_000_000)
        for i in range(3):
            a = sets[(i + 1) % len(sets)]
            lib.decode(q, a[0], a[1], a[2], outs[(i + 1) % len(sets)])
        torch.cuda.synchronize()
        dbg(ctypes.cast(buf, ctypes.c_void_p), 0)
        rec = [tuple(buf[4 * i:4 * i + 4]) for i in range(16384)]
        split = [r for r in rec[:8192] if r[1]]
        comb = [r for r in rec[8192:] if r[1]]
        t0 = min(r[1] for r in split)
        us = lambda x: (x - t0) / 1e3  # noqa: E731
        starts = [us(r[1]) for r in split]
        firsts = [us(r[2]) - us(r[1]) for r in split]
        ends = [us(r[3]) for r in split]
        durs = [us(r[3]) - us(r[1]) for r in split]
        per_sm = {}
        for r in split:
            per_sm.setdefault(r[0] & 0xffff, []).append(r)
        tiles = [(r[0] >> 16) & 0xffffff for r in split]
        visits = [r[0] >> 40 for r in split]
        if any(tiles):
            print(f"  tiles per CTA : min {min(tiles)}  p50 {pct(tiles, .5)}"
                  f"  max {max(tiles)}" + (
                      f"; records per CTA: max {max(visits)}, {sum(visits)}"
                      " in all" if any(visits) else ""))
        sm_busy = [max(us(r[3]) for r in rs) for rs in per_sm.values()]
        print(f"B {b} x N {n} / {ratio}: {mb:.0f} MB, {t:.1f} us per call "
              f"(graph), {len(split)} split CTAs on {len(per_sm)} SMs, "
              f"{len(comb)} combine CTAs")
        print(f"  split start   : p50 {pct(starts, .5):6.1f}  p90 "
              f"{pct(starts, .9):6.1f}  max {max(starts):6.1f}")
        print(f"  first tile    : min {min(firsts):6.1f}  p50 "
              f"{pct(firsts, .5):6.1f}  max {max(firsts):6.1f} (after start)")
        print(f"  CTA duration  : min {min(durs):6.1f}  p50 {pct(durs, .5):6.1f}"
              f"  max {max(durs):6.1f}")
        print(f"  split end     : min {min(ends):6.1f}  p10 {pct(ends, .1):6.1f}"
              f"  p50 {pct(ends, .5):6.1f}  p90 {pct(ends, .9):6.1f}  max "
              f"{max(ends):6.1f}")
        print(f"  SM last end   : min {min(sm_busy):6.1f}  p50 "
              f"{pct(sm_busy, .5):6.1f}  max {max(sm_busy):6.1f}")
        # Is a slow CTA slow because of its SM (both CTAs of the SM slow) or
        # because of its keys (its split index / head)?
        pairs = [sorted(us(r[3]) - us(r[1]) for r in rs)
                 for rs in per_sm.values() if len(rs) == 2]
        if pairs:
            a = [x[0] for x in pairs]
            c = [x[1] for x in pairs]
            ma, mc = sum(a) / len(a), sum(c) / len(c)
            cov = sum((x - ma) * (y - mc) for x, y in zip(a, c))
            va = sum((x - ma) ** 2 for x in a) ** .5
            vc = sum((y - mc) ** 2 for y in c) ** .5
            print(f"  two CTAs of an SM: corr of durations {cov / (va * vc + 1e-9):.2f}"
                  f", mean |diff| {sum(y - x for x, y in zip(a, c)) / len(a):.1f}")
        lone = [us(r[3]) - us(r[1]) for rs in per_sm.values() if len(rs) == 1
                for r in rs]
        if lone:
            print(f"  lone CTAs: {len(lone)}, duration p50 {pct(lone, .5):.1f}")
        # Which SMs run out of work first, as runs of SM ids (on the H200
        # they come in blocks of consecutive ids: groups of SMs that get
        # more bandwidth each), and what a perfect balance could save at
        # most: every SM ending at the mean SM end instead of the last.
        sm_end = {sm: max(us(r[3]) for r in rs) for sm, rs in per_sm.items()}
        quarter = pct(list(sm_end.values()), .25)
        early = sorted(sm for sm, e in sm_end.items() if e <= quarter)
        runs, run = [], [early[0]]
        for sm in early[1:]:
            if sm == run[-1] + 1:
                run.append(sm)
            else:
                runs.append(run)
                run = [sm]
        runs.append(run)
        mean_end = sum(sm_end.values()) / len(sm_end)
        print("  first quarter of SMs done:", " ".join(
            f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs),
              f"(ends {min(sm_end.values()):.1f}..{quarter:.1f})"
              f"; SM idle share {100 * sum(max(ends) - e for e in sm_end.values()) / (len(sm_end) * max(ends)):.1f} %"
              f"; a perfect balance saves <= {max(ends) - mean_end:.1f} us")
        slow = sorted(per_sm.items(), key=lambda kv: -max(us(r[3]) for r in kv[1]))
        print("  slowest SMs:", " ".join(
            f"{sm}:{max(us(r[3]) for r in rs):.0f}" for sm, rs in slow[:8]),
              "| fastest:", " ".join(
            f"{sm}:{max(us(r[3]) for r in rs):.0f}" for sm, rs in slow[-6:]))
        if comb:
            cl = [us(r[1]) for r in comb]
            cw = [us(r[2]) for r in comb]
            ce = [us(r[3]) for r in comb]
            print(f"  combine       : launched {min(cl):6.1f}..{max(cl):6.1f}"
                  f"  released {min(cw):6.1f}..{max(cw):6.1f}  end "
                  f"{min(ce):6.1f}..{max(ce):6.1f}")
        span = (max(ce) if comb else max(ends))
        print(f"  span {span:.1f} us; bytes / span = "
              f"{mb / span:.2f} TB/s; bytes / (split end - first tile) = "
              f"{mb / (max(ends) - min(starts) - min(firsts)):.2f} TB/s",
              flush=True)
        del ck, cv, lw, sets, outs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
