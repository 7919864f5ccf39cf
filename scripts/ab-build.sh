#!/usr/bin/env bash
# Builds a variant of the CUDA kernel library for A/B runs on the device:
#   scripts/ab-build.sh NAME [kernels/cuda/FILE.cu=VARIANT.cu ...]
# compiles each replaced kernel source with the build's own nvcc command and
# links build/ab/NAME/libbalancekv_cuda.so from it and the build's other
# objects. Without replacements NAME is the library as built. Carry build/ab
# to the device and pass each library to bench/compare_*.py with --lib.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
name=$1; shift
out=$build/ab/$name
mkdir -p "$out"
cd "$build"
ninja --quiet balancekv_cuda
link=$(ninja -t commands lib/libbalancekv_cuda.so | tail -1)
for swap in "$@"; do
  file=${swap%%=*} src=$(realpath "${swap#*=}")
  obj=kernels/CMakeFiles/balancekv_cuda.dir/cuda/$(basename "$file").o
  cmd=$(ninja -t commands "$obj" | tail -1)
  cmd=${cmd//"$root/$file"/"$src"}
  cmd=${cmd//" -o $obj"/" -o $out/$(basename "$file").o"}
  cmd=${cmd//" -MF $obj.d"/" -MF $out/$(basename "$file").o.d"}
  (cd "$build" && eval "$cmd")
  link=${link//" $obj "/" $out/$(basename "$file").o "}
done
link=${link//" -o lib/libbalancekv_cuda.so "/" -o $out/libbalancekv_cuda.so "}
eval "$link"
echo "$out/libbalancekv_cuda.so"
