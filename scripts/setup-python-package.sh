#!/usr/bin/env bash
# `pip install .` of this checkout into <build>/python-venv (scikit-build-core
# from PyPI builds libbalancekv_capi against the system MLIR 22 into the
# package), for test/Python/pip-package.test. When PyPI cannot be reached,
# says so and leaves no venv: lit then reports that test as unsupported.
# Reinstalls when the venv's package is older than the sources.
set -u
build="${1:?usage: setup-python-package.sh BUILD_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/venv-lib.sh"
venv="$(cd "$build" && pwd)/python-venv"
stamp="$venv/.installed-from"
head="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$head" ] && venv_ready "$venv" "import balancekv"; then
  exit 0
fi
: >"$build/python-venv.log"
if (cd "$root" && venv_install "$venv" "$build/python-venv.log" 2400 .); then
  echo "$head" > "$stamp"
  echo "setup-python-package: balancekv installed by pip into $venv"
else
  echo "setup-python-package: pip install . failed or PyPI unreachable (see $build/python-venv.log); the package test will be skipped"
fi
exit 0
