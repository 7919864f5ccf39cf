#!/usr/bin/env bash
# Installs the front ends whose exports test/Transforms/Inputs/frontend holds
# (jax[cpu], torch, iree-base-compiler, iree-base-runtime, iree-turbine, all
# from PyPI) into <build>/frontend-venv, for regenerating those fixtures:
#   scripts/setup-frontends.sh build
#   build/frontend-venv/bin/python scripts/export_frontend_attention.py
# Not part of the test run (the fixtures are committed). About 3 GB.
set -u
build="${1:?usage: setup-frontends.sh BUILD_DIR}"
venv="$build/frontend-venv"
if [ -x "$venv/bin/python" ] &&
   "$venv/bin/python" -c "import jax, torch, iree.turbine" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" >/dev/null 2>&1 &&
   timeout 1800 "$venv/bin/pip" install -q --disable-pip-version-check \
     "jax[cpu]" torch iree-base-compiler iree-base-runtime iree-turbine \
     >/dev/null 2>&1; then
  echo "setup-frontends: $("$venv/bin/pip" list 2>/dev/null | grep -Ei '^(jax|torch|iree)' | tr -s ' ' | tr '\n' ';') in $venv"
else
  rm -rf "$venv"
  echo "setup-frontends: PyPI unreachable; fixtures cannot be regenerated"
  exit 1
fi
