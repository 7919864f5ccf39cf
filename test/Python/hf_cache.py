"""balancekv.hf on a small Llama with random weights (CPU: the reference ops):
the cache compresses each layer after the prefill, positions stay those of
the full sequence, decode attention is the reference's weighted attention
over the compressed cache, and with rounds = 0 (nothing dropped) generation
equals the full cache's."""
import inspect

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from balancekv import torch_ops
from balancekv.hf import ATTENTION, BalanceKVCache

CACHE = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters \
    else "past_key_values"
torch.manual_seed(0)
config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     max_position_embeddings=1024)
model = LlamaForCausalLM(config).eval()
model.set_attn_implementation(ATTENTION)
ids = torch.randint(3, 300, (1, 200))


@torch.no_grad()
def greedy(cache, steps=8):
    logits = model(ids, **{CACHE: cache}, use_cache=True).logits[:, -1]
    tokens, all_logits = [int(logits.argmax(-1))], [logits]
    for _ in range(steps):
        logits = model(torch.tensor([[tokens[-1]]]), **{CACHE: cache}, use_cache=True).logits[:, -1]
        tokens.append(int(logits.argmax(-1)))
        all_logits.append(logits)
    return tokens, torch.cat(all_logits)


full_tokens, full_logits = greedy(DynamicCache())

# rounds = 0: every token kept with weight 1 -> the full cache's generation.
tokens, logits = greedy(BalanceKVCache(rounds=0))
print("rounds 0: same tokens", tokens == full_tokens,
      "max logit diff below 1e-4", float((logits - full_logits).abs().max()) < 1e-4)

# rounds = 2: sink 32 + middle 136 / 4 + recent 32 = 98 kept, then 8 appended.
cache = BalanceKVCache(rounds=2, seed=3)
tokens, logits = greedy(cache)
print("rounds 2: stored", cache.compressed_lengths(), "seen", cache.get_seq_length(),
      "log-weights", tuple(cache.layers[0].log_weights.shape))
# Layer 0's compressed cache is the reference's selection of its prefill cache.
full = DynamicCache()
with torch.no_grad():
    model(ids, **{CACHE: full}, use_cache=True)
ck, cv, lw = torch_ops.compress(full.layers[0].keys, full.layers[0].values, rounds=2, seed=3)
print("layer 0 = reference selection", torch.equal(cache.layers[0].keys[:, :, :98], ck),
      torch.equal(cache.layers[0].log_weights[:, :, :98], lw),
      "appended weight 1", bool((cache.layers[0].log_weights[:, :, 98:] == 0).all()))
print("rounds 2: first token (prefill is exact)", tokens[0] == full_tokens[0])

# More queries than the decode kernel takes (a 20-token chunk after
# compression): the PyTorch path, causal over the chunk; a token of the chunk
# does not see later ones, so its logits equal one-at-a-time decoding.
with torch.no_grad():
    chunked = BalanceKVCache(rounds=2, seed=3)
    model(ids, **{CACHE: chunked}, use_cache=True)
    nxt = torch.randint(3, 300, (1, 20))
    chunk_logits = model(nxt, **{CACHE: chunked}, use_cache=True).logits[0]
    stepped = BalanceKVCache(rounds=2, seed=3)
    model(ids, **{CACHE: stepped}, use_cache=True)
    step_logits = torch.cat([model(nxt[:, i:i + 1], **{CACHE: stepped}, use_cache=True).logits[0]
                             for i in range(20)])
print("chunk of 20 = one at a time", float((chunk_logits - step_logits).abs().max()) < 1e-4)

# Method adaptive: the prefill's last 64 queries observe each layer; heads
# keep different numbers of tokens in 2 x 98 slots (the rest -inf), the
# layer's mean at most 98; layer 0 is the reference's selection for those
# queries, and decoding runs on the padded cache.
adaptive = BalanceKVCache(method="adaptive", rounds=2)
tokens, logits = greedy(adaptive)
lw0 = adaptive.layers[0].log_weights
kept = torch.isfinite(lw0[..., :196]).sum(-1)
print("adaptive: slots", lw0.shape[-1] - 8, "kept per head", kept.tolist(),
      "mean within 98", bool(kept.float().mean() <= 98),
      "first token", tokens[0] == full_tokens[0])
with torch.no_grad():
    obs_q = {}
    def record(module, q, k, v, mask, **kw):
        obs_q[module.layer_idx] = q
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        return sdpa_attention_forward(module, q, k, v, mask, **kw)
    from transformers import AttentionInterface
    AttentionInterface.register("record", record)
    model.set_attn_implementation("record")
    model(ids, **{CACHE: DynamicCache()}, use_cache=True)
    model.set_attn_implementation(ATTENTION)
from balancekv.hf import _compress_adaptive
ck, cv, lw = _compress_adaptive(full.layers[0].keys, full.layers[0].values,
                                obs_q[0][:, :, -64:], {"method": "adaptive", "rounds": 2})
print("adaptive layer 0 = reference selection", torch.equal(adaptive.layers[0].keys[:, :, :196], ck),
      torch.equal(lw0[:, :, :196], lw))

# Beam search reorders the cache: the log-weights follow. With rounds = 0 it
# is DynamicCache's beam search; with rounds = 2 it runs on the compressed
# cache (the log-weights reordered with the keys).
def beams(cache):
    with torch.no_grad():
        return model.generate(ids, past_key_values=cache, max_new_tokens=6, num_beams=3,
                              do_sample=False, early_stopping=False)[0, 200:].tolist()


print("beam search, rounds 0 = full cache", beams(BalanceKVCache(rounds=0)) == beams(DynamicCache()))
beam_cache = BalanceKVCache(rounds=2)
print("beam search, rounds 2 tokens", len(beams(beam_cache)),
      "log-weights batch", beam_cache.layers[0].log_weights.shape[0])

# Cropping (assisted decoding) drops keys and their log-weights together.
crop = BalanceKVCache(rounds=2)
greedy(crop, steps=4)
crop.crop(-2)
print("crop", crop.get_seq_length(), crop.layers[0].keys.shape[-2],
      crop.layers[0].log_weights.shape[-1])

# A left-padded batch: the exact prefill honours the padding, decoding over
# the compressed cache refuses it instead of attending to the pad tokens.
padded = torch.ones(2, 200, dtype=torch.long)
padded[1, :10] = 0
try:
    with torch.no_grad():
        model.generate(ids.repeat(2, 1), attention_mask=padded,
                       past_key_values=BalanceKVCache(rounds=2), max_new_tokens=2,
                       do_sample=False)
    print("padded batch accepted")
except ValueError as e:
    print("padded batch:", e)

try:
    BalanceKVCache(round=2)
except Exception as e:  # noqa: BLE001
    print("error:", e)
