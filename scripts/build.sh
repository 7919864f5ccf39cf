#!/usr/bin/env bash
# Configures (once) and builds balancekv into ${BUILD_DIR:-build}.
# Usage: scripts/build.sh [ninja targets...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"

bash "$root/scripts/setup.sh"

if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    $( [ -x /usr/local/cuda/bin/nvcc ] && echo -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc ) \
    ${BALANCEKV_CMAKE_ARGS:-} >"$build.configure.log" 2>&1 \
    || { cat "$build.configure.log"; exit 1; }
fi
ninja -C "$build" "$@"
