import sys

import torch

import balancekv
from balancekv import torch_ops

torch.manual_seed(0)
b, hq, hkv, n, d = 1, 4, 2, 300, 16
q = torch.randn(b, hq, 1, d)
k = torch.randn(b, hkv, n, d)
v = torch.randn(b, hkv, n, d)

ck, cv, lw = torch_ops.compress(k, v, rounds=2, seed=3)
print("compressed", tuple(ck.shape), tuple(cv.shape), tuple(lw.shape))
out = torch_ops.weighted_decode(q, ck, cv, lw)
full = torch_ops.weighted_decode(q, k, v, torch.zeros(b, hkv, n))
# The reference's decode over the full cache equals SDPA (GQA repeated).
sdpa = torch.nn.functional.scaled_dot_product_attention(
    q, k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1))
print("full vs sdpa", (full - sdpa).abs().max().item() < 1e-5)
# Weighted decode = SDPA over the compressed cache with log w as a float mask.
rep = lambda x: x.repeat_interleave(hq // hkv, 1)
masked = torch.nn.functional.scaled_dot_product_attention(
    q, rep(ck), rep(cv), attn_mask=rep(lw)[:, :, None, :])
print("weighted vs sdpa+mask", (out - masked).abs().max().item() < 1e-5)

# Schemas, fake (meta) implementations and autograd registration pass
# torch's own checks; torch.compile traces the ops.
torch.library.opcheck(torch.ops.balancekv.compress.default,
                      (k, v, "balance", 2, 128, 32, 32, 4.0, 1.0, 0.025, 3, 0.0))
torch.library.opcheck(torch.ops.balancekv.weighted_decode.default,
                      (q, ck, cv, lw, 0.0, False))
args = ("balance", 2, 128, 32, 32, 4.0, 1.0, 0.025, 3, 0.0)
compiled = torch.compile(lambda q, k, v: torch.ops.balancekv.weighted_decode(
    q, *torch.ops.balancekv.compress(k, v, *args), 0.0, False),
    backend="eager", fullgraph=True)
print("compiled equal", torch.equal(compiled(q, k, v), out))

# The paged ops (CUDA) check their arguments before any kernel: the pool
# layout, the block table's type, the device.
pool = torch.zeros(4, 16, hkv, d)
for call, expect in [
        (lambda: torch_ops.compress_paged(pool, pool, torch.zeros(1, 4, dtype=torch.int32), 64, layout="XYZ"),
         "layout must be NHD or HND"),
        (lambda: torch_ops.compress_paged(pool, pool, torch.zeros(1, 4, dtype=torch.int64), 64),
         "block_table must be a contiguous int32"),
        (lambda: torch_ops.weighted_decode_paged(q, pool, pool, torch.zeros(1, 4, dtype=torch.int32),
                                                 torch.zeros(1, hkv, 64)),
         "the paged ops run on CUDA tensors"),
        (lambda: torch_ops.weighted_decode_paged(q, pool, pool, torch.zeros(q.shape[0], 4, dtype=torch.int32),
                                                 torch.zeros(1, hkv, 64),
                                                 kv_len=torch.zeros(q.shape[0], hkv + 1, dtype=torch.int32)),
         "kv_len must be [B] = ")]:
    try:
        call()
        print("paged check missing:", expect)
    except balancekv.BalanceKVError as e:
        print("paged check", expect in str(e))
