#!/usr/bin/env bash
# On the GPU machine: the edge-case driver (examples/gpu/run_edge_cases.cpp:
# generated kernels and every C API entry on edge shapes, checked against the
# reference and run twice for identical bytes) and the GPU examples (the
# paged one included), plain and under each compute-sanitizer tool; or the
# programs named as arguments. Prints one line per run and a Markdown table;
# logs go to ${OUT:-.}. Built here (no GPU needed):
#   ninja -C build balancekv-gpu-edge-cases balancekv-gpu-example \
#     balancekv-gpu-example-runtime-calls balancekv-gpu-example-paged
# then carried: build/bin/<those four>, build/lib/libbalancekv_cuda.so,
# build/lib/libbalancekv_mlir_cuda_runtime.so.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-.}"
export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
compute-sanitizer --version | tail -n 1
table="| program | plain | memcheck | racecheck | initcheck | synccheck |\n|---|---|---|---|---|---|\n"
status=0
programs=("$@")
[ ${#programs[@]} -gt 0 ] || programs=(balancekv-gpu-edge-cases \
  balancekv-gpu-example balancekv-gpu-example-runtime-calls \
  balancekv-gpu-example-paged)
for program in "${programs[@]}"; do
  row="| $program |"
  "$root/build/bin/$program" > "$out/$program-plain.log" 2>&1
  rc=$?
  verdict=$([ $rc -eq 0 ] && grep -q '^PASS' "$out/$program-plain.log" && echo PASS || echo "FAIL ($rc)")
  [ "$verdict" = PASS ] || status=1
  row="$row $verdict |"
  echo "$program plain: $verdict"
  for tool in memcheck racecheck initcheck synccheck; do
    log="$out/$program-$tool.log"
    compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$root/build/bin/$program" > "$log" 2>&1
    rc=$?
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -n 1)
    if [ $rc -eq 0 ] && grep -q '^PASS' "$log"; then
      verdict="clean"
    else
      verdict="FAIL ($rc: ${summary:-see log})"; status=1
    fi
    row="$row $verdict |"
    echo "$program $tool: $verdict ${summary}"
  done
  table="$table$row\n"
done
printf "\n$table" | tee "$out/sanitize_gpu.md"
exit $status
