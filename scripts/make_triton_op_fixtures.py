#!/usr/bin/env python3
"""Writes Triton 3.6 TTIR of kernels that use the `tt` ops beyond attention's
(tensor descriptors / TMA, join/split/cat, gather, histogram, clampf,
precise math, mulhiui, inline asm, map_elementwise, unsplat, bf16x3/bf16x6
dots, dot_scaled) into test/Dialect/TritonCompat/Inputs/ops_*.ttir, and the TTGIR (sm_90:
layouts, shared memory, wgmma) of the attention kernels of
scripts/dump_triton_fixtures.py into Inputs/ttgir_*.ttgir. No GPU needed:

  build/triton-venv/bin/python scripts/make_triton_op_fixtures.py

and writes the RUN lines of round-trip.test and triton-compile.test for every
fixture in Inputs.

Kernels whose PTX needs sm_100 (TMA gather/scatter) are compiled for it and
named *_sm100.ttir (scripts/triton_compile_check.py does the same).
"""
import os

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                   "Dialect", "TritonCompat", "Inputs")


@triton.jit
def descriptor_copy(X, Y, M, N, BM: tl.constexpr, BN: tl.constexpr):
    xd = tl.make_tensor_descriptor(X, shape=[M, N], strides=[N, 1], block_shape=[BM, BN])
    yd = tl.make_tensor_descriptor(Y, shape=[M, N], strides=[N, 1], block_shape=[BM, BN])
    pid = tl.program_id(0)
    t = xd.load([pid * BM, 0])
    yd.store([pid * BM, 0], t)


@triton.jit
def descriptor_reduce(X, M, N, BM: tl.constexpr, BN: tl.constexpr):
    xd = tl.make_tensor_descriptor(X, shape=[M, N], strides=[N, 1], block_shape=[BM, BN])
    t = xd.load([0, 0])
    xd.atomic_max([BM, 0], t)
    xd.atomic_min([BM, 0], t)
    xd.atomic_and([BM, 0], t)
    xd.atomic_or([BM, 0], t)
    xd.atomic_xor([BM, 0], t)


@triton.jit
def descriptor_gather_scatter(X, Y, M, N, BN: tl.constexpr):
    xd = tl.make_tensor_descriptor(X, shape=[M, N], strides=[N, 1], block_shape=[1, BN])
    yd = tl.make_tensor_descriptor(Y, shape=[M, N], strides=[N, 1], block_shape=[1, BN])
    rows = tl.arange(0, 8)
    t = xd.gather(rows, 0)
    yd.scatter(t, rows, 0)
    yd.atomic_add([0, 0], xd.load([0, 0]))


@triton.jit
def shapes_and_math(X, Y, Z, BN: tl.constexpr):
    offs = tl.arange(0, BN)
    x = tl.load(X + offs)
    y = tl.load(Y + offs)
    a, b = tl.split(tl.join(x, y))
    c = tl.cat(a, b, can_reorder=True)
    s = tl.sqrt_rn(a) + tl.div_rn(a, b + 1.0)
    s = tl.clamp(s, -1.0, 1.0) + tl.clamp(s, -2.0, 2.0, propagate_nan=tl.PropagateNan.ALL)
    i = offs.to(tl.uint32)
    h = tl.umulhi(i, i)
    hist = tl.histogram(i % 8, 8)
    g = tl.gather(x, (offs + 1) % BN, 0)
    r = tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [i], dtype=tl.uint32,
                                  is_pure=True, pack=1)
    tl.store(Z + offs, s + g + h.to(tl.float32) + r.to(tl.float32) + tl.sum(c) +
             tl.sum(hist).to(tl.float32))


@triton.jit
def twice(a):
    return a * 2.0


@triton.jit
def map_elementwise(X, Y, BN: tl.constexpr):
    offs = tl.arange(0, BN)
    tl.store(Y + offs, tl.map_elementwise(twice, tl.load(X + offs)))


@triton.jit
def dot_precisions(A, B, C, BM: tl.constexpr):
    r = tl.arange(0, BM)
    a = tl.load(A + r[:, None] * BM + r[None, :])
    b = tl.load(B + r[:, None] * BM + r[None, :])
    c = tl.dot(a, b, input_precision="bf16x3")
    d = tl.dot(a, b, input_precision="bf16x6")
    tl.store(C + r[:, None] * BM + r[None, :], c + d)


@triton.jit
def dot_scaled(A, AS, B, BS, C, M: tl.constexpr, N: tl.constexpr, K: tl.constexpr):
    rm = tl.arange(0, M)
    rn = tl.arange(0, N)
    rk = tl.arange(0, K)
    rs = tl.arange(0, K // 32)
    a = tl.load(A + rm[:, None] * K + rk[None, :])
    b = tl.load(B + rk[:, None] * N + rn[None, :])
    a_scale = tl.load(AS + rm[:, None] * (K // 32) + rs[None, :])
    b_scale = tl.load(BS + rn[:, None] * (K // 32) + rs[None, :])
    c = tl.dot_scaled(a, a_scale, "e4m3", b, b_scale, "e5m2")
    d = tl.dot_scaled(a, None, "e4m3", b, b_scale, "e5m2", fast_math=True)
    tl.store(C + rm[:, None] * N + rn[None, :], c + d)


@triton.jit
def unsplat(X, Y):
    tl.store(Y, tl.load(X + tl.arange(0, 1)).reshape(()))


KERNELS = [
    (descriptor_copy, {"X": "*fp16", "Y": "*fp16", "M": "i32", "N": "i32"}, {"BM": 64, "BN": 64}, 90),
    (descriptor_reduce, {"X": "*i32", "M": "i32", "N": "i32"}, {"BM": 64, "BN": 64}, 90),
    (descriptor_gather_scatter, {"X": "*fp16", "Y": "*fp16", "M": "i32", "N": "i32"}, {"BN": 64}, 100),
    (shapes_and_math, {"X": "*fp32", "Y": "*fp32", "Z": "*fp32"}, {"BN": 128}, 90),
    (map_elementwise, {"X": "*fp32", "Y": "*fp32"}, {"BN": 128}, 90),
    (dot_precisions, {"A": "*fp32", "B": "*fp32", "C": "*fp32"}, {"BM": 32}, 90),
    (unsplat, {"X": "*fp32", "Y": "*fp32"}, {}, 90),
    (dot_scaled, {"A": "*fp8e4nv", "AS": "*u8", "B": "*fp8e5", "BS": "*u8", "C": "*fp32"},
     {"M": 64, "N": 64, "K": 64}, 90),
]

from triton_attention_kernels import (attn_fwd_tma, decode_gqa_split_k,  # noqa: E402
                                      flash_fwd, flash_fwd_block_ptr, split_k_decode)


def flash_signature(dt):
    return {"Q": f"*{dt}", "K": f"*{dt}", "V": f"*{dt}", "O": f"*{dt}", "sm_scale": "fp32",
            "N_CTX": "i32", **{s: "i32" for s in ["stride_qh", "stride_qm", "stride_kh",
                                                  "stride_kn", "stride_vh", "stride_vn",
                                                  "stride_oh", "stride_om"]}}


def decode_signature(dt):
    return {"Q": f"*{dt}", "K": f"*{dt}", "V": f"*{dt}", "LW": "*fp32", "Mid": "*fp32",
            "Lse": "*fp32", "sm_scale": "fp32", "kv_len": "i32", "n_splits": "i32",
            **{s: "i32" for s in ["stride_qh", "stride_kh", "stride_kn", "stride_vh",
                                  "stride_vn"]}}


TTGIR = []
for dt, tag in (("bf16", "bf16"), ("fp16", "f16")):
    for causal in (False, True):
        TTGIR.append((f"ttgir_flash_fwd{'_causal' if causal else ''}_{tag}.ttgir",
                      flash_fwd, flash_signature(dt),
                      {"CAUSAL": causal, "BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": 64}))
    TTGIR.append((f"ttgir_split_k_decode_{tag}.ttgir", split_k_decode,
                  decode_signature(dt),
                  {"GROUP": 4, "BLOCK_N": 64, "HEAD_DIM": 64, "SPLIT_SIZE": 256}))

# More attention kernels, TTIR: the block-pointer and tensor-descriptor forms
# (Triton's tutorials) and a grouped split-K decode.
ATTENTION = []
for dt, tag in (("bf16", "bf16"), ("fp16", "f16")):
    ATTENTION.append((f"attn_block_ptr_{tag}.ttir", flash_fwd_block_ptr,
                      {"Q": f"*{dt}", "K": f"*{dt}", "V": f"*{dt}", "O": f"*{dt}",
                       "sm_scale": "fp32", "N_CTX": "i32",
                       **{f"stride_{t}{d}": "i32" for t in "qkvo" for d in
                          ("z", "h", "m" if t in "qo" else "n", "k")}, "H": "i32"},
                      {"BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": 64}))
    for stage, causal in ((1, ""), (3, "_causal")):
        for host in (False, True):
            desc = f"tensordesc<{dt}[%d,64]>"
            ptrs = ({"Q": desc % 128, "K": desc % 64, "V": desc % 64, "O": desc % 128}
                    if host else {t: f"*{dt}" for t in "QKVO"})
            ATTENTION.append((f"attn_tma{'_host' if host else ''}{causal}_{tag}.ttir",
                              attn_fwd_tma,
                              {"sm_scale": "fp32", "M": "*fp32", "Z": "i32", "H": "i32",
                               **ptrs, "N_CTX": "i32"},
                              {"HEAD_DIM": 64, "BLOCK_M": 128, "BLOCK_N": 64,
                               "STAGE": stage, "HOST_DESC": host}))
    ATTENTION.append((f"attn_decode_gqa_{tag}.ttir", decode_gqa_split_k,
                      {"Q": f"*{dt}", "K": f"*{dt}", "V": f"*{dt}", "Mid": "*fp32",
                       "Lse": "*fp32", "sm_scale": "fp32", "kv_len": "i32",
                       "n_splits": "i32",
                       **{s: "i32" for s in ["stride_qb", "stride_qh", "stride_kb",
                                             "stride_kh", "stride_kn", "stride_vb",
                                             "stride_vh", "stride_vn"]}},
                      {"GROUP": 4, "BLOCK_H": 16, "BLOCK_N": 64, "HEAD_DIM": 64,
                       "SPLIT_SIZE": 512}))

def compile_kernel(fn, sig, constexprs, arch=90):
    src = ASTSource(fn, signature={**sig, **{k: "constexpr" for k in constexprs}},
                    constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32))


for name, fn, sig, constexprs in ATTENTION:
    kernel = compile_kernel(fn, sig, constexprs)
    with open(os.path.join(OUT, name), "w") as f:
        f.write(kernel.asm["ttir"])
    print(name)
    # TTGIR too for the f16 ones: TMA kernels bring mbarriers, tensor maps
    # and async copies (ttng), shared-memory views (ttg).
    if name.endswith("_f16.ttir"):
        ttgir = "ttgir_" + name[:-len(".ttir")] + ".ttgir"
        with open(os.path.join(OUT, ttgir), "w") as f:
            f.write(kernel.asm["ttgir"])
        print(ttgir)

# TTGIR of TorchInductor's FlexAttention kernels, from their TTIR fixtures
# (dumped on a GPU machine): cp.async pipelines (ttg.async_copy_global_to_local,
# commit groups, waits, !ttg.async.token).
for ttir in ("tem_flex_0_f16", "temflexmask_2_f16"):
    kernel = triton.compile(os.path.join(OUT, ttir + ".ttir"), target=GPUTarget("cuda", 90, 32))
    with open(os.path.join(OUT, f"ttgir_{ttir}.ttgir"), "w") as f:
        f.write(kernel.asm["ttgir"])
    print(f"ttgir_{ttir}.ttgir")

for name, fn, sig, constexprs in TTGIR:
    kernel = compile_kernel(fn, sig, constexprs)
    with open(os.path.join(OUT, name), "w") as f:
        f.write(kernel.asm["ttgir"])
    print(name)

for fn, sig, constexprs, arch in KERNELS:
    kernel = compile_kernel(fn, sig, constexprs, arch)
    name = f"ops_{fn.__name__}{'_sm100' if arch == 100 else ''}.ttir"
    with open(os.path.join(OUT, name), "w") as f:
        f.write(kernel.asm["ttir"])
    print(name)


def write_test_run_lines():
    """Every fixture in Inputs gets its RUN lines in round-trip.test (custom ->
    generic -> custom is the identity) and triton-compile.test (Triton compiles
    our generic output to the fixture's PTX); the checks after them stay."""
    tests = os.path.join(OUT, "..")
    files = sorted(f for f in os.listdir(OUT) if f.endswith((".ttir", ".ttgir")))
    files = [f for f in files if f.endswith(".ttir")] + [f for f in files if f.endswith(".ttgir")]
    path = os.path.join(tests, "round-trip.test")
    text = open(path).read()
    head = text[:text.index("RUN:")]
    tail = text[text.rindex("RUN: diff"):]
    tail = tail[tail.index("\n") + 1:]
    runs = []
    for i, f in enumerate(files):
        runs += [f"RUN: balancekv-opt %S/Inputs/{f} --mlir-print-debuginfo > %t.{i}.a",
                 f"RUN: balancekv-opt %S/Inputs/{f} --mlir-print-op-generic --mlir-print-debuginfo \\",
                 f"RUN:   | balancekv-opt --mlir-print-debuginfo > %t.{i}.b",
                 f"RUN: diff %t.{i}.a %t.{i}.b"]
    open(path, "w").write(head + "\n".join(runs) + "\n" + tail)
    path = os.path.join(tests, "triton-compile.test")
    text = open(path).read()
    lines = [text[:text.index("RUN:")].rstrip("\n"), "RUN: rm -rf %t && mkdir -p %t"]
    lines += [f"RUN: balancekv-opt %S/Inputs/{f} --mlir-print-op-generic --mlir-print-debuginfo -o %t/{f}"
              for f in files]
    lines += ["RUN: env TRITON_CACHE_DIR=%t/cache %triton_python %balancekv_src_root/scripts/"
              "triton_compile_check.py --same-ptx-as %S/Inputs %t/*.ttir %t/*.ttgir \\",
              "RUN:   | FileCheck %s", "CHECK-NOT: FAIL"]
    lines += [f"CHECK-DAG: OK {f} {{{{[0-9]+}}}} same PTX" for f in files]
    lines += [f"CHECK: triton {triton.__version__}: {len(files)} compiled, 0 failed"]
    open(path, "w").write("\n".join(lines) + "\n")
    print(f"{len(files)} fixtures in round-trip.test and triton-compile.test")


write_test_run_lines()
