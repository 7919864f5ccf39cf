#!/usr/bin/env python3
"""One weighted-decode shape, called a few times, for ncu:

  ncu --kernel-name regex:decodeMma --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight ... python3 bench/profile_decode.py --lib L \
      [--tokens 32768 --batch 8 --ratio 4]

(bf16, Hq 32, Hkv 8, d 128, L 1: the benchmark grid's shape.)
"""
import argparse
import math

import torch

from balancekv_bench import Lib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ratio", type=int, default=4)
    ap.add_argument("--calls", type=int, default=6)
    args = ap.parse_args()
    lib = Lib(args.lib)
    hq, hkv, d, b = 32, 8, 128, args.batch
    m = lib.m(args.tokens, lib.params(rounds=int(math.log2(args.ratio))))
    ck = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
    cv = torch.randn_like(ck)
    lw = torch.randn(b, hkv, m, device="cuda") * 0.5
    q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
    o = lib.decode_prepare(q, ck, cv)
    for _ in range(args.calls):
        lib.decode(q, ck, cv, lw, o)
    torch.cuda.synchronize()
    print(f"decode B {b} M {m} ({(ck.numel() + cv.numel()) * 2 / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
