//===- Passes.td - BalanceKV conversion passes ---------------*- tablegen -*-===//

#ifndef BALANCEKV_CONVERSION_PASSES_TD
#define BALANCEKV_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def BalanceKVLowerToLoopsPass : Pass<"balancekv-lower-to-loops"> {
  let summary = "Lower balancekv ops to linalg, scf, tensor, arith and math";
  let description = [{
    `attention` and `weighted_attention` become a chain of `linalg.generic`
    ops in f32 (Q Kᵀ, scale + log-weights + masks, row max, exp, row sum,
    P V, normalise). `compress` computes exactly the spec's selection in
    f64. Method `balance` is decomposed into its stages (an `scf.for` over
    the rounds), each a `linalg.generic` whose body loops: the walk per
    (batch, KV head, block) with the Gram entries computed as needed and the
    signs packed in two i64 words, the crossover per (batch, KV head), the
    next round's state and the compressed layout per slot; Philox-4x32-10 is
    built from `arith` ops (bit-exact with the reference). Nothing is written
    element by element outside a linalg op, so compilers that form
    dispatches from linalg ops (IREE) take the result. The baselines
    (`uniform`, `knorm`, `snapkv`, `streaming`) are an `scf.for` nest per
    (batch, KV head). Method `adaptive` (a search over per-head plans, spec
    section 6 in docs/adaptive.md) becomes a call of the CPU reference's
    `balancekv_rt_reference_compress_<t>` (libbalancekv_capi.so, or
    libbalancekv_cuda.so) on host buffers. The result is on tensors and
    bufferizes with one-shot bufferization.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::cf::ControlFlowDialect", "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
}

def BalanceKVLowerToRuntimeCallsPass
    : Pass<"balancekv-lower-to-runtime-calls", "::mlir::ModuleOp"> {
  let summary = "Replace balancekv ops by calls into the CUDA kernels' C API";
  let description = [{
    The library-call pattern (as upstream's `convert-linalg-to-std`): each
    `compress` (methods `balance`, `uniform`), `weighted_attention` and
    decode-shaped `attention` becomes a `func.call` to
    `balancekv_rt_<op>_<f16|bf16|f32>` with its operands as memrefs
    (`bufferization.to_buffer`), freshly allocated result buffers
    (`memref.alloc`, handed back through `bufferization.to_tensor`) and the
    op's attributes as scalars. The declarations carry
    `llvm.emit_c_interface`; `kernels/cuda/MemRefShim.cpp` implements the
    `_mlir_ciface_` entry points over `balancekv_compress` and
    `balancekv_weighted_decode_attention`, so a compiler links
    `libbalancekv_cuda.so` and needs no CUDA of its own. The buffers must be
    device memory (e.g. after `gpu.alloc`-based bufferization); each call
    returns the C API status as an i32, and the entry points print a
    failure's message to stderr (the lowered code does not branch on it).

    Ops the kernels do not cover are diagnosed (other compression methods,
    more than 16 queries, value dims other than 32/64/128/256, `kv_len`
    that is not i32).

    Paged KV caches: where `compress`, `attention` or `weighted_attention`
    read key and value from `balancekv.gather_pages` of one block table
    (pools of one layout, a page size that is a power of two up to 1024;
    `kv_len` per sequence or per KV head), the call goes to the `_paged_`
    entry point with the pools and the table, and the gathers go away; any
    other `gather_pages` becomes its `linalg` gather.

    With `device-alloc`, results are `gpu.alloc`ed (device memory the caller
    owns) instead of `memref.alloc`ed, so that host code compiled by
    `--balancekv-runtime-calls-pipeline` runs as is when its operands are
    device buffers; a `gather_pages` the kernels do not read in place is
    then an error (its gather would be a host loop over device memory).
  }];
  let options = [
    Option<"deviceAlloc", "device-alloc", "bool", /*default=*/"false",
           "Allocate results with gpu.alloc (device memory)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect", "::mlir::tensor::TensorDialect"
  ];
}

def BalanceKVLowerToGPUPass
    : Pass<"balancekv-lower-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower balancekv ops to gpu.func kernels and gpu.launch_func";
  let description = [{
    Generates the GPU code of our ops with MLIR itself (no hand-written
    CUDA), into one `gpu.module @balancekv_kernels` (kernels are shared by
    ops with the same static configuration); the module gets
    `gpu.container_module`.

    - `compress` (method `balance`, static shapes, `block_size <= 128`):
      per round a walk kernel with one workgroup per (block, head, batch)
      (the block's rows and the Gram G in dynamic workgroup memory, G on
      tensor cores with `nvvm.mma.sync` for 16-bit rows, by 4x4 FFMA
      register tiles in f32 otherwise; the walk in one warp, each lane
      keeping the running sums S_k of its rows in registers and adding
      G[i][k] sigma_i after step i, S_i broadcast by `gpu.shuffle`) and a select
      kernel with one workgroup per (head, batch) (the spec's crossover as
      a block scan of sign counts, then a scan-based compaction); an init
      and a gather kernel around them. Kept indices equal the reference's
      for the same seed on well-conditioned input (f32 instead of f64).
    - `weighted_attention` and `attention` (static shapes, at most 16
      queries, D and Dv up to 256): a split-K decode kernel (one warp per
      key for the logits, GQA query heads sharing each loaded row) and a
      combine kernel.

    Operands become read-only buffers (`bufferization.to_buffer`), results
    and scratch are `gpu.alloc`ed (scratch is freed with `gpu.dealloc`;
    results are device buffers owned by the caller), handed back through
    `bufferization.to_tensor`, so one-shot bufferization runs after this
    pass. Operand buffers must be device-accessible. Unsupported ops get a
    diagnostic and the module is left unchanged.
  }];
  let options = [
    Option<"smCount", "sm-count", "int64_t", /*default=*/"132",
           "Multiprocessors of the target (sizes the split-K grid)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def BalanceKVLoopsToTritonPass
    : Pass<"balancekv-loops-to-triton", "::mlir::ModuleOp"> {
  let summary = "Bufferized loops of balancekv's lowering as Triton kernels "
                "and a launch plan";
  let description = [{
    Takes functions in the bufferized loop form of balancekv's ops (what
    `--balancekv-lower-to-loops`, one-shot bufferization and
    `convert-linalg-to-parallel-loops` produce; `--balancekv-convert-to-triton`
    runs all of it): static identity-layout memrefs, top-level
    `scf.parallel` loops, allocations, copies, and host loops with constant
    bounds (the rounds), which are unrolled.

    Each `scf.parallel` becomes a public `tt.func` (Triton 3.6 TTIR) with
    one program per iteration point: the last loop dim on the grid's x, the
    ones before on y and z (all linearised into x when there are more than
    three or y/z would exceed 65535); the buffers it reads and writes are
    `!tt.ptr` arguments addressed row-major; `index` arithmetic is i64; the
    body's `scf.for`/`scf.if`, `arith` and `math` ops stay as they are
    (Triton takes them), `memref.load`/`store` become `tt.load`/`tt.store`.

    The host function is replaced by a launch plan, a JSON string in the
    module attribute `balancekv.triton_plans` (one entry per function):
    `inputs` and `buffers` (name, shape, Triton dtype), `steps` (a launch:
    kernel, grid, buffer arguments; or a copy), `outputs` (buffer and
    shape: a result may be a reshaped view of a buffer).
    `python/balancekv/triton.py` runs plans with Triton. Anything else in the
    host function, a kernel reading a non-constant host value, or dynamic
    shapes are errors naming the op.
  }];
  let dependentDialects = ["::balancekv::tt::TTDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // BALANCEKV_CONVERSION_PASSES_TD
