#!/usr/bin/env python3
"""Writes the MLIR of the GPU-path benchmark (one function per shape of
gpu_bench_shapes.py) to stdout."""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench_shapes as S  # noqa: E402


def t(*dims, e="bf16"):
    return "tensor<" + "x".join(str(d) for d in dims) + f"x{e}>"


out = []
for n, h in S.COMPRESS:
    m = S.compressed_length(n, 2)
    k, ck, lw = t(1, h, n, S.D), t(1, h, m, S.D), t(1, h, m, e="f32")
    out.append(f"""func.func @{S.compress_name(n, h)}(%k: {k}, %v: {k}) -> ({ck}, {ck}, {lw}) {{
  %ck, %cv, %lw = balancekv.compress %k, %v {{rounds = 2 : i64}} : {k}, {k}
  return %ck, %cv, %lw : {ck}, {ck}, {lw}
}}""")
for b, n, r in S.DECODE:
    m = S.compressed_length(n, int(math.log2(r)))
    q, ck, lw = t(b, S.HQ, 1, S.D), t(b, S.HKV, m, S.D), t(b, S.HKV, m, e="f32")
    out.append(f"""func.func @{S.decode_name(b, n, r)}(%q: {q}, %k: {ck}, %v: {ck}, %lw: {lw}) -> {q} {{
  %o = balancekv.weighted_attention %q, %k, %v, %lw : {q}, {ck}, {ck}, {lw} -> {q}
  return %o : {q}
}}""")
print("\n\n".join(out))
