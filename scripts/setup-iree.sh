#!/usr/bin/env bash
# Installs IREE's compiler and runtime (iree-base-compiler,
# iree-base-runtime, numpy) from PyPI into <build>/iree-venv for the IREE
# round-trip test (test/Transforms/balancekv-iree-roundtrip.test: our
# lowered program through iree-compile and iree-run-module). When PyPI
# cannot be reached, says so and leaves no venv: lit then reports that test
# as unsupported (skipped). Nothing is installed when the venv already works.
set -u
build="${1:?usage: setup-iree.sh BUILD_DIR}"
venv="$build/iree-venv"
if [ -x "$venv/bin/iree-compile" ] && [ -x "$venv/bin/iree-run-module" ] &&
   "$venv/bin/python" -c "import numpy" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" >/dev/null 2>&1 &&
   timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check \
     iree-base-compiler iree-base-runtime numpy >"$build/iree-venv.log" 2>&1 &&
   [ -x "$venv/bin/iree-compile" ] && [ -x "$venv/bin/iree-run-module" ]; then
  echo "setup-iree: $("$venv/bin/pip" list 2>/dev/null | grep -E "^iree-base" | tr -s " " | tr "\n" ";") in $venv"
else
  rm -rf "$venv"
  echo "setup-iree: PyPI unreachable or the install failed (see $build/iree-venv.log); the IREE round-trip test will be skipped"
fi
exit 0
