#!/usr/bin/env python3
"""balancekv CUDA kernels on the GPU: correctness and speed, in one run.

  python3 bench/bench_kernels.py --lib build/lib/libbalancekv_cuda.so [--quick]

Correctness: compression kept indices and log-weights against the CPU
reference (the same .so exports it), decode outputs against float64
attention. Speed: weighted decode vs PyTorch SDPA on the full cache and vs
SDPA on the compressed cache with the log-weights as a float mask, and vs
FlexAttention (torch.compile(flex_attention)) with a score_mod adding the
log-weights over the same compressed cache, and the time a plain
streaming read of the same bytes takes (`floor_us`, bench/stream_floor.cu)
next to the time 95 % of full-cache SDPA's bytes/s would need
(`us_at_95pct_full`); compression vs causal SDPA prefill over the same
tokens. Prints tables and
writes them (Markdown + JSON) to --out.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

from balancekv_bench import (Lib, attention64, bench, bench_graph_cycle,
                             compress_cache, copies_beyond_l2, hbm_peak,
                             medians_in_turn, rel, table)
from stream_floor import build as build_floor, floor_time

# ------------------------------------------------------------- helpers ----


def with_float_masks(sets, group):
    """Appends to each (key, value, log-weights) copy the float mask that
    SDPA takes for the log-weights: repeated per query head of a group."""
    return [a + (a[2].repeat_interleave(group, 1)[:, :, None, :]
                 .to(torch.bfloat16),) for a in sets]


def time_sdpa_full(q, kvs):
    """Full-cache SDPA cycled over the (key, value) copies `kvs`."""
    return bench_graph_cycle([
        lambda kk=kk, vv=vv: F.scaled_dot_product_attention(
            q, kk, vv, enable_gqa=True) for kk, vv in kvs])


def time_sdpa_masked(q, sets):
    """SDPA over compressed caches with the log-weights as a float mask,
    cycled over the (key, value, log-weights, mask) copies `sets`."""
    return bench_graph_cycle([
        lambda a=a: F.scaled_dot_product_attention(
            q, a[0], a[1], attn_mask=a[3], enable_gqa=True) for a in sets])


_flex = None


def time_flex(q, sets, group):
    """torch.compile(flex_attention) over the compressed caches, the
    log-weights added by a score_mod (a user's alternative to our kernel);
    a block mask of the whole cache (decode attends to every key) built once
    outside the timed region (create_block_mask is host-side work a decode
    step would not redo). Compiled and run once per copy before the timed
    graph."""
    global _flex
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    if _flex is None:
        # One specialisation per shape of the grid (17): past dynamo's
        # default limit of 8 recompiles it falls back to eager flex_attention
        # (unfused, host copies: 5-43 ms a call, and no graph capture).
        torch._dynamo.config.recompile_limit = 64
        _flex = torch.compile(flex_attention, dynamic=False)
    block_mask = create_block_mask(lambda b, h, q_idx, kv_idx: kv_idx >= 0,
                                   B=None, H=None, Q_LEN=q.shape[2],
                                   KV_LEN=sets[0][0].shape[2], device="cuda")

    def call(a):
        lw = a[2]

        def add_log_weight(score, b, h, q_idx, kv_idx):
            return score + lw[b, h // group, kv_idx]
        return _flex(q, a[0], a[1], score_mod=add_log_weight,
                     block_mask=block_mask, enable_gqa=True)
    for a in sets:
        call(a)
    return bench_graph_cycle([lambda a=a: call(a) for a in sets])


def time_weighted_decode(lib, q, sets):
    """Our weighted decode cycled over the same `sets`."""
    outs = [lib.decode_prepare(q, a[0], a[1]) for a in sets]
    return bench_graph_cycle([
        lambda a=a, o=o: lib.decode(q, a[0], a[1], a[2], o)
        for a, o in zip(sets, outs)])


# ----------------------------------------------------------- correctness ----


def check_compress(lib, rows):
    cases = [  # (dtype, B, H, N, D, Dv, rounds, method, block)
        (torch.bfloat16, 2, 8, 4096, 128, 128, 2, 0, 128),
        (torch.float16, 1, 4, 3001, 64, 64, 3, 0, 128),
        (torch.bfloat16, 1, 2, 1000, 128, 64, 2, 0, 64),
        (torch.float32, 1, 2, 700, 32, 32, 2, 0, 128),
        (torch.bfloat16, 2, 8, 4096, 128, 128, 2, 1, 128),
        (torch.bfloat16, 1, 2, 40, 128, 128, 2, 0, 128),
        # Dv % 16 != 0: the one-block-per-CTA kernel, keys on tensor cores.
        (torch.bfloat16, 2, 4, 2000, 128, 40, 2, 0, 128),
        # 256-wide rows: the persistent kernel with one G buffer.
        (torch.bfloat16, 1, 4, 2500, 256, 256, 2, 0, 128),
        # 96-wide rows: run-time row width in the copies, one k-step at a
        # time on the warpgroup MMA.
        (torch.float16, 1, 3, 1500, 96, 96, 2, 0, 128),
        # Blocks of 2: more blocks than the fused select's shared memory
        # holds in round 1 (the two-kernel selection), fused in round 2.
        (torch.float16, 1, 2, 9000, 64, 64, 2, 0, 2),
        # Rows one element apart from 16-byte alignment (views of wider
        # rows): the persistent kernel's plain-load path.
        (torch.bfloat16, 2, 2, 1500, 128, 128, 2, 0, 128, 1),
    ]
    ok = True
    for dt, b, h, n, d, dv, t, method, block, *pad in cases:
        torch.manual_seed(n + d + t)
        pad = pad[0] if pad else 0  # leading elements of each stored row
        k = torch.randn(b, h, n, pad + d, device="cuda").to(dt)[..., pad:]
        v = torch.randn(b, h, n, pad + dv, device="cuda").to(dt)[..., pad:]
        p = lib.params(rounds=t, method=method, seed=1234, block=block)
        o = lib.compress_prepare(k, v, p)
        for key in ("ck", "cv", "lw"):
            o[key].fill_(float("nan"))
        lib.compress(k, v, p, o)
        torch.cuda.synchronize()
        ridx, rlw = lib.reference(k, v, p)
        gidx, glw = o["idx"].cpu(), o["lw"].cpu()
        heads_same = (gidx == ridx).all(dim=-1).sum().item()
        tokens_diff = (gidx != ridx).sum().item()
        lw_ok = torch.allclose(glw[gidx == ridx], rlw[gidx == ridx], atol=1e-6)
        gath = torch.gather(k, 2, o["idx"].long()[..., None].expand(-1, -1, -1, d))
        gather_ok = torch.equal(gath, o["ck"]) and not o["cv"].isnan().any().item()
        good = heads_same == b * h and lw_ok and gather_ok
        ok &= good
        rows.append(dict(kind="compress", dtype=str(dt).split(".")[1], B=b, H=h,
                         N=n, D=d, Dv=dv, T=t,
                         method=["balance", "uniform"][method],
                         heads_identical=f"{heads_same}/{b * h}",
                         tokens_differing=tokens_diff,
                         lw_ok=lw_ok, gather_ok=gather_ok,
                         result="PASS" if good else "FAIL"))
    return ok


def check_decode(lib, rows):
    cases = [  # (dtype, B, Hq, Hkv, L, M, D, causal, kv_len)
        (torch.bfloat16, 2, 32, 8, 1, 4000, 128, False, False),
        (torch.float16, 3, 8, 8, 4, 1500, 64, True, False),
        (torch.bfloat16, 2, 16, 2, 2, 3000, 128, True, True),
        (torch.float32, 1, 4, 1, 16, 777, 128, False, True),
        (torch.bfloat16, 1, 8, 1, 1, 33, 256, False, False),
        # Many splits, all but one empty, and a sequence with no keys.
        (torch.bfloat16, 2, 32, 8, 1, 5000, 128, False, [0, 70]),
        # Two row chunks per (sequence, KV head); 16 rows over 250 one-tile
        # splits.
        (torch.bfloat16, 16, 32, 2, 2, 2000, 128, True, True),
        (torch.bfloat16, 1, 16, 1, 1, 16000, 128, False, False),
        # Long splits (> 1024 keys): log-weights by plain loads, both paths.
        (torch.bfloat16, 32, 32, 8, 1, 3000, 128, False, True),
        (torch.float32, 64, 8, 8, 1, 4000, 64, False, False),
    ]
    ok = True
    for dt, b, hq, hkv, l, m, d, causal, use_len in cases:
        torch.manual_seed(m + l)
        q = torch.randn(b, hq, l, d, device="cuda").to(dt)
        k = torch.randn(b, hkv, m, d, device="cuda").to(dt)
        v = torch.randn(b, hkv, m, d, device="cuda").to(dt)
        lw = (torch.randint(0, 3, (b, hkv, m), device="cuda").float() * math.log(2.0))
        if isinstance(use_len, list):
            kv_len = torch.tensor(use_len, device="cuda", dtype=torch.int32)
        else:
            kv_len = (torch.randint(m // 2, m + 1, (b,), device="cuda").int()
                      if use_len else None)
        o = lib.decode_prepare(q, k, v)
        o["out"].fill_(float("nan"))
        lib.decode(q, k, v, lw, o, kv_len=kv_len, causal=causal)
        torch.cuda.synchronize()
        ref = attention64(q, k, v, lw, causal, kv_len)
        err = rel(o["out"], ref)
        tol = 1e-5 if dt == torch.float32 else 1e-2
        good = err < tol and not o["out"].isnan().any().item()
        ok &= good
        rows.append(dict(kind="decode", dtype=str(dt).split(".")[1], B=b, Hq=hq,
                         Hkv=hkv, L=l, M=m, D=d, causal=causal,
                         kv_len=str(use_len),
                         rel_err=f"{err:.2e}", result="PASS" if good else "FAIL"))
    return ok


# --------------------------------------------------------------- timing ----


def time_decode(lib, rows, peak, quick):
    # The plain streaming read of each cache's bytes (bench/stream_floor.cu):
    # what any kernel that reads them once can reach, next to the target.
    floor_lib = build_floor()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    sink = torch.zeros(1, dtype=torch.int32, device="cuda")
    batches = [1, 8] if quick else [1, 8, 32]
    lengths = [8192, 32768] if quick else [8192, 32768, 131072]
    hq, hkv, d = 32, 8, 128
    for n in lengths:
        for b in batches:
            if b * hkv * n * d * 2 * 2 > 40e9:
                continue
            k = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16)
            q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
            # Every timing cycles through enough copies of its inputs that
            # nothing stays in L2 between calls (like the layers of a model).
            t_full = time_sdpa_full(q, copies_beyond_l2((k, v)))
            for ratio in (4, 16):
                m = lib.m(n, lib.params(rounds=int(math.log2(ratio))))
                ck, cv = k[:, :, :m].contiguous(), v[:, :, :m].contiguous()
                lw = torch.zeros(b, hkv, m, device="cuda")
                sets = with_float_masks(copies_beyond_l2((ck, cv, lw)), hq // hkv)
                t = medians_in_turn({
                    "ours": lambda: time_weighted_decode(lib, q, sets),
                    "mask": lambda: time_sdpa_masked(q, sets)})
                t_ours, t_mask = t["ours"], t["mask"]
                launch = lib.last_launch()
                try:
                    t_flex = time_flex(q, sets, hq // hkv)
                except Exception as e:  # Flex is a peer, not a requirement
                    print(f"flex_attention failed: {str(e).splitlines()[0][:200]}",
                          flush=True)
                    t_flex = None
                nbytes = ck.numel() * 2 + cv.numel() * 2 + lw.numel() * 4
                gbs = nbytes / (t_ours * 1e-3) / 1e9
                # Full-cache SDPA's bytes/s (its cache is ratio x larger).
                full_gbs = (k.numel() + v.numel()) * 2 / (t_full * 1e-3) / 1e9
                t_floor = floor_time(floor_lib, nbytes, sms, sink)[0]
                # The time at 95 % of full-cache SDPA's bytes/s (issue 21).
                t_target = nbytes / (0.95 * full_gbs * 1e9) * 1e3
                rows.append(dict(N=n, B=b, ratio=ratio, M=m,
                                 cache_MB=round(nbytes / 1e6, 1), copies=len(sets),
                                 ours_us=round(t_ours * 1e3, 1),
                                 GBps=round(gbs), pct_peak=round(100 * gbs / peak, 1),
                                 pct_full_GBps=round(100 * gbs / full_gbs, 1),
                                 floor_us=round(t_floor * 1e3, 1),
                                 pct_of_floor=round(100 * t_floor / t_ours, 1),
                                 us_at_95pct_full=round(t_target * 1e3, 1),
                                 sdpa_full_us=round(t_full * 1e3, 1),
                                 speedup_vs_full=round(t_full / t_ours, 2),
                                 sdpa_masked_us=round(t_mask * 1e3, 1),
                                 speedup_vs_masked=round(t_mask / t_ours, 2),
                                 flex_us=round(t_flex * 1e3, 1) if t_flex else "",
                                 speedup_vs_flex=round(t_flex / t_ours, 2) if t_flex else "",
                                 **launch))
                print(rows[-1], flush=True)
                del ck, cv, lw, sets
            del k, v, q
            torch.cuda.empty_cache()


def time_compress(lib, rows, quick):
    lengths = [8192, 32768] if quick else [8192, 32768, 131072]
    for n in lengths:
        for h in (8, 32):
            k, v = compress_cache(h, n)
            p = lib.params(rounds=2)
            o = lib.compress_prepare(k, v, p)
            long = n >= 131072
            reps = 10 if long else 30
            # Device time, like the decode: calls replayed in a CUDA graph
            # (host and launch gaps out), SDPA the same way. `eager_ms` is
            # one call at a time with the host in the loop (an eager
            # framework's view; the first kernel waits for the host).
            compress = lambda: lib.compress(k, v, p, o, indices=False)  # noqa: E731
            t_c = bench_graph_cycle([compress], calls=3 if long else 5,
                                    reps=5 if long else 20)
            t_e = bench(compress, reps=reps)
            q = torch.randn_like(k)
            t_p = bench_graph_cycle(
                [lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)],
                calls=3 if long else 5, reps=5 if long else 20)
            rows.append(dict(N=n, H=h, compress_ms=round(t_c, 3),
                             eager_ms=round(t_e, 3),
                             prefill_ms=round(t_p, 3),
                             pct_of_prefill=round(100 * t_c / t_p, 2)))
            print(rows[-1], flush=True)
            del k, v, q, o
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--only", choices=["decode", "compress"],
                    help="time one kernel only")
    args = ap.parse_args()
    lib = Lib(args.lib)
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}, torch {torch.__version__}", flush=True)
    correct = []
    ok = check_compress(lib, correct) & check_decode(lib, correct)
    print(table(correct), flush=True)
    report = dict(device=dev, date=time.strftime("%Y-%m-%d"), correctness=correct)
    if not args.check_only:
        peak = hbm_peak()
        print(f"HBM copy peak (read+write): {peak:.0f} GB/s", flush=True)
        report["hbm_peak_GBps"] = round(peak)
        dec, comp = [], []
        if args.only != "compress":
            time_decode(lib, dec, peak, args.quick)
        if args.only != "decode":
            time_compress(lib, comp, args.quick)
        report["decode"], report["compress"] = dec, comp
        md = (f"# balancekv kernels, {report['date']}, {dev}\n\n"
              f"HBM copy peak (read+write): {peak:.0f} GB/s\n\n## correctness\n\n"
              f"{table(correct)}\n\n## weighted decode (bf16, Hq=32, Hkv=8, d=128, L=1)\n\n"
              f"{table(dec)}\n\n## compress (bf16, B=1, d=128, T=2; compress_ms and prefill_ms graph-timed, eager_ms one call at a time)\n\n{table(comp)}\n")
        print(md, flush=True)
        with open(os.path.join(args.out, "bench.md"), "w") as f:
            f.write(md)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(report, f, indent=1)
    print("ALL CORRECT" if ok else "CORRECTNESS FAILURES", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
