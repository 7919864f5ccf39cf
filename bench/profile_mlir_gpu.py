#!/usr/bin/env python3
"""One compress (32k x 32 heads) and one decode (B 1, 32k, x4 and B 8, 32k,
x4) of the MLIR GPU path, for `ncu --kernel-name regex:balancekv ...`."""

import torch

import bench_mlir_gpu as B
import gpu_bench_shapes as S

gen = B.Generated("build/gpu-bench/libbalancekv_gpu_bench.so",
                  "build/lib/libbalancekv_mlir_cuda_runtime.so")
gen.use_torch_stream(False)
n, h = 32768, 32
k = torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
r = gen.compress(n, h, k, v)
gen.free(r.key, r.value, r.log_weights)
for b in (1, 8):
    m = S.compressed_length(n, 2)
    k = torch.randn(b, 8, m, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    q = torch.randn(b, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
    lw = torch.zeros(b, 8, m, device="cuda")
    gen.free(gen.decode(b, n, 4, q, k, v, lw))
torch.cuda.synchronize()
