#!/usr/bin/env bash
# Installs IREE's compiler and runtime (iree-base-compiler,
# iree-base-runtime, numpy) from PyPI into <build>/iree-venv for the IREE
# round-trip test (test/Transforms/balancekv-iree-roundtrip.test: our
# lowered program through iree-compile and iree-run-module). When PyPI
# cannot be reached, says so and leaves no venv: lit then reports that test
# as unsupported (skipped). Nothing is installed when the venv already works.
set -u
build="${1:?usage: setup-iree.sh BUILD_DIR}"
source "$(dirname "$0")/venv-lib.sh"
venv="$build/iree-venv"
[ -x "$venv/bin/iree-compile" ] && [ -x "$venv/bin/iree-run-module" ] &&
  venv_ready "$venv" "import numpy" && exit 0
if venv_install "$venv" "$build/iree-venv.log" 900 \
     iree-base-compiler iree-base-runtime numpy &&
   [ -x "$venv/bin/iree-compile" ] && [ -x "$venv/bin/iree-run-module" ]; then
  echo "setup-iree: $(venv_versions "$venv" 'iree-base-(compiler|runtime)') in $venv"
else
  rm -rf "$venv"
  echo "setup-iree: PyPI unreachable or the install failed (see $build/iree-venv.log); the IREE round-trip test will be skipped"
fi
exit 0
