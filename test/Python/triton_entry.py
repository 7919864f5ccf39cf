"""balancekv.triton without a GPU: an unmodified @triton.jit attention kernel
compiled with its loops rewritten, through Triton's stage hook (the pass runs
in Triton's ttir stage) and through `ir_override` (a TTIR rewritten before);
a rewritten .ttir compiled as it is; a kernel with no attention refused with
the pass's remark. Launching needs a GPU: bench/triton_weighted_attention.py."""
import sys

from triton.backends.compiler import GPUTarget

from balancekv import triton as bkt
from triton_attention_kernels import flash_fwd

target = GPUTarget("cuda", 90, 32)
signature = {"Q": "*fp16", "K": "*fp16", "V": "*fp16", "O": "*fp16", "sm_scale": "fp32",
             "N_CTX": "i32", **{s: "i32" for s in [
                 "stride_qh", "stride_qm", "stride_kh", "stride_kn", "stride_vh",
                 "stride_vn", "stride_oh", "stride_om"]}}
constexprs = {"CAUSAL": False, "BLOCK_M": 64, "BLOCK_N": 64, "HEAD_DIM": 64}

hooked = bkt.compile_jit(flash_fwd, signature, constexprs, target=target)
ttir = hooked.compiled.asm["ttir"]
print("hook", hooked.new_args, "cubin", len(hooked.compiled.asm["cubin"]) > 0)
print("launcher signature tail", list(hooked.compiled.src.signature.items())[-3:])
# The log-weights are loaded and added (x log2 e) before the max is subtracted.
print("loads LW:", "tt.load" in ttir and "%LW" in ttir)
again = bkt.compile_jit(flash_fwd, signature, constexprs, target=target)
print("cache hit", again.new_args == hooked.new_args)

rewrite = bkt.rewrite_ttir(ttir)  # already rewritten: left alone
print("rewrite twice", rewrite.new_args, rewrite.remark)

path = sys.argv[1]
with open(path, "w") as f:
    f.write(bkt.rewrite_ttir(open(sys.argv[2]).read()).text)
overridden = bkt.compile_jit(flash_fwd, signature, constexprs, target=target, ttir=path)
print("ir_override", overridden.new_args)
print("ttir file", bkt.compile_ttir(path, target=target).new_args)

try:
    bkt.compile_ttir(bkt.rewrite_ttir(open(sys.argv[3]).read()), target=target)
except ValueError as e:
    print("refused:", e)
