"""BalanceKV in Hugging Face transformers (5.x): a KV cache that compresses
each layer after the prefill and serves the decode steps from the compressed
cache, with the log-weights added to the logits.

    from balancekv.hf import BalanceKVCache, ATTENTION
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=ATTENTION)
    cache = BalanceKVCache(rounds=2)          # any balancekv.default_params field
    model.generate(ids, past_key_values=cache, max_new_tokens=64)

How it works: each layer's cache (`BalanceKVLayer`, a `DynamicLayer`) keeps
the prefill exact; at its first update after the prefill it compresses what
it holds with `torch.ops.balancekv.compress` (CPU: the C++ reference; CUDA:
our kernels) into M tokens plus log-weights, then appends new tokens with
weight 1 (log-weight 0). The attention function registered as `ATTENTION`
("balancekv") computes attention over a compressed layer with
`torch.ops.balancekv.weighted_decode` (up to 16 queries; more in PyTorch with
the same bias), and is SDPA for layers not compressed (the prefill). GQA
as in the model: query head h reads KV head h // (Hq / Hkv).

`get_seq_length()` stays the number of tokens seen, so positions (RoPE) are
those of the full sequence. Beam search, batch selection and cropping
(assisted decoding) carry the log-weights along. The compressed layers apply their
own causal mask: batches must not be padded (the attention raises if they
are; the prefill, exact, honours the padding).
"""
import torch
from transformers import AttentionInterface, AttentionMaskInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from . import torch_ops

ATTENTION = "balancekv"
MAX_DECODE_QUERIES = 16  # balancekv_weighted_decode_attention's limit

# The layer updated last: attention runs right after its layer's update, on
# the tensors that update returned (checked by identity below).
_last_layer = None


class BalanceKVLayer(DynamicLayer):
    def __init__(self, params=None, min_length=0, **kwargs):
        super().__init__(**kwargs)
        self.params = dict(params or {})
        self.min_length = min_length
        self.log_weights = None  # [B, Hkv, M + new tokens] once compressed
        self.seen = 0
        self.observed = None  # method adaptive: the prefill's last queries

    def update(self, key_states, value_states, *args, **kwargs):
        global _last_layer
        if (self.log_weights is None and self.is_initialized and
                self.seen > 0 and self.seen >= self.min_length):
            if self.params.get("method") == "adaptive":
                self.keys, self.values, self.log_weights = _compress_adaptive(
                    self.keys, self.values, self.observed, self.params)
                self.observed = None
            else:
                self.keys, self.values, self.log_weights = torch_ops.compress(
                    self.keys, self.values, **self.params)
        keys, values = super().update(key_states, value_states)
        if self.log_weights is not None:
            b, h, n = key_states.shape[:3]
            self.log_weights = torch.cat(
                [self.log_weights, self.log_weights.new_zeros((b, h, n))], -1)
        self.seen += key_states.shape[-2]
        _last_layer = self
        return keys, values

    def get_seq_length(self):
        return self.seen

    def get_mask_sizes(self, query_length):
        stored = self.keys.shape[-2] if self.is_initialized else 0
        return stored + query_length, 0

    def reset(self):
        super().reset()
        self.log_weights, self.seen, self.observed = None, 0, None

    # The log-weights follow the keys through beam search and batch edits.
    def reorder_cache(self, beam_idx):
        super().reorder_cache(beam_idx)
        if self.log_weights is not None:
            self.log_weights = self.log_weights.index_select(
                0, beam_idx.to(self.log_weights.device))

    def batch_repeat_interleave(self, repeats):
        super().batch_repeat_interleave(repeats)
        if self.log_weights is not None:
            self.log_weights = self.log_weights.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices):
        super().batch_select_indices(indices)
        if self.log_weights is not None:
            self.log_weights = self.log_weights[indices, ...]

    def crop(self, tokens_to_remove):
        # DynamicLayer.crop takes the (negative) count of tokens to drop.
        stored = self.keys.shape[-2] if self.is_initialized else 0
        super().crop(tokens_to_remove)
        dropped = stored - (self.keys.shape[-2] if self.is_initialized else 0)
        if dropped > 0:
            self.seen -= dropped
            if self.log_weights is not None:
                self.log_weights = self.log_weights[..., :-dropped]


class BalanceKVCache(DynamicCache):
    """A DynamicCache whose layers are compressed with BalanceKV after the
    prefill. Keyword arguments are balancekv.default_params fields (method,
    rounds, sink, recent, block_size, gamma, temperature, c0, seed, scale,
    budget); method "adaptive" runs on the CPU reference, observing each
    layer's last 64 prefill queries;
    layers holding fewer than `min_length` tokens after the prefill stay
    exact."""

    def __init__(self, min_length=0, **params):
        torch_ops.default_params(**params)  # reject unknown fields now
        self.params, self.min_length = params, min_length
        super().__init__()
        self.layer_class_to_replicate = self._new_layer

    def _new_layer(self):
        return BalanceKVLayer(self.params, self.min_length)

    def compressed_lengths(self):
        """Tokens kept per layer (after compression: M + new tokens; with
        method adaptive the mean over heads of the tokens kept, its padding
        not counted)."""
        return [(layer.keys.shape[-2] if layer.log_weights is None else
                 round(torch.isfinite(layer.log_weights).sum(-1).float().mean().item()))
                if layer.is_initialized else 0 for layer in self.layers]


def _weighted_attention(query, key, value, log_weights, scaling):
    """Attention over a compressed cache with more queries than the decode
    kernel takes: the same computation in PyTorch (causal over the last L)."""
    groups = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(groups, 1).float()
    v = value.repeat_interleave(groups, 1).float()
    bias = log_weights.repeat_interleave(groups, 1)[:, :, None, :]
    logits = query.float() @ k.transpose(2, 3) * scaling + bias
    l, m = query.shape[2], key.shape[2]
    future = torch.ones(l, m, dtype=torch.bool, device=query.device).triu(m - l + 1)
    logits = logits.masked_fill(future, float("-inf"))
    return (logits.softmax(-1) @ v).to(query.dtype)


OBSERVED_QUERIES = 64  # method adaptive's observation window


def _compress_adaptive(keys, values, observed, params):
    """Method adaptive on the CPU reference (docs/adaptive.md): the layer's
    last prefill queries observe; heads keep different numbers of tokens,
    the rest of their M slots padded (zero rows, log-weight -inf)."""
    from . import default_params, reference_compress_observed
    if observed is None:
        raise ValueError("balancekv: method adaptive needs the prefill's "
                         "queries (attention implementation 'balancekv')")
    b, h, n, d = keys.shape
    dv = values.shape[-1]
    hq, lobs = observed.shape[1], observed.shape[2]
    host = [t.detach().float().cpu().contiguous().numpy()
            for t in (keys, values, observed)]
    idx, lw, lens, m = reference_compress_observed(
        *host, (b, h, n, d), dv, hq, lobs, "f32", default_params(**params))
    idx = torch.tensor(idx, device=keys.device).view(b, h, m, 1)
    log_w = torch.tensor(lw, device=keys.device).view(b, h, m)
    pad = idx < 0
    rows = idx.clamp(min=0)
    ck = keys.gather(2, rows.expand(-1, -1, -1, d)).masked_fill(pad, 0)
    cv = values.gather(2, rows.expand(-1, -1, -1, dv)).masked_fill(pad, 0)
    return ck, cv, log_w


def balancekv_attention(module, query, key, value, attention_mask, scaling=None,
                        dropout=0.0, **kwargs):
    layer = _last_layer
    if layer is None or layer.log_weights is None or layer.keys is not key:
        if (layer is not None and layer.keys is key and layer.log_weights is None
                and layer.params.get("method") == "adaptive"):
            # A copy: a view would keep the whole prefill's queries alive.
            layer.observed = query[:, :, -OBSERVED_QUERIES:].detach().clone()
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, dropout=dropout, **kwargs)
    # Padding: a key that no query of its row sees (a causal chunk's keys are
    # each seen by its last query).
    if attention_mask is not None and attention_mask.dtype == torch.bool and \
            not bool(attention_mask.any(dim=-2).all()):
        raise ValueError("balancekv: padded batches are not supported over a "
                         "compressed cache")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if query.shape[2] <= MAX_DECODE_QUERIES:
        out = torch_ops.weighted_decode(query, key, value, layer.log_weights,
                                        scaling, causal=query.shape[2] > 1)
    else:
        out = _weighted_attention(query, key, value, layer.log_weights, scaling)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, balancekv_attention)
# SDPA's masks (boolean): without a mask function registered for it,
# transformers gives a custom attention no mask at all, and padding would
# pass unseen.
AttentionMaskInterface.register(ATTENTION, sdpa_mask)
