#!/usr/bin/env python3
"""Weighted decode over ragged heads (method adaptive's layout, spec section
6): every (batch, KV head) keeps its own number of tokens in M padded slots,
given as head lengths [B, Hkv].

Checks balancekv_weighted_decode_attention_ragged against float64 (causal
and not, 1 and 4 queries, heads with no token) and times it, CUDA-graph
medians over cache copies beyond L2, against what a user would run without
it: the dense decode over all M padded slots with -inf log-weights, and the
dense decode over a uniform layout of the same total memory (every head
keeping the mean length).

  python3 bench/ragged_decode.py --lib build/lib/libbalancekv_cuda.so
"""
import argparse

import torch

from balancekv_bench import Lib, attention64, bench_graph_cycle, copies_beyond_l2, rel, table


def ragged_cache(b, hkv, m, d, mean, spread=1.0):
    """Keys, values and log-weights of M slots per head and head lengths
    uniform in mean * [1 - spread, 1 + spread] (spread 1: one head at 0 and
    one at M too); slots past a head's length are zeros with log-weight
    -inf, as compress writes them."""
    k = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    lw = torch.rand(b, hkv, m, device="cuda") * 2.0
    u = torch.rand(b, hkv, device="cuda") * 2 - 1
    lens = (mean * (1 + spread * u)).clamp(0, m).int()
    if spread == 1.0:
        lens[0, 0], lens[-1, -1] = 0, m
    pad = torch.arange(m, device="cuda")[None, None, :] >= lens[:, :, None]
    k[pad] = 0
    v[pad] = 0
    lw[pad] = float("-inf")
    return k, v, lw, lens


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    args = parser.parse_args()
    lib = Lib(args.lib)
    torch.manual_seed(0)

    # Correctness: small shapes, every flag.
    worst = 0.0
    for d, l, causal in ((128, 1, False), (128, 4, True), (64, 1, False), (64, 4, True)):
        k, v, lw, lens = ragged_cache(2, 4, 700, d, 300)
        q = torch.randn(2, 16, l, d, device="cuda", dtype=torch.bfloat16)
        out = lib.decode_prepare(q, k, v)
        lib.decode(q, k, v, lw, out, kv_len=lens, causal=causal)
        ref = attention64(q, k, v, lw, causal=causal, kv_len=lens)
        err = rel(out["out"], ref)
        empty = out["out"][0, :4].abs().max().item()  # KV head 0 of batch 0 keeps nothing
        print(f"d {d} L {l} causal {causal}: rel err {err:.2e}, empty head max {empty}")
        assert err < 1e-2 and empty == 0.0, "ragged decode disagrees with float64"
        worst = max(worst, err)

    # Speed: B 8, Hq 32, Hkv 8, d 128; capacity M = 2 x mean (the adaptive
    # layout's), mean lengths of a 32k cache at x4 and x16.
    rows = []
    b, hq, hkv, d = 8, 32, 8, 128
    for mean, spread in ((8192, 1.0), (8192, 0.5), (2048, 1.0), (2048, 0.5)):
        m = 2 * mean
        k, v, lw, lens = ragged_cache(b, hkv, m, d, mean, spread)
        q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
        uk, uv = k[:, :, :mean].contiguous(), v[:, :, :mean].contiguous()
        ulw = torch.zeros(b, hkv, mean, device="cuda")
        sets = copies_beyond_l2([k, v, lw])
        usets = copies_beyond_l2([uk, uv, ulw])
        outs = [lib.decode_prepare(q, s[0], s[1]) for s in sets]
        uouts = [lib.decode_prepare(q, s[0], s[1]) for s in usets]
        t_ragged = bench_graph_cycle([lambda s=s, o=o: lib.decode(q, s[0], s[1], s[2], o, kv_len=lens)
                                      for s, o in zip(sets, outs)])
        t_padded = bench_graph_cycle([lambda s=s, o=o: lib.decode(q, s[0], s[1], s[2], o)
                                      for s, o in zip(sets, outs)])
        t_uniform = bench_graph_cycle([lambda s=s, o=o: lib.decode(q, s[0], s[1], s[2], o)
                                       for s, o in zip(usets, uouts)])
        kept = lens.sum().item() / (b * hkv)
        rows.append({"mean kept": f"{kept:.0f}", "slots M": m,
                     "lengths": f"mean x [{1 - spread:g}, {1 + spread:g}]",
                     "ragged µs": f"{1e3 * t_ragged:.1f}",
                     "padded, -inf µs": f"{1e3 * t_padded:.1f}",
                     "uniform (mean) µs": f"{1e3 * t_uniform:.1f}",
                     "ragged / uniform": f"{t_ragged / t_uniform:.2f}"})
    print(f"\nworst rel err {worst:.2e}; {torch.cuda.get_device_name()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
