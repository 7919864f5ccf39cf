"""ncu target for the paged decode's one cell near the 5 % line: B 1 x 32k x
4 (M 8240), Hq 32, Hkv 8, d 128, bf16; three calls each of the dense decode,
the paged one at page 16 and at page 64 (NHD), in that order.

  ncu --kernel-name regex:decodeMma --launch-count 9 --section SpeedOfLight \
      --section WarpStateStats --metrics gpu__time_duration.sum,\
  smsp__warp_issue_stalled_barrier_per_warp_active.pct --csv --page raw \
      python3 bench/paged_ncu.py build/lib/libbalancekv_cuda.so
"""
import sys

import torch

from balancekv_bench import Lib, paged

lib = Lib(sys.argv[1])
torch.manual_seed(0)
b, hq, hkv, d, m = 1, 32, 8, 128, 8240
k = torch.randn(b, hkv, m, d, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
lw = torch.rand(b, hkv, m, device="cuda")
q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
o = lib.decode_prepare(q, k, v)
for _ in range(3):
    lib.decode(q, k, v, lw, o)
for page in (16, 64):
    (kp, vp), tab = paged([k, v], page, "NHD")
    for _ in range(3):
        lib.decode_paged(q, kp, vp, tab, page, m, lw, o, kv_heads=hkv, dv=d)
torch.cuda.synchronize()
print("done")
