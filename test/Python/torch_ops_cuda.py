"""torch.ops.balancekv on CUDA (our kernels) against the CPU implementation
(the C++ reference) on the same input bits: compression keeps the same
tokens with the same weights (bit for bit), weighted decode agrees within
the dtype's rounding; torch.compile traces both ops. Needs a GPU and
libbalancekv_cuda.so (BALANCEKV_CUDA_LIBRARY, or build/lib); run on the
device machine (bench/run_torch_cuda.sh). Prints one line per case and ends
with `torch cuda ops: N passed, N failed`.
"""
import sys

import torch

from balancekv import torch_ops

assert torch.cuda.is_available(), "needs a GPU"
torch.manual_seed(0)
passed = failed = 0


def report(name, ok, detail=""):
    global passed, failed
    passed += ok
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")


TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
for dtype in [torch.float16, torch.bfloat16, torch.float32]:
    for (b, hq, hkv, n, d, method, rounds) in [
            (1, 4, 4, 300, 64, "balance", 2), (2, 8, 2, 1500, 128, "balance", 3),
            (1, 9, 3, 2048, 64, "uniform", 2), (1, 2, 1, 20, 64, "balance", 4)]:
        k = torch.randn(b, hkv, n, d).to(dtype)
        v = torch.randn(b, hkv, n, d).to(dtype)
        name = f"{str(dtype)[6:]} B{b} Hq{hq} Hkv{hkv} N{n} D{d} {method} T{rounds}"
        gpu = torch_ops.compress(k.cuda(), v.cuda(), method=method, rounds=rounds)
        cpu = torch_ops.compress(k, v, method=method, rounds=rounds)
        same = all(torch.equal(g.cpu(), c) for g, c in zip(gpu, cpu))
        report("compress " + name, same, f"M {cpu[0].shape[2]}")
        for l in [1, 4]:
            q = torch.randn(b, hq, l, d).to(dtype)
            out_gpu = torch_ops.weighted_decode(q.cuda(), *gpu, causal=l > 1)
            out_cpu = torch_ops.weighted_decode(q, *cpu, causal=l > 1)
            err = float((out_gpu.cpu().float() - out_cpu.float()).abs().max())
            report(f"decode L{l} " + name, err <= TOL[dtype], f"max |diff| {err:.2e}")

# Non-contiguous views (the cache's layout in a larger buffer) are read with
# their strides.
big = torch.randn(1, 2, 600, 64, dtype=torch.float16, device="cuda")
k, v = big[:, :, :500], big[:, :, 100:]
same = all(torch.equal(g.cpu(), c) for g, c in zip(
    torch_ops.compress(k, v), torch_ops.compress(k.cpu(), v.cpu())))
report("compress strided views", same)


@torch.compile(fullgraph=True)
def step(q, k, v):
    ck, cv, lw = torch.ops.balancekv.compress(k, v, "balance", 2, 128, 32, 32, 4.0, 1.0,
                                              0.025, 0, 0.0)
    return torch.ops.balancekv.weighted_decode(q, ck, cv, lw, 0.0, False)


q = torch.randn(1, 8, 1, 128, dtype=torch.float16, device="cuda")
k = torch.randn(1, 2, 1000, 128, dtype=torch.float16, device="cuda")
v = torch.randn(1, 2, 1000, 128, dtype=torch.float16, device="cuda")
eager = torch_ops.weighted_decode(q, *torch_ops.compress(k, v))
report("torch.compile(fullgraph) = eager", torch.equal(step(q, k, v), eager))

try:
    torch_ops.weighted_decode(torch.randn(1, 1, 17, 64, device="cuda"), k[:, :1].float(),
                              v[:, :1].float(), torch.zeros(1, 1, 1000, device="cuda"))
    report("17 queries rejected", False)
except Exception as e:  # noqa: BLE001
    report("17 queries rejected", "query_len" in str(e) or "16" in str(e), repr(str(e)[:80]))

# The baselines the CUDA kernels do not run: a clear error, not a wrong answer.
try:
    torch_ops.compress(k, v, method="streaming")
    report("streaming on CUDA rejected", False)
except Exception as e:  # noqa: BLE001
    report("streaming on CUDA rejected", "balance and uniform" in str(e), repr(str(e)[:80]))

print(f"torch cuda ops: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
