#!/usr/bin/env bash
# Compiles the GPU-path benchmark here (MLIR, no GPU needed) into
# build/gpu-bench/libbalancekv_gpu_bench.so: generated MLIR ->
# --balancekv-gpu-pipeline (cubin via ptxas) -> host LLVM IR -> object ->
# shared library on build/lib/libbalancekv_mlir_cuda_runtime.so. Carry
# build/gpu-bench and build/lib to the GPU machine and run
# bench/bench_mlir_gpu.py there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build/gpu-bench"
llvm=/usr/lib/llvm-22/bin
export PATH="/usr/local/cuda/bin:$PATH"
mkdir -p "$out"
python3 "$root/bench/gen_gpu_bench_mlir.py" > "$out/bench.mlir"
"$root/build/bin/balancekv-opt" "$out/bench.mlir" \
  --balancekv-gpu-pipeline="chip=sm_90 features=+ptx80 format=bin" -o "$out/bench.llvm.mlir"
"$llvm/mlir-translate" --mlir-to-llvmir "$out/bench.llvm.mlir" -o "$out/bench.ll"
"$llvm/llc" -O2 -filetype=obj -relocation-model=pic "$out/bench.ll" -o "$out/bench.o"
"$llvm/clang++" -shared -fuse-ld=lld -o "$out/libbalancekv_gpu_bench.so" "$out/bench.o" \
  -L"$root/build/lib" -lbalancekv_mlir_cuda_runtime -Wl,-rpath,'$ORIGIN/../lib'
echo "$out/libbalancekv_gpu_bench.so"
