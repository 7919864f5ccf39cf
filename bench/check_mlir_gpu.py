#!/usr/bin/env python3
"""Conformance of the MLIR-generated GPU path on a GPU: every kernel variant
against the CPU reference (compression: identical rows and log-weights) and
float64 attention (decode), including misaligned buffers (scalar fallback
kernels). Cases: gpu_bench_shapes.CHECK_*; functions compiled by
bench/build_gpu_bench.sh. Prints one line per case and ALL CORRECT."""
import math
import sys

import torch

import gpu_bench_shapes as S
from balancekv_bench import Lib, attention64, rel
from bench_mlir_gpu import (M4, CompressResult, Generated,
                            lib_args, report)

DT = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
TOL = {"bf16": 1e-2, "f16": 5e-3, "f32": 1e-5}


def misaligned(t):
    """A copy of `t` whose data pointer is one element past a 16-byte
    boundary."""
    buf = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    out = buf[1:].view(t.shape)
    out.copy_(t)
    return out


def run_compress(gen, i, k, v):
    res = gen.call(S.check_compress_name(i), CompressResult(), k, v)
    return (gen.fetch(res.key, k.dtype), gen.fetch(res.value, v.dtype),
            gen.fetch(res.log_weights, torch.float32))


def run_decode(gen, i, *tensors):
    out = gen.call(S.check_decode_name(i), M4(), *tensors)
    return gen.fetch(out, tensors[0].dtype)


def check_compress(gen, hand, failures):
    for i, (e, b, h, n, d, dv, t, blk) in enumerate(S.CHECK_COMPRESS):
        torch.manual_seed(100 + i)
        k = torch.randn(b, h, n, d, device="cuda").to(DT[e])
        v = torch.randn(b, h, n, dv, device="cuda").to(DT[e])
        p = hand.params(rounds=t, seed=1234, block=blk)
        idx, rlw = hand.reference(k, v, p)
        idx = idx.long().cuda()
        want_k = torch.gather(k, 2, idx[..., None].expand(-1, -1, -1, d))
        want_v = torch.gather(v, 2, idx[..., None].expand(-1, -1, -1, dv))
        for label, (kk, vv) in (("aligned", (k, v)),
                                ("misaligned", (misaligned(k), misaligned(v)))):
            ck, cv, lw = run_compress(gen, i, kk, vv)
            torch.cuda.synchronize()
            rows = int((ck != want_k).any(-1).sum() + (cv != want_v).any(-1).sum())
            lw_same = torch.equal(lw.cpu(), rlw)
            ok = rows == 0 and lw_same
            print(f"compress {e} B={b} H={h} N={n} D={d} Dv={dv} T={t} block={blk} "
                  f"{label}: rows differing {rows}, log-weights identical {lw_same} "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
            if not ok:
                failures.append(f"compress case {i} {label}")


def check_decode(gen, failures):
    for i, (e, b, hq, hkv, l, m, d, dv, causal, kv_len, has_lw) in enumerate(S.CHECK_DECODE):
        torch.manual_seed(200 + i)
        q = torch.randn(b, hq, l, d, device="cuda").to(DT[e])
        k = torch.randn(b, hkv, m, d, device="cuda").to(DT[e])
        v = torch.randn(b, hkv, m, dv, device="cuda").to(DT[e])
        lw = (torch.randint(0, 3, (b, hkv, m), device="cuda").float() * math.log(2)
              if has_lw else None)
        lens = (torch.randint(1, m + 1, (b,), device="cuda", dtype=torch.int32)
                if kv_len else None)
        want = attention64(q, k, v, lw, causal=causal, kv_len=lens)
        for label, (kk, vv) in (("aligned", (k, v)),
                                ("misaligned", (misaligned(k), misaligned(v)))):
            args = [q, kk, vv] + ([lw] if has_lw else []) + ([lens] if kv_len else [])
            out = run_decode(gen, i, *args)
            torch.cuda.synchronize()
            err = rel(out, want)
            ok = err < TOL[e]
            print(f"decode {e} B={b} Hq={hq} Hkv={hkv} L={l} M={m} D={d} Dv={dv} "
                  f"causal={causal} kv_len={kv_len} log_weights={has_lw} {label}: "
                  f"rel err {err:.2e} {'ok' if ok else 'FAIL'}", flush=True)
            if not ok:
                failures.append(f"decode case {i} {label}")


def main():
    args = lib_args(__doc__.splitlines()[0]).parse_args()
    gen = Generated(args.bench_lib, args.runtime_lib)
    gen.use_torch_stream(deferred=False)
    hand = Lib(args.lib)
    failures = []
    check_compress(gen, hand, failures)
    check_decode(gen, failures)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
