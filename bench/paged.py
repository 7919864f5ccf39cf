#!/usr/bin/env python3
"""Paged KV caches (issue 21, item 3): balancekv_compress_paged and
balancekv_weighted_decode_attention_paged against the dense entries.

Correctness: the pools hold the dense cache's pages in a random order (NHD
and HND pools, page sizes 1 to 128, every dtype and kernel path: TMA tiles
for pages of 8 tokens or more, cp.async below); slots past kv_len holding
NaN do not reach the output; the paged
compression must give the dense one's tokens, weights and rows bit for bit,
and the paged decode (compressed cache plus decoded tokens in the same
pages; kv_len per sequence, or per KV head through
balancekv_weighted_decode_attention_paged_ragged) the dense decode's output
bit for bit (and float64 attention within the dtype's rounding).

Real caches (`--real BUNDLE`): SmolLM2-135M's keys, values and last
queries (scripts/dump_smollm2_kv.py), cast to bf16 and f16 on the GPU, two
sequences a batch: the dense compression against the CPU reference (tokens
and weights), the paged compression against the dense one bit for bit, and
the paged decode of the compressed cache with the model's own queries
against the dense decode bit for bit (and float64 attention). The bundle is
packed here from the .npy dumps (the device has no model):

  python3 bench/paged.py --pack-real real.pt /tmp/kv3/apache_l5 ...

Speed: paged vs dense on the same tokens, CUDA-graph medians over copies
beyond L2 for the decode, per-call medians for the compression.

  python3 bench/paged.py --lib build/lib/libbalancekv_cuda.so [--real real.pt]
"""
import argparse
import os

import torch

from balancekv_bench import (Lib, attention64, bench, bench_graph_cycle,
                             copies_beyond_l2, medians_in_turn, paged, rel,
                             table)


def check_compress(lib, dtype, d, dv, n, page, layout, b=2, h=4, method=0,
                   rounds=2, block=128):
    k = torch.randn(b, h, n, d, device="cuda", dtype=dtype)
    v = torch.randn(b, h, n, dv, device="cuda", dtype=dtype)
    p = lib.params(rounds=rounds, method=method, block=block)
    dense = lib.compress_prepare(k, v, p)
    lib.compress(k, v, p, dense)
    (kp, vp), tab = paged([k, v], page, layout)
    out = lib.compress_prepare(k, v, p)
    lib.compress_paged(kp, vp, tab, page, (b, h, n, d, dv), p, out)
    torch.cuda.synchronize()
    same = all(torch.equal(dense[x], out[x]) for x in ("ck", "cv", "lw", "idx"))
    return {"what": "compress", "dtype": str(dtype).split(".")[1],
            "D/Dv": f"{d}/{dv}", "N": n, "page": page, "layout": layout,
            "method": "uniform" if method else f"balance T {rounds} B {block}",
            "bit-identical": same}


def check_decode(lib, dtype, d, dv, m, new, page, layout, l=1, causal=False,
                 b=3, hkv=4, group=4, ragged=False):
    """A compressed cache of m slots followed by `new` decoded tokens
    (log-weight 0) in the same pages; sequence b holds m + new - 7 b, or
    with `ragged` each (sequence, KV head) its own count (kv_len [B, Hkv],
    as method adaptive leaves them)."""
    total = m + new
    k = torch.randn(b, hkv, total, d, device="cuda", dtype=dtype)
    v = torch.randn(b, hkv, total, dv, device="cuda", dtype=dtype)
    lw = torch.zeros(b, hkv, total, device="cuda")
    lw[:, :, :m] = torch.rand(b, hkv, m, device="cuda") * 3
    kv_len = torch.tensor([total - 7 * i for i in range(b)], device="cuda",
                          dtype=torch.int32)
    if ragged:  # one head empty, one shorter than a page, the rest spread
        kv_len = torch.randint(0, total + 1, (b, hkv), device="cuda",
                               dtype=torch.int32)
        kv_len[0, 0], kv_len[-1, -1], kv_len[0, -1] = 0, min(page, total) - 1, total
    q = torch.randn(b, hkv * group, l, d, device="cuda", dtype=dtype)
    dense = lib.decode_prepare(q, k, v)
    lib.decode(q, k, v, lw, dense, kv_len=kv_len, causal=causal)
    (kp, vp), tab = paged([k, v], page, layout)
    out = lib.decode_prepare(q, k, v)
    lib.decode_paged(q, kp, vp, tab, page, total, lw, out, kv_len=kv_len,
                     causal=causal, kv_heads=hkv, dv=dv)
    torch.cuda.synchronize()
    err = rel(out["out"], attention64(q, k, v, lw, causal=causal, kv_len=kv_len))
    return {"what": "decode", "dtype": str(dtype).split(".")[1],
            "D/Dv": f"{d}/{dv}", "N": f"{m}+{new}", "page": page,
            "layout": layout,
            "method": f"L {l}{' causal' if causal else ''}"
                      f"{' ragged heads' if ragged else ''}",
            "bit-identical": torch.equal(dense["out"], out["out"]),
            "rel err vs f64": f"{err:.1e}", "f64 ok": err < 1e-2}


def check_nan_padding(lib, page=None):
    """Slots past kv_len that hold NaN (never written, as in a serving
    engine's pool) must not reach the output: the TMA tiles read whole
    boxes, past kv_len too."""
    b, hkv, m, d = 2, 4, 700, 128
    k = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    lw = torch.rand(b, hkv, m, device="cuda")
    lens = torch.tensor([650, 333], device="cuda", dtype=torch.int32)
    q = torch.randn(b, 16, 1, d, device="cuda", dtype=torch.bfloat16)
    clean = lib.decode_prepare(q, k, v)
    lib.decode(q, k, v, lw, clean, kv_len=lens)
    for i, n in enumerate(lens.tolist()):
        k[i, :, n:] = float("nan")
        v[i, :, n:] = float("nan")
    out = lib.decode_prepare(q, k, v)
    if page is None:
        lib.decode(q, k, v, lw, out, kv_len=lens)
    else:
        (kp, vp), tab = paged([k, v], page, "NHD")
        lib.decode_paged(q, kp, vp, tab, page, m, lw, out, kv_len=lens,
                         kv_heads=hkv, dv=d)
    torch.cuda.synchronize()
    return {"what": "decode, NaN past kv_len", "page": page or "dense",
            "bit-identical": torch.equal(out["out"], clean["out"])}


def check_torch_wrappers(lib):
    """balancekv.torch_ops.compress_paged / weighted_decode_paged (run with
    PYTHONPATH=python and BALANCEKV_CUDA_LIBRARY, BALANCEKV_LIBRARY set to
    the library) against the dense C entries."""
    try:
        from balancekv import torch_ops
    except ImportError as e:
        print(f"balancekv.torch_ops not importable ({e}): wrappers not checked")
        return []
    rows = []
    for layout in ("NHD", "HND"):
        k = torch.randn(2, 4, 3000, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        p = lib.params()
        dense = lib.compress_prepare(k, v, p)
        lib.compress(k, v, p, dense)
        (kp, vp), tab = paged([k, v], 32, layout)
        ck, cv, lw = torch_ops.compress_paged(kp[0], vp[0], tab, 3000, layout)
        same = (torch.equal(ck, dense["ck"]) and torch.equal(cv, dense["cv"])
                and torch.equal(lw, dense["lw"]))
        q = torch.randn(2, 16, 1, 128, device="cuda", dtype=torch.bfloat16)
        o = lib.decode_prepare(q, k, v)
        lens = torch.tensor([3000, 2500], device="cuda", dtype=torch.int32)
        zeros = torch.zeros(2, 4, 3000, device="cuda")
        lib.decode(q, k, v, zeros, o, kv_len=lens)
        out = torch_ops.weighted_decode_paged(q, kp[0], vp[0], tab, zeros,
                                              kv_len=lens, layout=layout)
        head_lens = torch.tensor([[3000, 17, 2999, 0], [1, 2500, 64, 3000]],
                                 device="cuda", dtype=torch.int32)
        o2 = lib.decode_prepare(q, k, v)
        lib.decode(q, k, v, zeros, o2, kv_len=head_lens)
        out2 = torch_ops.weighted_decode_paged(q, kp[0], vp[0], tab, zeros,
                                               kv_len=head_lens, layout=layout)
        rows.append({"what": "torch_ops wrappers", "layout": layout,
                     "compress bit-identical": same,
                     "decode bit-identical": torch.equal(out, o["out"]),
                     "ragged decode bit-identical": torch.equal(out2, o2["out"])})
    return rows


def pack_real(out, prefixes, queries=4):
    """Keys and values ([H, N, D] float32) and the last `queries` query rows
    of each dump, for check_real on a machine without the model."""
    import numpy as np
    bundle = {}
    for prefix in prefixes:
        name = os.path.basename(prefix)
        q, k, v = (torch.from_numpy(np.load(f"{prefix}_{x}.npy"))
                   for x in "qkv")
        bundle[name] = {"q": q[:, -queries:].contiguous(), "k": k, "v": v}
    torch.save(bundle, out)
    print(f"{out}: {len(bundle)} caches")


def check_real(lib, path):
    """Real caches, two of the same length a batch: CUDA compression vs the
    CPU reference (reported, not asserted: the spec lets a walk step differ
    at a near tie), paged compression and paged decode vs dense (asserted
    by the caller)."""
    bundle = torch.load(path)
    by_len = {}
    for name, c in bundle.items():
        by_len.setdefault(c["k"].shape[1], []).append((name, c))
    batches = [group[i:i + 2] for group in by_len.values()
               for i in range(0, len(group), 2)]
    rows = []
    for batch in batches:
        names = "+".join(n for n, _ in batch)
        for dtype in (torch.bfloat16, torch.float16):
            k, v, q = (torch.stack([c[x] for _, c in batch]).to("cuda", dtype)
                       for x in "kvq")
            b, h, n, d = k.shape
            q = q[:, :, -1:]  # the prompt's last query: [B, Hq, 1, D]
            for rounds in (2, 4):
                p = lib.params(rounds=rounds)
                dense = lib.compress_prepare(k, v, p)
                lib.compress(k, v, p, dense)
                ref_idx, ref_lw = lib.reference(k, v, p)
                torch.cuda.synchronize()
                idx, lw = dense["idx"].cpu(), dense["lw"].cpu()
                m = dense["ck"].shape[2]
                row = {"caches": names, "dtype": str(dtype).split(".")[1],
                       "B×Hkv×N": f"{b}×{h}×{n}", "T": rounds, "M": m,
                       "heads = reference": f"{int((idx == ref_idx).all(-1).sum())}/{b * h}",
                       "tokens differing": int((idx != ref_idx).sum()),
                       "weights = reference": torch.equal(lw, ref_lw)}
                plain = lib.decode_prepare(q, dense["ck"], dense["cv"])
                lib.decode(q, dense["ck"], dense["cv"], dense["lw"], plain)
                torch.cuda.synchronize()
                err = rel(plain["out"], attention64(q, dense["ck"], dense["cv"],
                                                    dense["lw"]))
                row["decode rel err vs f64"] = f"{err:.1e}"
                same_c, same_d = True, True
                for page, layout in ((16, "NHD"), (64, "HND")):
                    (kp, vp), tab = paged([k, v], page, layout)
                    out = lib.compress_prepare(k, v, p)
                    lib.compress_paged(kp, vp, tab, page, (b, h, n, d, d), p,
                                       out)
                    (ckp, cvp), ctab = paged([dense["ck"], dense["cv"]], page,
                                             layout)
                    o = lib.decode_prepare(q, dense["ck"], dense["cv"])
                    lib.decode_paged(q, ckp, cvp, ctab, page, m, dense["lw"], o,
                                     kv_heads=h, dv=d)
                    torch.cuda.synchronize()
                    same_c &= all(torch.equal(dense[x], out[x])
                                  for x in ("ck", "cv", "lw", "idx"))
                    same_d &= torch.equal(o["out"], plain["out"])
                row["paged compress bit-identical"] = same_c
                row["paged decode bit-identical"] = same_d
                row["f64 ok"] = err < 1e-2
                rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib")
    parser.add_argument("--real", help="a bundle from --pack-real")
    parser.add_argument("--pack-real", nargs="+", metavar=("OUT", "PREFIX"),
                        help="pack SmolLM2 dumps (PREFIX_{q,k,v}.npy) into OUT")
    args = parser.parse_args()
    if args.pack_real:
        pack_real(args.pack_real[0], args.pack_real[1:])
        return
    if not args.lib:
        parser.error("--lib is required")
    lib = Lib(args.lib)
    torch.manual_seed(0)
    bf16, f16, f32 = torch.bfloat16, torch.float16, torch.float32

    checks = [
        check_compress(lib, bf16, 128, 128, 4096, 16, "NHD"),  # TMA when dense
        check_compress(lib, bf16, 128, 128, 3001, 64, "HND"),
        check_compress(lib, f16, 64, 64, 2000, 32, "NHD"),
        check_compress(lib, bf16, 96, 64, 1500, 128, "HND"),
        check_compress(lib, f32, 128, 128, 1000, 16, "NHD"),
        check_compress(lib, bf16, 128, 128, 2048, 16, "NHD", rounds=3, block=64),
        check_compress(lib, bf16, 128, 128, 2048, 1, "NHD", method=1),
        check_decode(lib, bf16, 128, 128, 2096, 40, 16, "NHD"),
        check_decode(lib, bf16, 128, 128, 2096, 40, 64, "HND", l=4, causal=True),
        check_decode(lib, bf16, 64, 64, 1000, 13, 32, "NHD", l=4, causal=True),
        check_decode(lib, f16, 128, 128, 700, 3, 128, "HND"),
        check_decode(lib, f32, 128, 128, 700, 3, 16, "NHD", l=2, causal=True),
        check_decode(lib, bf16, 96, 128, 500, 9, 1, "HND"),
        check_decode(lib, bf16, 128, 128, 2096, 40, 8, "NHD"),
        check_decode(lib, f16, 64, 64, 2096, 40, 128, "NHD", l=3, causal=True),
        check_decode(lib, bf16, 128, 128, 2096, 40, 16, "NHD", ragged=True),
        check_decode(lib, bf16, 128, 128, 2096, 40, 64, "HND", l=4, causal=True,
                     ragged=True),
        check_decode(lib, f16, 64, 64, 1000, 13, 1, "NHD", l=2, causal=True,
                     ragged=True),
        check_decode(lib, f32, 128, 128, 700, 3, 32, "HND", ragged=True),
        check_nan_padding(lib), check_nan_padding(lib, 16),
    ]
    print(table(checks))
    wrappers = check_torch_wrappers(lib)
    print(table(wrappers))
    bad = [c for c in checks
           if not c["bit-identical"] or not c.get("f64 ok", True)] + [
        w for w in wrappers
        if not (w["compress bit-identical"] and w["decode bit-identical"]
                and w["ragged decode bit-identical"])]
    assert not bad, f"paged results differ from dense: {bad}"
    if args.real:
        real = check_real(lib, args.real)
        print("\n## real caches (SmolLM2-135M: Hkv 3, Hq 9, d 64)\n")
        print(table(real))
        bad = [r for r in real if not (r["paged compress bit-identical"]
                                       and r["paged decode bit-identical"]
                                       and r["f64 ok"])]
        assert not bad, f"real caches: paged results differ from dense: {bad}"

    # Decode speed: Hq 32, Hkv 8, d 128, bf16, L 1; compressed caches of
    # the decode grid (M for N tokens at ratio 4 / 16, spec defaults).
    rows = []
    hq, hkv, d = 32, 8, 128
    for n, b, ratio, m in ((8192, 8, 4, 2096), (32768, 1, 4, 8240),
                           (32768, 8, 4, 8240), (32768, 8, 16, 2108),
                           (8192, 32, 4, 2096)):
        k = torch.randn(b, hkv, m, d, device="cuda", dtype=bf16)
        v = torch.randn_like(k)
        lw = torch.rand(b, hkv, m, device="cuda")
        q = torch.randn(b, hq, 1, d, device="cuda", dtype=bf16)
        sets = copies_beyond_l2([k, v, lw])
        outs = [lib.decode_prepare(q, s[0], s[1]) for s in sets]
        timed = {"dense": lambda: bench_graph_cycle(
            [lambda s=s, o=o: lib.decode(q, s[0], s[1], s[2], o)
             for s, o in zip(sets, outs)])}
        pools = []
        for page, layout in ((16, "NHD"), (64, "NHD"), (16, "HND")):
            psets = []
            for s in sets:
                (kp, vp), tab = paged([s[0], s[1]], page, layout)
                psets.append((kp, vp, tab, s[2]))
            pools.append(psets)
            timed[f"{layout} {page}"] = (
                lambda psets=psets, page=page: bench_graph_cycle(
                    [lambda s=s, o=o: lib.decode_paged(
                        q, s[0], s[1], s[2], page, m, s[3], o, kv_heads=hkv,
                        dv=d) for s, o in zip(psets, outs)]))
        t = medians_in_turn(timed)
        row = {"N": n, "B": b, "ratio": ratio, "M": m,
               "dense µs": f"{1e3 * t['dense']:.1f}"}
        for name in list(timed)[1:]:
            row[f"{name} µs"] = f"{1e3 * t[name]:.1f}"
            row[f"{name} / dense"] = f"{t[name] / t['dense']:.3f}"
        rows.append(row)
        del sets, outs, pools
        torch.cuda.empty_cache()
    print("\n## weighted decode, paged vs dense (bf16, Hq 32, Hkv 8, d 128, L 1)\n")
    print(table(rows))

    # Compression speed: one sequence of 32k tokens x 32 heads, d 128; the
    # uniform method is the selection and the gather without the walk.
    rows = []
    for heads, n, method in ((32, 32768, 0), (8, 32768, 0), (32, 32768, 1)):
        k = torch.randn(1, heads, n, d, device="cuda", dtype=bf16)
        v = torch.randn_like(k)
        p = lib.params(method=method)
        o = lib.compress_prepare(k, v, p)
        timed = {"dense": lambda: bench(
            lambda: lib.compress(k, v, p, o, indices=False), reps=20)}
        for page, layout in ((16, "NHD"), (64, "NHD"), (16, "HND")):
            (kp, vp), tab = paged([k, v], page, layout)
            timed[f"{layout} {page}"] = (
                lambda kp=kp, vp=vp, tab=tab, page=page: bench(
                    lambda: lib.compress_paged(kp, vp, tab, page,
                                               (1, heads, n, d, d), p, o,
                                               indices=False), reps=20))
        t = medians_in_turn(timed)
        row = {"heads": heads, "N": n, "method": ("balance", "uniform")[method],
               "dense ms": f"{t['dense']:.3f}"}
        for name in list(timed)[1:]:
            row[f"{name} ms"] = f"{t[name]:.3f}"
            row[f"{name} / dense"] = f"{t[name] / t['dense']:.3f}"
        rows.append(row)
        del timed
        torch.cuda.empty_cache()
    print("\n## compression, paged vs dense (bf16, d 128, spec defaults)\n")
    print(table(rows))
    print(f"\n{torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
