#!/usr/bin/env python3
"""Weighted decode at head dims 64 and 128 vs SDPA with the log-weights as a
float mask (B 8, Hq 32, Hkv 8, 32k tokens compressed by our kernel, bf16):
correctness against float64 and CUDA-graph medians over cache copies beyond
L2, with the split count and CTAs per SM the launcher chose.

  python3 bench/decode_head_dim.py --lib build/lib/libbalancekv_cuda.so
"""
import argparse

import torch
import torch.nn.functional as F

from balancekv_bench import Lib, attention64, bench_graph_cycle, copies_beyond_l2, rel, table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    args = parser.parse_args()
    lib = Lib(args.lib)
    torch.manual_seed(0)
    rows = []
    b, hq, hkv, n = 8, 32, 8, 32768
    for d in (64, 128):
        for rounds in (2, 4):
            p = lib.params(rounds=rounds)
            k = torch.randn(b, hkv, n, d, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            o = lib.compress_prepare(k, v, p)
            lib.compress(k, v, p, o)
            ck, cv, lw = o["ck"], o["cv"], o["lw"]
            del k, v
            q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
            out = lib.decode_prepare(q, ck, cv)
            lib.decode(q, ck, cv, lw, out)
            err = rel(out["out"], attention64(q, ck, cv, lw))
            sets = copies_beyond_l2([ck, cv, lw])
            outs = [lib.decode_prepare(q, s[0], s[1]) for s in sets]
            t_ours = bench_graph_cycle([lambda s=s, oo=oo: lib.decode(q, s[0], s[1], s[2], oo)
                                        for s, oo in zip(sets, outs)])
            masks = [s[2].repeat_interleave(hq // hkv, 1)[:, :, None, :].to(q.dtype) for s in sets]
            t_sdpa = bench_graph_cycle([lambda s=s, mk=mk: F.scaled_dot_product_attention(
                q, s[0], s[1], attn_mask=mk, enable_gqa=True) for s, mk in zip(sets, masks)])
            rows.append(dict(d=d, ratio=round(n / ck.shape[2], 2), kept=ck.shape[2],
                             rel_err=f"{err:.1e}", ours_us=round(t_ours * 1e3, 1),
                             sdpa_mask_us=round(t_sdpa * 1e3, 1),
                             ours_vs_sdpa=round(t_sdpa / t_ours, 2)))
            print(rows[-1], flush=True)
            del sets, outs, masks, ck, cv, lw
            torch.cuda.empty_cache()
    print(table(rows))


if __name__ == "__main__":
    main()
