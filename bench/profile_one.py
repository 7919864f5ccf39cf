#!/usr/bin/env python3
"""One compress call and one decode call at benchmark sizes, for ncu:
  ncu --target-processes all -k regex:'walk|crossover|gather|decodeSplit|combine' \
      python3 bench/profile_one.py --lib build/lib/libbalancekv_cuda.so"""
import argparse

import torch

from balancekv_bench import Lib

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
args = ap.parse_args()
lib = Lib(args.lib)
k = torch.randn(1, 32, 32768, 128, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
p = lib.params(rounds=2)
o = lib.compress_prepare(k, v, p)
lib.compress(k, v, p, o, indices=False)
torch.cuda.synchronize()
b, hkv, m, d = 8, 8, 8240, 128
q = torch.randn(b, 32, 1, d, device="cuda", dtype=torch.bfloat16)
ck = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
cv = torch.randn_like(ck)
lw = torch.zeros(b, hkv, m, device="cuda")
od = lib.decode_prepare(q, ck, cv)
lib.decode(q, ck, cv, lw, od)
torch.cuda.synchronize()
print("done")
