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
