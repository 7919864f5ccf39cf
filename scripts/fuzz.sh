#!/usr/bin/env bash
# Runs one libFuzzer target of the sanitizer build (scripts/sanitize.sh).
# Usage: scripts/fuzz.sh balancekv-fuzz-mlir|balancekv-fuzz-ops
#          (--runs N | --seconds S) [libFuzzer flags...]
# --runs gives a reproducible run (seed 1); --seconds a long one. libFuzzer
# runs in fork mode and goes on after a crash; each crash, hang, leak or
# out-of-memory input is then run again and triaged: a crash inside MLIR's
# own parser on mutated text (its stack runs through mlir::parseSourceString
# and never reaches a pass) is an upstream bug, kept under
# fuzz-findings/upstream/ and listed; anything else is a finding of ours and
# fails the run. The corpus grows in $FUZZ_BUILD_DIR/fuzz-corpus/TARGET
# (seeded from test/ for the MLIR target, plus the committed test/Fuzz
# inputs); findings land in $FUZZ_BUILD_DIR/fuzz-findings/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(realpath -m "${FUZZ_BUILD_DIR:-$root/build-sanitize}")"
target="$1"; shift
limit=(-runs=20000 -seed=1)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) limit=(-runs="$2" -seed=1); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
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
flags=(-timeout=20 -rss_limit_mb=4096 -max_len=4096)
(cd "$findings" && "$binary" "${limit[@]}" "${flags[@]}" -fork=1 \
  -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
  -artifact_prefix="$findings/$target-" "${extra[@]}" "$corpus" \
  "$root/test/Fuzz/$target") > "$findings/$target.log" 2>&1
grep -E "^#[0-9]+: cov|INFO: fuzzed for|exec/s" "$findings/$target.log" | tail -n 3

status=0
for input in "$findings/$target"-{crash,timeout,leak,oom}-*; do
  [ -e "$input" ] || continue
  report="$findings/$(basename "$input").report"
  (cd "$findings" && "$binary" "${flags[@]}" "$input") > "$report" 2>&1
  if grep -q "mlir::parseSourceString" "$report" &&
     ! grep -q "balancekv-fuzz: FINDING" "$report"; then
    frame=$(grep -m1 -E "^ +#[0-9]+ .* in mlir::.*::parse\(" "$report" |
            sed -E 's/.* in //; s/\(.*//')
    echo "fuzz: upstream MLIR parser bug (not ours), in $frame: $(basename "$input")"
    mv "$input" "$report" "$findings/upstream/"
  else
    echo "fuzz: FINDING: $input (report: $report)"
    status=1
  fi
done
[ $status -eq 0 ] && echo "fuzz: $target: no finding of ours"
exit $status
