#!/usr/bin/env bash
# Installs triton==3.6.0 from PyPI into <build>/triton-venv for the Triton
# interop tests (test/Dialect/TritonCompat/triton-compile.test). When PyPI cannot be
# reached, says so and leaves no venv: lit then reports those tests as
# unsupported (skipped). Nothing is installed when the venv already works.
set -u
build="${1:?usage: setup-triton.sh BUILD_DIR}"
source "$(dirname "$0")/venv-lib.sh"
venv="$build/triton-venv"
venv_ready "$venv" "import triton" && exit 0
if venv_install "$venv" /dev/null 900 triton==3.6.0; then
  echo "setup-triton: $(venv_versions "$venv" triton) in $venv"
else
  echo "setup-triton: PyPI unreachable or triton==3.6.0 unavailable; Triton compile tests will be skipped"
fi
exit 0
