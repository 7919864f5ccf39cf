# Sourced by scripts/test.sh and scripts/sanitize.sh: runs the lit and
# GoogleTest suite of one build tree and counts its results.
# run_lit_suite BUILD_DIR  sets `passed`, `failed` and `skipped` from lit's
# summary (a non-zero lit exit with no failure counted is one failure).
run_lit_suite() {
  local build="$1" log="$1/test-results.log" status
  /usr/lib/llvm-22/bin/lit -sv "$build/test" "$build/test/Unit" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  count() { # sums lit's summary lines for the given result names
    local n=0 v name
    for name in "$@"; do
      v=$(sed -nE "s/^ *${name} *: *([0-9]+).*/\1/p" "$log" | tail -n 1)
      n=$((n + ${v:-0}))
    done
    echo "$n"
  }
  passed=$(count Passed "Expectedly Failed")
  failed=$(count Failed "Unexpectedly Passed" Unresolved "Timed Out")
  skipped=$(count Unsupported Skipped Excluded)
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
}
