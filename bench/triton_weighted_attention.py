#!/usr/bin/env python3
"""Triton attention kernels rewritten by --balancekv-triton-weighted-attention,
run through Triton 3.6 on the GPU: correctness against float64 and decode
speed next to our CUDA kernel, FlexAttention and SDPA.

Two steps, because the GPU machine has no MLIR:

  # here (balancekv-opt's passes in-process through libbalancekv_capi):
  BALANCEKV_LIBRARY=build/lib/libbalancekv_capi.so PYTHONPATH=python:scripts \\
    build/triton-venv/bin/python bench/triton_weighted_attention.py --prepare build/triton-rewritten
  # on the GPU (carry build/triton-rewritten and build/lib/libbalancekv_cuda.so):
  PYTHONPATH=python:scripts python3 bench/triton_weighted_attention.py \\
    --rewritten build/triton-rewritten --lib build/lib/libbalancekv_cuda.so --out $OUT

--prepare compiles each kernel of scripts/triton_attention_kernels.py to TTIR
for sm_90 (no GPU) and rewrites it (balancekv.triton.rewrite_ttir). The run
compresses random caches with our CUDA kernel, launches every rewritten
kernel over the compressed cache twice: as a .ttir (balancekv.triton.
compile_ttir) and as the unmodified @triton.jit kernel with Triton's
`ir_override` (compile_jit(ttir=...)), and compares with float64 attention
over the same compressed cache with the log-weights added.
"""
import argparse
import json
import math
import os
import sys

import triton
from triton_attention_kernels import (attn_fwd_tma, decode_gqa_split_k, flash_fwd,
                                      flash_fwd_block_ptr, split_k_decode)

D = 64
STRIDES_FLASH = ["stride_qh", "stride_qm", "stride_kh", "stride_kn", "stride_vh",
                 "stride_vn", "stride_oh", "stride_om"]
STRIDES_BLOCK = [f"stride_{t}{d}" for t in "qkvo" for d in
                 ("z", "h", "m" if t in "qo" else "n", "k")]
STRIDES_GQA = ["stride_qb", "stride_qh", "stride_kb", "stride_kh", "stride_kn",
               "stride_vb", "stride_vh", "stride_vn"]
STRIDES_SPLIT = ["stride_qh", "stride_kh", "stride_kn", "stride_vh", "stride_vn"]


def kernels(dt):
    """name -> (jit function, signature, constexprs)"""
    ptr = f"*{dt}"
    tag = {"fp16": "f16", "bf16": "bf16"}[dt]
    desc = f"tensordesc<{dt}[%d,64]>"
    return {
        f"flash_fwd_{tag}": (flash_fwd, {
            "Q": ptr, "K": ptr, "V": ptr, "O": ptr, "sm_scale": "fp32", "N_CTX": "i32",
            **{s: "i32" for s in STRIDES_FLASH}},
            {"CAUSAL": False, "BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": D}),
        f"flash_fwd_causal_{tag}": (flash_fwd, {
            "Q": ptr, "K": ptr, "V": ptr, "O": ptr, "sm_scale": "fp32", "N_CTX": "i32",
            **{s: "i32" for s in STRIDES_FLASH}},
            {"CAUSAL": True, "BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": D}),
        f"tma_causal_{tag}": (attn_fwd_tma, {
            "sm_scale": "fp32", "M": "*fp32", "Z": "i32", "H": "i32",
            **{t: ptr for t in "QKVO"}, "N_CTX": "i32"},
            {"HEAD_DIM": D, "BLOCK_M": 128, "BLOCK_N": 64, "STAGE": 3, "HOST_DESC": False}),
        f"block_ptr_{tag}": (flash_fwd_block_ptr, {
            "Q": ptr, "K": ptr, "V": ptr, "O": ptr, "sm_scale": "fp32", "N_CTX": "i32",
            **{s: "i32" for s in STRIDES_BLOCK}, "H": "i32"},
            {"BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": D}),
        f"tma_{tag}": (attn_fwd_tma, {
            "sm_scale": "fp32", "M": "*fp32", "Z": "i32", "H": "i32",
            **{t: ptr for t in "QKVO"}, "N_CTX": "i32"},
            {"HEAD_DIM": D, "BLOCK_M": 128, "BLOCK_N": 64, "STAGE": 1, "HOST_DESC": False}),
        f"tma_host_{tag}": (attn_fwd_tma, {
            "sm_scale": "fp32", "M": "*fp32", "Z": "i32", "H": "i32",
            "Q": desc % 128, "K": desc % 64, "V": desc % 64, "O": desc % 128, "N_CTX": "i32"},
            {"HEAD_DIM": D, "BLOCK_M": 128, "BLOCK_N": 64, "STAGE": 1, "HOST_DESC": True}),
        f"decode_gqa_{tag}": (decode_gqa_split_k, {
            "Q": ptr, "K": ptr, "V": ptr, "Mid": "*fp32", "Lse": "*fp32", "sm_scale": "fp32",
            "kv_len": "i32", "n_splits": "i32", **{s: "i32" for s in STRIDES_GQA}},
            {"GROUP": 4, "BLOCK_H": 16, "BLOCK_N": 64, "HEAD_DIM": D, "SPLIT_SIZE": 512}),
        f"split_k_decode_{tag}": (split_k_decode, {
            "Q": ptr, "K": ptr, "V": ptr, "LW": "*fp32", "Mid": "*fp32", "Lse": "*fp32",
            "sm_scale": "fp32", "kv_len": "i32", "n_splits": "i32",
            **{s: "i32" for s in STRIDES_SPLIT}},
            {"GROUP": 4, "BLOCK_N": 64, "HEAD_DIM": D, "SPLIT_SIZE": 256}),
    }


def prepare(out):
    from triton.backends.compiler import GPUTarget

    from balancekv.triton import ast_source, rewrite_ttir
    os.makedirs(out, exist_ok=True)
    for dt in ("fp16", "bf16"):
        for name, (fn, sig, ce) in kernels(dt).items():
            ttir = triton.compile(ast_source(fn, sig, ce),
                                  target=GPUTarget("cuda", 90, 32)).asm["ttir"]
            rewrite = rewrite_ttir(ttir)
            if rewrite.remark:
                raise SystemExit(f"{name}: not rewritten: {rewrite.remark}")
            with open(os.path.join(out, name + ".ttir"), "w") as f:
                f.write(rewrite.text)
            print(f"{name}: +{', '.join(n for n, _ in rewrite.new_args)}")
    # TorchInductor's FlexAttention prefill kernels (fixtures dumped from
    # torch.compile(flex_attention), causal block mask, GQA 8/2, 512 tokens).
    inputs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                          "Dialect", "TritonCompat", "Inputs")
    for tag in ("f16", "bf16"):
        for fixture, name in (("tem_flex_0", "flex_prefill"), ("temflexmask_2", "flex_decode")):
            with open(os.path.join(inputs, f"{fixture}_{tag}.ttir")) as f:
                rewrite = rewrite_ttir(f.read())
            with open(os.path.join(out, f"{name}_{tag}.ttir"), "w") as f:
                f.write(rewrite.text)
            print(f"{name}_{tag}: +{', '.join(n for n, _ in rewrite.new_args)}")
    convert_programs(out)


# (name, batch, KV heads, tokens, head dim, dtype, rounds, query heads)
CONVERTED = [("small", 1, 2, 512, 64, "f16", 2, 8),
             ("mid", 2, 8, 4096, 128, "bf16", 2, 32),
             ("large", 1, 32, 32768, 128, "bf16", 2, 32)]


def convert_programs(out):
    """balancekv.compress and weighted_attention as Triton kernels
    (--balancekv-convert-to-triton) for the shapes of CONVERTED."""
    from balancekv import compressed_length, default_params
    from balancekv.triton import TritonProgram
    for name, b, h, n, d, dt, rounds, hq in CONVERTED:
        m = compressed_length(n, default_params(rounds=rounds))
        kv = f"tensor<{b}x{h}x{n}x{d}x{dt}>"
        ck = f"tensor<{b}x{h}x{m}x{d}x{dt}>"
        lw = f"tensor<{b}x{h}x{m}xf32>"
        q = f"tensor<{b}x{hq}x1x{d}x{dt}>"
        text = f"""
func.func @compress(%k: {kv}, %v: {kv}) -> ({ck}, {ck}, {lw}) {{
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = {rounds}> : {kv}, {kv}
  return %ck, %cv, %lw : {ck}, {ck}, {lw}
}}
func.func @decode(%q: {q}, %k: {ck}, %v: {ck}, %lw: {lw}) -> {q} {{
  %o = balancekv.weighted_attention %q, %k, %v, %lw : {q}, {ck}, {ck}, {lw} -> {q}
  return %o : {q}
}}
"""
        program = TritonProgram.from_mlir(text)
        program.save(os.path.join(out, "converted_" + name))
        print(f"converted {name}: {len(program.kernels)} kernels")


# ------------------------------------------------------------------ GPU ----

def run(args):
    import torch

    from balancekv.triton import compile_jit, compile_ttir
    from balancekv_bench import Lib, attention64, bench_graph_cycle, copies_beyond_l2, table

    torch.manual_seed(0)
    lib = Lib(args.lib)
    triton.set_allocator(lambda size, align, stream:
                         torch.empty(size, dtype=torch.int8, device="cuda"))
    dev = torch.cuda.get_device_name()
    print(f"{dev}, torch {torch.__version__}, triton {triton.__version__}")
    params = lib.params(rounds=2)
    # sink 32 + recent 32 + 4352 middle halved twice: 1152 kept, a multiple
    # of the kernels' blocks (the tutorial kernels assume whole blocks).
    n_full = 4416

    def compressed(b, h, dtype):
        k = torch.randn(b, h, n_full, D, device="cuda", dtype=dtype)
        v = torch.randn_like(k)
        o = lib.compress_prepare(k, v, params)
        lib.compress(k, v, params, o)
        return o["ck"], o["cv"], o["lw"]

    rows = []
    scale = 1.0 / math.sqrt(D)

    def check(name, route, got, ref):
        err = ((got.double() - ref).norm() / ref.norm()).item()
        mx = (got.double() - ref).abs().max().item()
        ok = err < 1e-2 and mx < 5e-2
        rows.append(dict(kernel=name, route=route, rel_err=f"{err:.2e}",
                         max_abs=f"{mx:.2e}", ok="yes" if ok else "NO"))
        print(f"{name:24s} {route:10s} rel {err:.2e} max {mx:.2e} {'OK' if ok else 'FAIL'}",
              flush=True)
        return ok

    if args.only_flex:
        run_flex(args, rows, check)
        print(table(rows))
        return 0 if all(r["ok"] in ("yes", "n/a") for r in rows) else 1

    for dt, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        specs = kernels(dt)
        tag = {"fp16": "f16", "bf16": "bf16"}[dt]
        z, h = 2, 4
        ck, cv, lw = compressed(z, h, dtype)
        n = ck.shape[2]
        assert n == 1152, n
        # A chunk of lq queries over the compressed cache (lq != n: kernels
        # with one length for both get the key length as N_CTX_kv).
        lq = 256
        q = torch.randn(z, h, lq, D, device="cuda", dtype=dtype)
        ref_prefill = attention64(q, ck, cv, lw)
        # What the checks would see if the log-weights were not applied.
        unweighted = attention64(q, ck, cv)
        rows.append(dict(kernel=f"(control: log-weights ignored, {tag})", route="",
                         rel_err=f"{((unweighted - ref_prefill).norm() / ref_prefill.norm()).item():.2e}",
                         max_abs=f"{(unweighted - ref_prefill).abs().max().item():.2e}",
                         ok="n/a"))

        def launch(name, kernel_args, grid, route):
            fn, sig, ce = specs[name]
            path = os.path.join(args.rewritten, name + ".ttir")
            if route == "ttir":
                k = compile_ttir(path)
                rt = [kernel_args[a] for a in fn.arg_names if a in sig]
            else:
                k = compile_jit(fn, sig, ce, ttir=path)
                rt = [kernel_args[a] if a in sig else ce[a] for a in fn.arg_names]
            k[grid](*rt, *new_values(k, {**kernel_args, "N_CTX_kv": n}))

        def flash_args(q, bi, o, n_ctx):
            """flash_fwd's arguments for batch bi ([H, N, D] views)."""
            return dict(Q=q[bi], K=ck[bi], V=cv[bi], O=o, sm_scale=scale, N_CTX=n_ctx,
                        stride_qh=q.stride(1), stride_qm=q.stride(2), stride_kh=ck.stride(1),
                        stride_kn=ck.stride(2), stride_vh=cv.stride(1), stride_vn=cv.stride(2),
                        stride_oh=o.stride(0), stride_om=o.stride(1), log_weights=lw[bi],
                        lw_stride_kh=lw.stride(1), lw_stride_kn=lw.stride(2))

        for route in ("ttir", "jit"):
            # Pointer flash forward: per (batch, head) programs, batch 1 view.
            for bi in range(z):
                o = torch.empty_like(q[bi])
                launch(f"flash_fwd_{tag}", flash_args(q, bi, o, lq),
                       (triton.cdiv(lq, 64), h), route)
                if bi == 0:
                    out0 = o
            check(f"flash_fwd_{tag}", route, torch.stack([out0, o]), ref_prefill)

            o = torch.empty_like(q)
            a = dict(Q=q, K=ck, V=cv, O=o, sm_scale=scale, N_CTX=n, H=h, log_weights=lw)
            for t, x in zip("qkvo", (q, ck, cv, o)):
                for d, s in zip(("z", "h", "m" if t in "qo" else "n", "k"), x.stride()):
                    a[f"stride_{t}{d}"] = s
            a["lw_stride_kz"], a["lw_stride_kh"], a["lw_stride_kn"] = lw.stride()
            # its one length bounds only the keys (no masks): the cache's length
            launch(f"block_ptr_{tag}", a, (lq // 64, z * h), route)
            check(f"block_ptr_{tag}", route, o, ref_prefill)

            o = torch.empty_like(q)
            m = torch.empty(z * h * lq, device="cuda", dtype=torch.float32)
            a = dict(sm_scale=scale, M=m, Z=z, H=h, Q=q, K=ck, V=cv, O=o, N_CTX=lq,
                     log_weights=lw)
            launch(f"tma_{tag}", a, (lq // 128, z * h), route)
            check(f"tma_{tag}", route, o, ref_prefill)

            if route == "jit":  # host descriptors: Triton's launcher expands them
                from triton.tools.tensor_descriptor import TensorDescriptor
                o = torch.empty_like(q)

                def desc(x, rows):
                    return TensorDescriptor(x.view(-1, D), shape=[x.numel() // D, D],
                                            strides=[D, 1], block_shape=[rows, D])
                a = dict(sm_scale=scale, M=m, Z=z, H=h, Q=desc(q, 128), K=desc(ck, 64),
                         V=desc(cv, 64), O=desc(o, 128), N_CTX=lq, log_weights=lw)
                try:
                    launch(f"tma_host_{tag}", a, (lq // 128, z * h), route)
                    check(f"tma_host_{tag}", route, o, ref_prefill)
                except Exception as e:  # report, go on
                    rows.append(dict(kernel=f"tma_host_{tag}", route=route,
                                     rel_err=f"launch failed: {str(e).splitlines()[0][:80]}",
                                     ok="NO"))
                    print(f"tma_host_{tag}: {e}")

        # Causal kernels as self-attention over the compressed cache (as many
        # queries as kept keys; query i sees keys 0..i): their masks compare
        # indices, which is what they do.
        qs = torch.randn(z, h, n, D, device="cuda", dtype=dtype)
        ref_causal = attention64(qs, ck, cv, lw, causal=True)
        for bi in range(z):
            o = torch.empty_like(qs[bi])
            launch(f"flash_fwd_causal_{tag}", flash_args(qs, bi, o, n),
                   (triton.cdiv(n, 64), h), "ttir")
            if bi == 0:
                out0 = o
        check(f"flash_fwd_causal_{tag}", "ttir", torch.stack([out0, o]), ref_causal)
        o = torch.empty_like(qs)
        m = torch.empty(z * h * n, device="cuda", dtype=torch.float32)
        launch(f"tma_causal_{tag}", dict(sm_scale=scale, M=m, Z=z, H=h, Q=qs, K=ck, V=cv,
                                         O=o, N_CTX=n, log_weights=lw),
               (n // 128, z * h), "ttir")
        check(f"tma_causal_{tag}", "ttir", o, ref_causal)

        # Decode kernels: one query per head, GQA 32/8.
        b, hq, hkv = 4, 32, 8
        ck, cv, lw = compressed(b, hkv, dtype)
        n = ck.shape[2]
        qd = torch.randn(b, hq, 1, D, device="cuda", dtype=dtype)
        ref_decode = attention64(qd, ck, cv, lw)[:, :, 0]
        for route in ("ttir", "jit"):
            splits = triton.cdiv(n, 512)
            mid = torch.empty(b * hq * splits, D, device="cuda", dtype=torch.float32)
            lse = torch.empty(b * hq * splits, device="cuda", dtype=torch.float32)
            q3 = qd[:, :, 0]
            a = dict(Q=q3, K=ck, V=cv, Mid=mid, Lse=lse, sm_scale=scale, kv_len=n,
                     n_splits=splits, stride_qb=q3.stride(0), stride_qh=q3.stride(1),
                     stride_kb=ck.stride(0), stride_kh=ck.stride(1), stride_kn=ck.stride(2),
                     stride_vb=cv.stride(0), stride_vh=cv.stride(1), stride_vn=cv.stride(2),
                     log_weights=lw, lw_stride_kb=lw.stride(0), lw_stride_kh=lw.stride(1),
                     lw_stride_kn=lw.stride(2))
            launch(f"decode_gqa_{tag}", a, (b, hkv, splits), route)
            check(f"decode_gqa_{tag}", route, combine(mid, lse, b, hq, splits), ref_decode)

            # The split-K decode that already takes log-weights of its own
            # (given zeros): ours are added on top. Batch 1 per launch.
            outs = []
            for bi in range(b):
                splits = triton.cdiv(n, 256)
                mid = torch.empty(hq * splits, D, device="cuda", dtype=torch.float32)
                lse = torch.empty(hq * splits, device="cuda", dtype=torch.float32)
                # The kernel's own log-weights (LW, zeros here); ours come
                # as LW_1.
                a = dict(Q=q3[bi], K=ck[bi], V=cv[bi], LW=torch.zeros_like(lw[bi]), Mid=mid,
                         Lse=lse, sm_scale=scale, kv_len=n, n_splits=splits,
                         stride_qh=q3.stride(1), stride_kh=ck.stride(1), stride_kn=ck.stride(2),
                         stride_vh=cv.stride(1), stride_vn=cv.stride(2), log_weights=lw[bi],
                         lw_stride_kh=lw.stride(1), lw_stride_kn=lw.stride(2))
                launch(f"split_k_decode_{tag}", a, (hq, splits), route)
                outs.append(combine(mid, lse, 1, hq, splits)[0])
            check(f"split_k_decode_{tag}", route, torch.stack(outs), ref_decode)

    run_flex(args, rows, check)
    converted = run_converted(args, lib, rows, check)
    print()
    print(table(rows))
    timing = time_decode(args, lib, compile_ttir, bench_graph_cycle, copies_beyond_l2, table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "triton-weighted.json"), "w") as f:
            json.dump(dict(device=dev, correctness=rows, timing=timing,
                           converted=converted), f, indent=1)
    return 0 if all(r["ok"] in ("yes", "n/a") for r in rows) else 1


def run_flex(args, rows, check):
    """Inductor's FlexAttention prefill kernel (the tem_flex_0 fixtures: B 1,
    Hq 8, Hkv 2, 512 tokens, d 64, causal block mask of 128-blocks; strides
    and sizes are constants in it), rewritten: launched with the block mask
    torch builds for it and log-weights, against float64 causal attention
    with the log-weights added."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask

    from balancekv.triton import compile_ttir
    from balancekv_bench import attention64
    b, hq, hkv, n, d = 1, 8, 2, 512, 64
    mask = create_block_mask(lambda b_, h_, q, kv: q >= kv, b, None, n, n, device="cuda")
    for tag, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        q = torch.randn(b, hq, n, d, device="cuda", dtype=dtype)
        k = torch.randn(b, hkv, n, d, device="cuda", dtype=dtype)
        v = torch.randn_like(k)
        lw = torch.log(torch.randint(1, 5, (b, hkv, n), device="cuda").float())
        out = torch.empty_like(q)
        lse = torch.empty(b, hq, n, device="cuda", dtype=torch.float32)
        mx = torch.empty_like(lse)
        kernel = compile_ttir(os.path.join(args.rewritten, f"flex_prefill_{tag}.ttir"))
        kernel[(n // 128, b, hq)](
            q, k, v, lse, mx, mask.kv_num_blocks.contiguous(), mask.kv_indices.contiguous(),
            mask.full_kv_num_blocks.contiguous(), mask.full_kv_indices.contiguous(), out,
            *new_values(kernel, dict(log_weights=lw)))
        # causal: query i sees keys 0..i (the same length: kv_len = n)
        check(f"flex_prefill_{tag} (Inductor)", "ttir", out,
              attention64(q, k, v, lw, causal=True))

        # Inductor's flex-decoding kernel (the temflexmask_2 fixtures: one
        # query, the GQA group's 4 heads as rows, the full block mask as one
        # 2^30-token block, 132 KV splits of which the first covers the 512
        # tokens): per split the running max (log2 units), sum and
        # unnormalised output, combined here as Inductor's second kernel does.
        splits = 132
        qd = torch.randn(b, hq, 1, d, device="cuda", dtype=dtype)
        m_out = torch.empty(b, splits, hq, device="cuda", dtype=torch.float32)
        l_out = torch.empty_like(m_out)
        acc = torch.empty(splits, hq, d, device="cuda", dtype=torch.float32)
        one = torch.ones(1, 1, 1, device="cuda", dtype=torch.int32)
        zero = torch.zeros(1, 1, 1, 1, device="cuda", dtype=torch.int32)
        unused = torch.zeros(1, device="cuda", dtype=torch.float32)
        kernel = compile_ttir(os.path.join(args.rewritten, f"flex_decode_{tag}.ttir"))
        kernel[(1, b * hkv, splits)](qd, k, v, m_out, l_out, one, zero, unused, unused, acc,
                                     *new_values(kernel, dict(log_weights=lw)))
        m_max = m_out.max(dim=1, keepdim=True).values           # [b, 1, hq]
        w = torch.exp2(m_out - m_max).nan_to_num(0.0)           # [b, splits, hq]
        out = (w[0, :, :, None] * acc).sum(0) / (w[0] * l_out[0]).sum(0)[:, None]
        check(f"flex_decode_{tag} (Inductor)", "ttir", out[None, :, None, :],
              attention64(qd, k, v, lw))


def run_converted(args, lib, rows, check):
    """The converted programs on the GPU: compression equal to our CUDA
    kernel's (kept tokens, log-weights; bit for bit) and, on the small
    shape, to the CPU reference's selection; weighted attention against
    float64. Times compression next to the CUDA kernel's."""
    import time

    import torch

    from balancekv.triton import TritonProgram
    from balancekv_bench import attention64, bench
    timings = []
    dtypes = {"f16": torch.float16, "bf16": torch.bfloat16}
    for name, b, h, n, d, dt, rounds, hq in CONVERTED:
        program = TritonProgram.load(os.path.join(args.rewritten, "converted_" + name))
        t0 = time.time()
        program.compile()
        t_compile = time.time() - t0
        k = torch.randn(b, h, n, d, device="cuda", dtype=dtypes[dt])
        v = torch.randn_like(k)
        ck, cv, lw = program.run("compress", k, v)
        params = lib.params(rounds=rounds)
        o = lib.compress_prepare(k, v, params)
        lib.compress(k, v, params, o)
        same = (torch.equal(ck, o["ck"]) and torch.equal(cv, o["cv"]) and
                torch.equal(lw, o["lw"]))
        note = ""
        if name == "small":
            idx, ref_lw = lib.reference(k, v, params)
            kept = torch.gather(k.cpu(), 2, idx.long()[..., None].expand(-1, -1, -1, d))
            ref_same = torch.equal(ck.cpu(), kept) and torch.equal(lw.cpu(), ref_lw)
            note = f", CPU reference: {'identical' if ref_same else 'DIFFERENT'}"
            same = same and ref_same
        rows.append(dict(kernel=f"converted compress {name} ({b}x{h}x{n}x{d} {dt}, T {rounds})",
                         route="plan", rel_err="identical to CUDA" + note if same else
                         "DIFFERENT", max_abs="", ok="yes" if same else "NO"))
        print(rows[-1], flush=True)
        q = torch.randn(b, hq, 1, d, device="cuda", dtype=dtypes[dt])
        (out,) = program.run("decode", q, ck, cv, lw)
        check(f"converted decode {name}", "plan", out, attention64(q, ck, cv, lw))
        t_triton = bench(lambda: program.run("compress", k, v), reps=10, warmup=2)
        t_cuda = bench(lambda: lib.compress(k, v, params, o), reps=20, warmup=3)
        t_dec = bench(lambda: program.run("decode", q, ck, cv, lw), reps=10, warmup=2)
        steps = []
        program.run("compress", k, v, profile=steps)
        slowest = sorted(steps, key=lambda s: -s[1])[:4]
        print("  slowest compress steps:", ", ".join(f"{k} {t:.2f} ms" for k, t in slowest))
        outs = lib.decode_prepare(q, ck, cv)
        t_dec_cuda = bench(lambda: lib.decode(q, ck, cv, lw, outs), reps=20, warmup=3)
        timings.append(dict(shape=f"{b}x{h}x{n}x{d} {dt}", rounds=rounds,
                            kernels=len(program.kernels),
                            compile_s=round(t_compile, 1),
                            triton_compress_ms=round(t_triton, 3),
                            cuda_compress_ms=round(t_cuda, 3),
                            triton_decode_ms=round(t_dec, 3),
                            cuda_decode_ms=round(t_dec_cuda, 3),
                            slowest=", ".join(f"{k} {t:.1f} ms" for k, t in slowest[:2])))
        print(timings[-1], flush=True)
    return timings


def new_values(kernel, values):
    """The values of the arguments the rewrite appended:
    `values["log_weights"]` for the log-weights (named LW, or LW_1 where the
    kernel has an LW of its own), the rest by name."""
    return [values["log_weights"] if name.startswith("LW") else values[name]
            for name in kernel.new_arg_names]


def combine(mid, lse, b, hq, splits):
    """Split-K partials (normalised per split) and their log-sum-exps -> the
    attention output [b, hq, D]."""
    import torch
    mid = mid.view(b, hq, splits, D)
    lse = lse.view(b, hq, splits)
    w = torch.softmax(torch.nan_to_num(lse, nan=-float("inf")), dim=-1)
    return (torch.nan_to_num(mid) * w[..., None]).sum(2)


def time_decode(args, lib, compile_ttir, bench_graph_cycle, copies_beyond_l2, table):
    """Decode over a compressed cache (B 8, Hq 32, Hkv 8, d 64, 32k tokens
    compressed 4x): the rewritten Triton split-K kernel vs our CUDA weighted
    decode vs FlexAttention (score_mod adds the log-weights) vs SDPA with the
    log-weights as a float mask. Median per call in a CUDA graph cycling
    copies of the cache beyond L2."""
    import torch
    import torch.nn.functional as F
    rows = []
    for rounds in (2, 4):
        b, hq, hkv, n_full = 8, 32, 8, 32768
        dtype = torch.bfloat16
        params = lib.params(rounds=rounds)
        k = torch.randn(b, hkv, n_full, D, device="cuda", dtype=dtype)
        v = torch.randn_like(k)
        o = lib.compress_prepare(k, v, params)
        lib.compress(k, v, params, o)
        ck, cv, lw = o["ck"], o["cv"], o["lw"]
        del k, v
        n = ck.shape[2]
        q = torch.randn(b, hq, 1, D, device="cuda", dtype=dtype)
        q3 = q[:, :, 0]
        sets = copies_beyond_l2([ck, cv, lw])
        kern = compile_ttir(os.path.join(args.rewritten, "decode_gqa_bf16.ttir"))
        splits = triton.cdiv(n, 512)
        mid = torch.empty(b * hq * splits, D, device="cuda", dtype=torch.float32)
        lse = torch.empty(b * hq * splits, device="cuda", dtype=torch.float32)

        def triton_call(s):
            c_k, c_v, c_lw = s
            kern[(b, hkv, splits)](q3, c_k, c_v, mid, lse, 1.0 / math.sqrt(D), n, splits,
                                   q3.stride(0), q3.stride(1), c_k.stride(0), c_k.stride(1),
                                   c_k.stride(2), c_v.stride(0), c_v.stride(1), c_v.stride(2),
                                   c_lw, c_lw.stride(0), c_lw.stride(1), c_lw.stride(2))
            return combine(mid, lse, b, hq, splits)
        t_triton = bench_graph_cycle([lambda s=s: triton_call(s) for s in sets])
        outs = [lib.decode_prepare(q, s[0], s[1]) for s in sets]
        t_ours = bench_graph_cycle([lambda s=s, oo=oo: lib.decode(q, s[0], s[1], s[2], oo)
                                    for s, oo in zip(sets, outs)])
        masks = [s[2].repeat_interleave(hq // hkv, 1)[:, :, None, :].to(dtype) for s in sets]
        t_sdpa = bench_graph_cycle([lambda s=s, mk=mk: F.scaled_dot_product_attention(
            q, s[0], s[1], attn_mask=mk, enable_gqa=True) for s, mk in zip(sets, masks)])
        try:
            from torch.nn.attention.flex_attention import flex_attention
            flex = torch.compile(flex_attention, dynamic=False)

            def flex_call(s):
                c_lw = s[2]

                def add_log_weight(score, bb, hh, qi, kv):
                    return score + c_lw[bb, hh // (hq // hkv), kv]
                return flex(q, s[0], s[1], score_mod=add_log_weight, enable_gqa=True)
            for s in sets:
                flex_call(s)
            t_flex = bench_graph_cycle([lambda s=s: flex_call(s) for s in sets])
        except Exception as e:  # report, go on
            print(f"flex_attention failed: {str(e).splitlines()[0][:200]}")
            t_flex = None
        rows.append(dict(shape=f"B {b} Hq {hq} Hkv {hkv} d {D}", tokens=n_full,
                         ratio=round(n_full / n, 2), kept=n,
                         triton_rewritten_us=round(t_triton * 1e3, 1),
                         balancekv_cuda_us=round(t_ours * 1e3, 1),
                         flex_score_mod_us=round(t_flex * 1e3, 1) if t_flex else "",
                         sdpa_mask_us=round(t_sdpa * 1e3, 1)))
        print(rows[-1], flush=True)
    print()
    print(table(rows))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepare", metavar="DIR")
    parser.add_argument("--rewritten", metavar="DIR")
    parser.add_argument("--lib")
    parser.add_argument("--out")
    parser.add_argument("--only-flex", action="store_true",
                        help="only the FlexAttention (Inductor) kernels")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
