#!/usr/bin/env bash
# Runs one libFuzzer target of the sanitizer build (scripts/sanitize.sh).
# Usage: scripts/fuzz.sh balancekv-fuzz-mlir|balancekv-fuzz-ops
#          (--runs N | --seconds S) [--jobs J] [libFuzzer flags...]
# --runs gives a reproducible run (fixed seed); --seconds a long one. The
# corpus grows in $FUZZ_BUILD_DIR/fuzz-corpus/TARGET (seeded from test/ for
# the MLIR target); findings land in $FUZZ_BUILD_DIR/fuzz-findings/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(realpath -m "${FUZZ_BUILD_DIR:-$root/build-sanitize}")"
target="$1"; shift
limit=(-runs=20000 -seed=1)
jobs=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) limit=(-runs="$2" -seed=1); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --jobs) jobs=(-jobs="$2" -workers="$2"); shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
binary="$build/bin/$target"
[ -x "$binary" ] || { echo "fuzz: $binary missing: run scripts/sanitize.sh"; exit 1; }
corpus="$build/fuzz-corpus/$target"
findings="$build/fuzz-findings"
mkdir -p "$corpus" "$findings"
if [ "$target" = balancekv-fuzz-mlir ] && [ -z "$(ls -A "$corpus")" ]; then
  python3 "$root/scripts/fuzz_corpus.py" "$corpus"
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# -timeout: a hang is a finding (the raise pass once walked 1e10 mask
# elements); -rss_limit_mb: so is a blow-up of memory.
cd "$findings" && "$binary" "${limit[@]}" "${jobs[@]}" -timeout=20 \
  -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$findings/$target-" "${extra[@]}" "$corpus" \
  "$root/test/Fuzz/$target"
