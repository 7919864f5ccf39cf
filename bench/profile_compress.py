#!/usr/bin/env python3
"""Compresses one cache a few times, for ncu:

  ncu -k regex:walkRound --launch-count 1 \\
      python3 bench/profile_compress.py --lib build/lib/libbalancekv_cuda.so \\
      --heads 32 --tokens 32768
"""
import argparse

import torch

from balancekv_bench import Lib, compress_cache

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--tokens", type=int, default=32768)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--calls", type=int, default=2)
args = ap.parse_args()
lib = Lib(args.lib)
k, v = compress_cache(args.heads, args.tokens)
p = lib.params(rounds=args.rounds)
o = lib.compress_prepare(k, v, p)
for _ in range(args.calls):
    lib.compress(k, v, p, o, indices=False)
torch.cuda.synchronize()
