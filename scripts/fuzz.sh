#!/usr/bin/env bash
# Runs one libFuzzer target of the sanitizer build (scripts/sanitize.sh).
# Usage: scripts/fuzz.sh balancekv-fuzz-mlir|balancekv-fuzz-ops
#          (--runs N | --seconds S) [libFuzzer flags...]
# --runs gives a reproducible run (seeds 1, 2, ...); --seconds a long one.
# Each crash, hang, leak or out-of-memory input is triaged from its report:
# a crash inside MLIR's own parser on mutated text (its stack runs through
# mlir::parseSourceString and never reaches a pass) is an upstream bug, kept
# under fuzz-findings/upstream/ and listed, and the run goes on; anything
# else is a finding of ours and ends the run with a failure. The corpus grows in $FUZZ_BUILD_DIR/fuzz-corpus/TARGET
# (seeded from test/ for the MLIR target, plus the committed test/Fuzz
# inputs); findings land in $FUZZ_BUILD_DIR/fuzz-findings/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(realpath -m "${FUZZ_BUILD_DIR:-$root/build-sanitize}")"
target="$1"; shift
runs=20000 seconds=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2" seconds=""; shift 2 ;;
    --seconds) seconds="$2" runs=""; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
binary="$build/bin/$target"
[ -x "$binary" ] || { echo "fuzz: $binary missing: run scripts/sanitize.sh"; exit 1; }
corpus="$build/fuzz-corpus/$target"
findings="$build/fuzz-findings"
mkdir -p "$corpus" "$findings/upstream"
if [ "$target" = balancekv-fuzz-mlir ] && [ -z "$(ls -A "$corpus")" ]; then
  python3 "$root/scripts/fuzz_corpus.py" "$corpus"
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# -timeout: a hang is a finding (the raise pass once walked 1e10 mask
# elements); -rss_limit_mb: so is a blow-up of memory.
flags=(-timeout=20 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1)
log="$findings/$target.log"
: > "$log"

# libFuzzer stops at the first crash. Crashes of MLIR's own parser on
# mutated text are upstream bugs (below), so the run goes on after one,
# from the grown corpus with the next seed, until the budget is spent; any
# other crash ends it. (Fork mode would go on by itself, but restarts a
# process per job and runs at a fifth of the speed.)
executed=0 start=$SECONDS attempt=0
budget_left() {
  if [ -n "$runs" ]; then [ "$executed" -lt "$runs" ]
  else [ $((SECONDS - start)) -lt "$seconds" ]; fi
}
status=0
while budget_left && [ "$attempt" -lt 200 ]; do
  attempt=$((attempt + 1))
  if [ -n "$runs" ]; then step=(-runs=$((runs - executed)) -seed=$attempt)
  else step=(-max_total_time=$((seconds - (SECONDS - start))) -seed=$attempt); fi
  before=$(ls "$findings" | grep -c "^$target-" || true)
  (cd "$findings" && "$binary" "${step[@]}" "${flags[@]}" \
    -artifact_prefix="$findings/$target-" "${extra[@]}" "$corpus" \
    "$root/test/Fuzz/$target") > "$findings/$target.attempt.log" 2>&1
  cat "$findings/$target.attempt.log" >> "$log"
  done_now=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' \
               "$findings/$target.attempt.log" | tail -n 1)
  [ -n "$done_now" ] || done_now=$(grep -oE "^#[0-9]+" \
    "$findings/$target.attempt.log" | tail -n 1 | tr -d '#')
  executed=$((executed + ${done_now:-0}))
  after=$(ls "$findings" | grep -c "^$target-" || true)
  [ "$after" -gt "$before" ] || break # ended without a crash: budget spent
  # Triage the new crash; stop unless it is upstream's.
  for input in "$findings/$target"-{crash,timeout,leak,oom}-*; do
    [ -e "$input" ] || continue
    report="$findings/$(basename "$input").report"
    cp "$findings/$target.attempt.log" "$report"
    if grep -q "mlir::parseSourceString" "$report" &&
       ! grep -q "balancekv-fuzz: FINDING" "$report"; then
      frame=$(grep -m1 -E "^ +#[0-9]+ .* in mlir::.*::parse\(" "$report" |
              sed -E 's/.* in //; s/\(.*//')
      echo "fuzz: upstream MLIR parser bug (not ours), in $frame: $(basename "$input")"
      # Out of the corpus too (libFuzzer names corpus files by their SHA-1),
      # so that the next run does not load it again.
      rm -f "$corpus/$(sha1sum "$input" | cut -d' ' -f1)"
      mv "$input" "$report" "$findings/upstream/"
    else
      echo "fuzz: FINDING: $input (report: $report)"
      status=1
    fi
  done
  [ $status -eq 0 ] || break
done
echo "fuzz: $target: $executed executions in $((SECONDS - start)) s, $attempt run(s)"
[ $status -eq 0 ] && echo "fuzz: $target: no finding of ours"
exit $status
