#!/usr/bin/env bash
# `pip install .` of this checkout into <build>/python-venv (scikit-build-core
# from PyPI builds libbalancekv_capi against the system MLIR 22 into the
# package), for test/Python/pip-package.test. When PyPI cannot be reached,
# says so and leaves no venv: lit then reports that test as unsupported.
# Reinstalls when the venv's package is older than the sources.
set -u
build="${1:?usage: setup-python-package.sh BUILD_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$build/python-venv"
stamp="$venv/.installed-from"
head="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$head" ] &&
   "$venv/bin/python" -c "import balancekv" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" >/dev/null 2>&1 &&
   (cd "$root" && timeout 2400 "$venv/bin/pip" install -q \
      --disable-pip-version-check . ) > "$build/python-venv.log" 2>&1; then
  echo "$head" > "$stamp"
  echo "setup-python-package: balancekv installed by pip into $venv"
else
  rm -rf "$venv"
  echo "setup-python-package: pip install . failed or PyPI unreachable (see $build/python-venv.log); the package test will be skipped"
fi
exit 0
