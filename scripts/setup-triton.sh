#!/usr/bin/env bash
# Installs triton==3.6.0 from PyPI into <build>/triton-venv for the Triton
# interop tests (test/Dialect/TritonCompat/triton-compile.test). When PyPI cannot be
# reached, says so and leaves no venv: lit then reports those tests as
# unsupported (skipped). Nothing is installed when the venv already works.
set -u
build="${1:?usage: setup-triton.sh BUILD_DIR}"
venv="$build/triton-venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import triton" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" >/dev/null 2>&1 &&
   timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check \
     triton==3.6.0 >/dev/null 2>&1; then
  echo "setup-triton: triton $("$venv/bin/python" -c 'import triton; print(triton.__version__)') in $venv"
else
  rm -rf "$venv"
  echo "setup-triton: PyPI unreachable or triton==3.6.0 unavailable; Triton compile tests will be skipped"
fi
exit 0
