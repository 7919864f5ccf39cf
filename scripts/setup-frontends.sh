#!/usr/bin/env bash
# Installs the front ends whose exports test/Transforms/Inputs/frontend holds
# (jax[cpu], torch, iree-base-compiler, iree-base-runtime, iree-turbine, all
# from PyPI) into <build>/frontend-venv, for regenerating those fixtures:
#   scripts/setup-frontends.sh build
#   build/frontend-venv/bin/python scripts/export_frontend_attention.py
# Not part of the test run (the fixtures are committed). About 3 GB.
set -u
build="${1:?usage: setup-frontends.sh BUILD_DIR}"
source "$(dirname "$0")/venv-lib.sh"
venv="$build/frontend-venv"
venv_ready "$venv" "import jax, torch, iree.turbine" && exit 0
if venv_install "$venv" /dev/null 1800 \
     "jax[cpu]" torch iree-base-compiler iree-base-runtime iree-turbine; then
  echo "setup-frontends: $(venv_versions "$venv" 'jax|torch|iree[a-z-]*') in $venv"
else
  echo "setup-frontends: PyPI unreachable; fixtures cannot be regenerated"
  exit 1
fi
