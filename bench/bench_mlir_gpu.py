#!/usr/bin/env python3
"""The MLIR-generated GPU path on the GPU: correctness and speed next to the
hand-tuned CUDA kernels, in one run.

  bench/build_gpu_bench.sh            # here: MLIR -> cubin + host object
  python3 bench/bench_mlir_gpu.py     # on the GPU machine (carry build/)

Every function of build/gpu-bench/libbalancekv_gpu_bench.so was compiled by
--balancekv-gpu-pipeline from bench/gen_gpu_bench_mlir.py. Correctness:
compressed caches must equal the hand-tuned kernels' (which equal the CPU
reference; checked directly on the smallest shape) bit for bit, decode
outputs must match float64 attention. Speed: CUDA-event medians with the
host queued ahead of the GPU (a sleep kernel first), the same way for the
generated code, the hand-tuned kernels and PyTorch SDPA.
"""
import argparse
import ctypes
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

import gpu_bench_shapes as S
from balancekv_bench import Lib, attention64, rel

HERE = os.path.dirname(os.path.abspath(__file__))


def memref_type(rank):
    class MemRef(ctypes.Structure):
        _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                    ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
                    ("strides", ctypes.c_int64 * rank)]
    return MemRef


M3, M4 = memref_type(3), memref_type(4)


class CompressResult(ctypes.Structure):
    _fields_ = [("key", M4), ("value", M4), ("log_weights", M3)]


def describe(t):
    m = (M4 if t.dim() == 4 else M3)()
    m.allocated = m.aligned = t.data_ptr()
    m.offset = 0
    for i in range(t.dim()):
        m.sizes[i], m.strides[i] = t.shape[i], t.stride(i)
    return m


class Generated:
    """The compiled MLIR functions and the mgpu runtime they call."""

    def __init__(self, bench_lib, runtime_lib):
        self.rt = ctypes.CDLL(runtime_lib, mode=ctypes.RTLD_GLOBAL)
        self.rt.mgpuMemFree.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.rt.mgpuMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_size_t, ctypes.c_void_p]
        self.rt.balancekv_mgpu_set_stream.argtypes = [ctypes.c_void_p]
        self.lib = ctypes.CDLL(bench_lib)

    def stream(self):
        return torch.cuda.current_stream().cuda_stream

    def use_torch_stream(self, deferred):
        self.rt.balancekv_mgpu_set_stream(self.stream())
        self.rt.balancekv_mgpu_set_deferred_sync(int(deferred))

    def fetch(self, m, like):
        """Copies the device buffer of result `m` into a fresh tensor and
        frees the buffer (stream-ordered)."""
        t = torch.empty(tuple(m.sizes), dtype=like, device="cuda")
        self.rt.mgpuMemcpy(t.data_ptr(), m.aligned, t.numel() * t.element_size(),
                           self.stream())
        self.rt.mgpuMemFree(m.aligned, self.stream())
        return t

    def free(self, *ms):
        for m in ms:
            self.rt.mgpuMemFree(m.aligned, self.stream())

    def call(self, name, result, *tensors):
        """Calls _mlir_ciface_<name>(&result, &descriptor...) and returns
        the result descriptor(s)."""
        descs = [describe(t) for t in tensors]
        getattr(self.lib, "_mlir_ciface_" + name)(
            ctypes.byref(result), *[ctypes.byref(d) for d in descs])
        return result

    def compress(self, n, h, k, v):
        return self.call(S.compress_name(n, h), CompressResult(), k, v)

    def decode(self, b, n, r, q, k, v, lw):
        return self.call(S.decode_name(b, n, r), M4(), q, k, v, lw)


def queued(fn, reps=30, warmup=3):
    """Median CUDA-event time in ms per call, with the host enqueueing all
    calls while a sleep kernel holds the GPU (launch overheads hidden)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True),
               torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    torch.cuda._sleep(int(1e8))
    for s, e in events:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in events)
    return times[len(times) // 2]


def run_compress(gen, hand, rows, failures):
    for n, h in S.COMPRESS:
        torch.manual_seed(n + h)
        k = torch.randn(1, h, n, S.D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, h, n, S.D, device="cuda", dtype=torch.bfloat16)
        p = hand.params(rounds=2)
        o = hand.compress_prepare(k, v, p)
        hand.compress(k, v, p, o)
        gen.use_torch_stream(deferred=False)
        res = gen.compress(n, h, k, v)
        ck = gen.fetch(res.key, torch.bfloat16)
        cv = gen.fetch(res.value, torch.bfloat16)
        lw = gen.fetch(res.log_weights, torch.float32)
        torch.cuda.synchronize()
        same = (torch.equal(ck, o["ck"]) and torch.equal(cv, o["cv"])
                and torch.equal(lw, o["lw"]))
        rows_differ = int((ck != o["ck"]).any(-1).sum())
        if (n, h) == S.COMPRESS[0]:
            idx, ref_lw = hand.reference(k, v, p)
            gathered = torch.gather(k.cpu(), 2, idx.long()[..., None].expand(-1, -1, -1, S.D))
            same &= torch.equal(gathered, ck.cpu()) and torch.equal(ref_lw, lw.cpu())
        if not same:
            failures.append(f"compress N={n} H={h}: {rows_differ} rows differ")

        gen.use_torch_stream(deferred=True)

        def mlir_call():
            r = gen.compress(n, h, k, v)
            gen.free(r.key, r.value, r.log_weights)

        reps = 10 if n >= 131072 else 30
        t_mlir = queued(mlir_call, reps)
        t_hand = queued(lambda: hand.compress(k, v, p, o, indices=False), reps)
        gen.use_torch_stream(deferred=False)
        q = torch.randn_like(k)
        t_prefill = queued(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), reps)
        rows.append(dict(kind="compress", N=n, H=h, mlir_ms=round(t_mlir, 3),
                         hand_ms=round(t_hand, 3),
                         mlir_speed_vs_hand=round(t_hand / t_mlir, 2),
                         pct_of_prefill=round(100 * t_mlir / t_prefill, 1),
                         identical=same))
        print(rows[-1], flush=True)
        del k, v, q, o, ck, cv, lw
        torch.cuda.empty_cache()


def run_decode(gen, hand, rows, failures):
    for b, n, r in S.DECODE:
        torch.manual_seed(b * n + r)
        m = S.compressed_length(n, int(math.log2(r)))
        k = torch.randn(b, S.HKV, m, S.D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, S.HKV, m, S.D, device="cuda", dtype=torch.bfloat16)
        q = torch.randn(b, S.HQ, 1, S.D, device="cuda", dtype=torch.bfloat16)
        lw = torch.randint(0, 3, (b, S.HKV, m), device="cuda").float() * math.log(2)
        gen.use_torch_stream(deferred=False)
        out = gen.fetch(gen.decode(b, n, r, q, k, v, lw), torch.bfloat16)
        o = hand.decode_prepare(q, k, v)
        hand.decode(q, k, v, lw, o)
        torch.cuda.synchronize()
        err = rel(out, attention64(q, k, v, lw))
        err_hand = rel(o["out"], attention64(q, k, v, lw))
        if not err < 1e-2:
            failures.append(f"decode B={b} N={n} ratio={r}: rel err {err:.3g}")

        gen.use_torch_stream(deferred=True)
        t_mlir = queued(lambda: gen.free(gen.decode(b, n, r, q, k, v, lw)), 50)
        t_hand = queued(lambda: hand.decode(q, k, v, lw, o), 50)
        gen.use_torch_stream(deferred=False)
        kf = torch.randn(b, S.HKV, n, S.D, device="cuda", dtype=torch.bfloat16)
        vf = torch.randn_like(kf)
        t_full = queued(lambda: F.scaled_dot_product_attention(q, kf, vf, enable_gqa=True), 50)
        # What a user would do without us: SDPA over the compressed cache with
        # the log-weights as an additive float mask.
        mask = lw.repeat_interleave(S.HQ // S.HKV, 1)[:, :, None, :].to(torch.bfloat16)
        t_mask = queued(lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=True), 50)
        nbytes = k.numel() * 2 + v.numel() * 2 + lw.numel() * 4
        rows.append(dict(kind="decode", B=b, N=n, ratio=r, M=m,
                         mlir_us=round(t_mlir * 1e3, 1), hand_us=round(t_hand * 1e3, 1),
                         mlir_speed_vs_hand=round(t_hand / t_mlir, 2),
                         mlir_GBps=round(nbytes / (t_mlir * 1e-3) / 1e9),
                         speedup_vs_full_sdpa=round(t_full / t_mlir, 2),
                         speedup_vs_masked_sdpa=round(t_mask / t_mlir, 2),
                         rel_err=float(f"{err:.2g}"), hand_rel_err=float(f"{err_hand:.2g}")))
        print(rows[-1], flush=True)
        del k, v, q, lw, kf, vf, o, out, mask
        torch.cuda.empty_cache()


def report(failures):
    """Prints the failures and the verdict line; the exit status."""
    for msg in failures:
        print("FAIL", msg)
    print("ALL CORRECT" if not failures else f"{len(failures)} FAILED")
    return 1 if failures else 0


def table(rows, keys):
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def lib_args(description):
    """The command line of both GPU-path scripts: where the compiled MLIR,
    its runtime and the hand-tuned kernels are."""
    ap = argparse.ArgumentParser(description=description)
    build = os.path.join(HERE, "..", "build")
    ap.add_argument("--bench-lib", default=os.path.join(build, "gpu-bench", "libbalancekv_gpu_bench.so"))
    ap.add_argument("--runtime-lib", default=os.path.join(build, "lib", "libbalancekv_mlir_cuda_runtime.so"))
    ap.add_argument("--lib", default=os.path.join(build, "lib", "libbalancekv_cuda.so"))
    return ap


def main():
    ap = lib_args(__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", choices=["compress", "decode"])
    args = ap.parse_args()
    gen = Generated(args.bench_lib, args.runtime_lib)
    hand = Lib(args.lib)
    rows, failures = [], []
    if args.only != "decode":
        run_compress(gen, hand, rows, failures)
    if args.only != "compress":
        run_decode(gen, hand, rows, failures)
    comp = [r for r in rows if r["kind"] == "compress"]
    dec = [r for r in rows if r["kind"] == "decode"]
    text = (f"# MLIR-generated GPU path vs hand-tuned CUDA kernels ({torch.cuda.get_device_name()})\n\n"
            + table(comp, ["N", "H", "mlir_ms", "hand_ms", "mlir_speed_vs_hand", "pct_of_prefill", "identical"])
            + "\n\n" + table(dec, ["B", "N", "ratio", "M", "mlir_us", "hand_us", "mlir_speed_vs_hand",
                                   "mlir_GBps", "speedup_vs_full_sdpa", "speedup_vs_masked_sdpa",
                                   "rel_err", "hand_rel_err"]))
    ratios = [r["mlir_speed_vs_hand"] for r in rows]
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    text += f"\n\ngeometric mean of mlir speed / hand-tuned speed: {geo:.2f}\n"
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "mlir_gpu.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out, "mlir_gpu.json"), "w") as f:
            json.dump(rows, f, indent=1)
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
