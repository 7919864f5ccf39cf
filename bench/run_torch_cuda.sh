#!/usr/bin/env bash
# On the GPU machine (device tool; carry build/lib/libbalancekv_cuda.so):
# torch.ops.balancekv's CUDA implementations against the CPU reference
# (test/Python/torch_ops_cuda.py), then the Hugging Face cache on a
# SmolLM2-shaped model with random weights (the weights do not travel),
# CUDA kernels against the CPU path. Writes $OUT/torch-cuda.txt and
# $OUT/hf-cuda.json.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-/tmp}"
export PYTHONPATH="$root/python" PYTHONUNBUFFERED=1
export BALANCEKV_LIBRARY="$root/build/lib/libbalancekv_cuda.so"  # the reference's entries, no MLIR needed
export BALANCEKV_CUDA_LIBRARY="$BALANCEKV_LIBRARY"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
python3 "$root/test/Python/torch_ops_cuda.py" 2>&1 | tee "$out/torch-cuda.txt"
rc=${PIPESTATUS[0]}
python3 "$root/examples/huggingface/smollm2_compressed_cache.py" --random-weights \
  --device cuda --check-cpu --prompt-tokens 2048 --steps 16 --rounds 2 4 \
  --methods balance uniform \
  --json "$out/hf-cuda.json" 2>&1 | grep -v Warning | tee "$out/hf-cuda.txt"
exit $((rc | PIPESTATUS[0]))
