#!/usr/bin/env python3
"""Calls the weighted decode kernels a few times on one shape, for ncu:

  ncu -k regex:'decode|combine' --launch-skip 4 --launch-count 4 \\
      python3 bench/profile_decode.py --lib build/lib/libbalancekv_cuda.so \\
      --batch 8 --keys 8240
"""
import argparse

import torch

from balancekv_bench import Lib

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--keys", type=int, default=8240, help="compressed length M")
ap.add_argument("--calls", type=int, default=8)
args = ap.parse_args()
lib = Lib(args.lib)
b, hq, hkv, d = args.batch, 32, 8, 128
k = torch.randn(b, hkv, args.keys, d, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
lw = torch.zeros(b, hkv, args.keys, device="cuda")
o = lib.decode_prepare(q, k, v)
for _ in range(args.calls):
    lib.decode(q, k, v, lw, o)
torch.cuda.synchronize()
