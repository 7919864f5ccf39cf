#!/usr/bin/env python3
"""Dumps real Triton 3.6 TTIR for test/Dialect/TritonCompat/Inputs (run on a GPU machine).

  TRITON_KERNEL_DUMP=1 TRITON_DUMP_DIR=/tmp/tdump TRITON_ALWAYS_COMPILE=1 \
      python3 scripts/dump_triton_fixtures.py

Kernels: PyTorch FlexAttention (compiled by TorchInductor; prefill and
decode, f16 and bf16, GQA, causal) and two attention kernels written here in
Triton: a flash-attention forward and a split-K decode over a KV cache.
"""
import math

import torch
import triton
import triton.language as tl
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


from triton_attention_kernels import flash_fwd, split_k_decode  # noqa: E402,F401


def run_own(dtype):
    h, n, d = 4, 256, 64
    q, k, v = (torch.randn(h, n, d, device="cuda", dtype=dtype) for _ in range(3))
    o = torch.empty_like(q)
    for causal in (False, True):
        flash_fwd[(triton.cdiv(n, 64), h)](
            q, k, v, o, 1 / math.sqrt(d), n, q.stride(0), q.stride(1), k.stride(0),
            k.stride(1), v.stride(0), v.stride(1), o.stride(0), o.stride(1),
            CAUSAL=causal, BLOCK_M=64, BLOCK_N=64, HEAD_DIM=d)
    hq, hkv, m, splits = 8, 2, 1024, 4
    qd = torch.randn(hq, d, device="cuda", dtype=dtype)
    kd = torch.randn(hkv, m, d, device="cuda", dtype=dtype)
    vd = torch.randn(hkv, m, d, device="cuda", dtype=dtype)
    lw = torch.zeros(hkv, m, device="cuda")
    mid = torch.empty(hq, splits, d, device="cuda")
    lse = torch.empty(hq, splits, device="cuda")
    split_k_decode[(hq, splits)](qd, kd, vd, lw, mid, lse, 1 / math.sqrt(d), m, splits,
                                 qd.stride(0), kd.stride(0), kd.stride(1), vd.stride(0),
                                 vd.stride(1), GROUP=hq // hkv, BLOCK_N=64, HEAD_DIM=d,
                                 SPLIT_SIZE=m // splits)


def run_flex(dtype):
    flex = torch.compile(flex_attention, dynamic=False)
    b, hq, hkv, n, d = 1, 8, 2, 512, 64

    def causal(b_, h_, q_idx, kv_idx):
        return q_idx >= kv_idx

    q = torch.randn(b, hq, n, d, device="cuda", dtype=dtype)
    k = torch.randn(b, hkv, n, d, device="cuda", dtype=dtype)
    v = torch.randn(b, hkv, n, d, device="cuda", dtype=dtype)
    mask = create_block_mask(causal, b, None, n, n, device="cuda")
    flex(q, k, v, block_mask=mask, enable_gqa=True)           # prefill, causal
    qd = torch.randn(b, hq, 1, d, device="cuda", dtype=dtype)  # decode
    flex(qd, k, v, enable_gqa=True)


for dt in (torch.float16, torch.bfloat16):
    run_own(dt)
    run_flex(dt)
torch.cuda.synchronize()
print("dumped")
