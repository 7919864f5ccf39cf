#!/usr/bin/env python3
"""Writes the MLIR of the GPU-path benchmark (one function per shape of
gpu_bench_shapes.py) to stdout."""
import math

import gpu_bench_shapes as S


def ty(*dims, e="bf16"):
    return "tensor<" + "x".join(str(d) for d in dims) + f"x{e}>"


out = []
for n, h in S.COMPRESS:
    m = S.compressed_length(n, 2)
    k, ck, lw = ty(1, h, n, S.D), ty(1, h, m, S.D), ty(1, h, m, e="f32")
    out.append(f"""func.func @{S.compress_name(n, h)}(%k: {k}, %v: {k}) -> ({ck}, {ck}, {lw}) {{
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2> : {k}, {k}
  return %ck, %cv, %lw : {ck}, {ck}, {lw}
}}""")
for b, n, r in S.DECODE:
    m = S.compressed_length(n, int(math.log2(r)))
    q, ck, lw = ty(b, S.HQ, 1, S.D), ty(b, S.HKV, m, S.D), ty(b, S.HKV, m, e="f32")
    out.append(f"""func.func @{S.decode_name(b, n, r)}(%q: {q}, %k: {ck}, %v: {ck}, %lw: {lw}) -> {q} {{
  %o = balancekv.weighted_attention %q, %k, %v, %lw : {q}, {ck}, {ck}, {lw} -> {q}
  return %o : {q}
}}""")
for i, (e, b, h, n, d, dv, rounds, blk) in enumerate(S.CHECK_COMPRESS):
    m = S.compressed_length(n, rounds)
    k, v = ty(b, h, n, d, e=e), ty(b, h, n, dv, e=e)
    ck, cv, lw = ty(b, h, m, d, e=e), ty(b, h, m, dv, e=e), ty(b, h, m, e="f32")
    out.append(f"""func.func @{S.check_compress_name(i)}(%k: {k}, %v: {v}) -> ({ck}, {cv}, {lw}) {{
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = {rounds}, block_size = {blk}, seed = 1234> : {k}, {v}
  return %ck, %cv, %lw : {ck}, {cv}, {lw}
}}""")
for i, (e, b, hq, hkv, l, m, d, dv, causal, kv_len, has_lw) in enumerate(S.CHECK_DECODE):
    q, k, v = ty(b, hq, l, d, e=e), ty(b, hkv, m, d, e=e), ty(b, hkv, m, dv, e=e)
    o, lw, lens = ty(b, hq, l, dv, e=e), ty(b, hkv, m, e="f32"), ty(b, e="i32")
    args = [f"%q: {q}", f"%k: {k}", f"%v: {v}"]
    if has_lw:
        args.append(f"%lw: {lw}")
    if kv_len:
        args.append(f"%len: {lens}")
    c = " causal" if causal else ""
    n = f" kv_len(%len : {lens})" if kv_len else ""
    if has_lw:
        op = f"balancekv.weighted_attention %q, %k, %v, %lw{n}{c} : {q}, {k}, {v}, {lw} -> {o}"
    else:
        op = f"balancekv.attention %q, %k, %v{n}{c} : {q}, {k}, {v} -> {o}"
    out.append(f"""func.func @{S.check_decode_name(i)}({", ".join(args)}) -> {o} {{
  %o = {op}
  return %o : {o}
}}""")
print("\n\n".join(out))
