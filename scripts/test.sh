#!/usr/bin/env bash
# README command 2 (and CI): build everything, run every lit and GoogleTest
# test, and end with one line `N passed, N failed, N skipped`.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"

bash "$root/scripts/build.sh" || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

bash "$root/scripts/setup-triton.sh" "$build"
bash "$root/scripts/setup-python-package.sh" "$build"
bash "$root/scripts/setup-torch.sh" "$build"
bash "$root/scripts/setup-iree.sh" "$build"

source "$root/scripts/lit-suite.sh"
run_lit_suite "$build"

# The reliability suite (docs/reliability.md): the same tests on an
# ASan+UBSan build, then bounded fuzz runs. BALANCEKV_SANITIZER_SUITE=0
# skips it.
if [ "${BALANCEKV_SANITIZER_SUITE:-1}" != 0 ]; then
  sanlog="$build/sanitizers.log"
  bash "$root/scripts/sanitize.sh" 2>&1 | tee "$sanlog"
  line=$(grep -E "^sanitizers: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$" "$sanlog" | tail -n 1)
  if [ -n "$line" ]; then
    read -r sp sf ss <<<"$(echo "$line" | sed -E 's/^sanitizers: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')"
    passed=$((passed + sp)); failed=$((failed + sf)); skipped=$((skipped + ss))
  else
    failed=$((failed + 1)) # the sanitizer build itself failed
  fi
else
  echo "sanitizer suite skipped (BALANCEKV_SANITIZER_SUITE=0)"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
