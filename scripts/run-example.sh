#!/usr/bin/env bash
# README command 1: install what is missing, build, rewrite the bundled
# decode-loop example with balancekv-opt, show the result, and run it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bash "$root/scripts/build.sh" balancekv-opt >/dev/null

opt="$build/bin/balancekv-opt"
runner=(/usr/lib/llvm-22/bin/mlir-runner -e main -entry-point-result=void
        -shared-libs=/usr/lib/llvm-22/lib/libmlir_c_runner_utils.so)
example="$root/examples/decode_loop.mlir"

echo "== examples/decode_loop.mlir after"
echo "   balancekv-opt --balancekv-compress-kv-cache --loop-invariant-code-motion"
echo "   (the decode loop of @main; compression hoisted out of scf.for):"
"$opt" "$example" --balancekv-compress-kv-cache --loop-invariant-code-motion \
  | sed -n '/func.func @main/,/^  }/p' | grep -E "balancekv\.|scf\.for|scf\.yield|func.func @main"
echo
echo "== running it (balancekv-opt ... --balancekv-cpu-pipeline | mlir-runner)"
echo "   relative error of the 32 decode steps vs exact attention, ratio 4:"
printf '   %-10s %s\n' exact "$("$opt" "$example" --balancekv-cpu-pipeline | "${runner[@]}")"
for m in balance uniform streaming knorm snapkv; do
  err=$("$opt" "$example" --balancekv-compress-kv-cache="method=$m" \
          --loop-invariant-code-motion --balancekv-cpu-pipeline | "${runner[@]}")
  printf '   %-10s %s\n' "$m" "$err"
done

# The MLIR GPU path: the same ops compiled by MLIR into sm_90 kernels.
gpu_example="$root/examples/gpu/compress_decode.mlir"
echo
echo "== examples/gpu/compress_decode.mlir after --balancekv-lower-to-gpu"
echo "   (host side of @compress: one walk + select per round, then the gather):"
"$opt" "$gpu_example" --balancekv-lower-to-gpu --canonicalize \
  | sed -n '/func.func @compress/,/^  }/p' \
  | grep -oE "gpu.launch_func +@[a-z_:@]+ blocks in \([^)]*\)" | sed 's/^/   /'
echo
echo "== --balancekv-gpu-pipeline=\"chip=sm_90 format=isa\": the PTX kernels"
tmp="$(mktemp -d)"
"$opt" "$gpu_example" --balancekv-gpu-pipeline="chip=sm_90 format=isa" -o "$tmp/out.mlir"
python3 "$root/scripts/extract-gpu-binary.py" "$tmp/out.mlir" > "$tmp/kernels.ptx"
grep -E "^\.visible \.entry" "$tmp/kernels.ptx" | sed 's/^/   /; s/($//'
echo "   tensor-core mma: $(grep -c 'mma.sync.aligned' "$tmp/kernels.ptx")," \
     "16-byte loads: $(grep -c 'ld.global.v4' "$tmp/kernels.ptx")," \
     "lines of PTX: $(wc -l < "$tmp/kernels.ptx")"
if ptxas="$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)" && [ -x "$ptxas" ]; then
  "$ptxas" -arch=sm_90 "$tmp/kernels.ptx" -o "$tmp/kernels.cubin" && echo "   ptxas -arch=sm_90: ok"
fi
if [ -e /dev/nvidia0 ]; then
  echo
  echo "== running it on the GPU (build/bin/balancekv-gpu-example)"
  bash "$root/scripts/build.sh" balancekv-gpu-example >/dev/null
  "$build/bin/balancekv-gpu-example"
else
  echo "   (no GPU here: build/bin/balancekv-gpu-example runs it against the reference on one)"
fi
rm -rf "$tmp"
