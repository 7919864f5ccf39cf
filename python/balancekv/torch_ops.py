"""PyTorch custom ops over balancekv (torch.library):

    torch.ops.balancekv.compress(key, value, *params) -> (k, v, log_w)
    torch.ops.balancekv.weighted_decode(q, k, v, log_w, scale, causal) -> o

CPU: the C++ reference (the oracle the CUDA kernels match), through
libbalancekv_capi. Fake (meta) implementations give torch.compile the
shapes. Call `compress(key, value, **overrides)` below for the library's
defaults. (CUDA implementations over libbalancekv_cuda are not registered
yet.)
"""
import ctypes

import torch

from . import (BalanceKVError, _DTYPES, _library, compressed_length,
               default_params)

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16",
                 torch.float32: "f32"}
_PARAM_ORDER = ["rounds", "block_size", "sink", "recent", "gamma",
                "temperature", "c0", "seed", "scale"]


def _dtype(t):
    if t.dtype not in _TORCH_DTYPES:
        raise BalanceKVError(f"dtype {t.dtype} not supported")
    return _DTYPES[_TORCH_DTYPES[t.dtype]]


def _params(method, rounds, block_size, sink, recent, gamma, temperature, c0,
            seed, scale):
    return default_params(method=method, rounds=rounds, block_size=block_size,
                          sink=sink, recent=recent, gamma=gamma,
                          temperature=temperature, c0=c0, seed=seed,
                          scale=scale)


@torch.library.custom_op("balancekv::compress", mutates_args=())
def _compress(key: torch.Tensor, value: torch.Tensor, method: str,
              rounds: int, block_size: int, sink: int, recent: int,
              gamma: float, temperature: float, c0: float, seed: int,
              scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = _params(method, rounds, block_size, sink, recent, gamma, temperature,
                c0, seed, scale)
    b, h, n, d = key.shape
    dv = value.shape[3]
    m = compressed_length(n, p)
    k, v = key.contiguous(), value.contiguous()
    idx = torch.empty((b, h, m), dtype=torch.int32)
    log_w = torch.empty((b, h, m), dtype=torch.float32)
    rc = _library().balancekv_reference_compress(
        _dtype(key), k.data_ptr(), v.data_ptr(), b, h, n, d, dv,
        ctypes.byref(p), idx.data_ptr(), log_w.data_ptr())
    if rc != 0:
        raise BalanceKVError(_library().balancekv_reference_error().decode())
    rows = idx.long()
    ck = torch.gather(k, 2, rows[..., None].expand(b, h, m, d))
    cv = torch.gather(v, 2, rows[..., None].expand(b, h, m, dv))
    return ck, cv, log_w


@_compress.register_fake
def _(key, value, method, rounds, block_size, sink, recent, gamma,
      temperature, c0, seed, scale):
    b, h, n, d = key.shape
    m = compressed_length(n, _params(method, rounds, block_size, sink, recent,
                                     gamma, temperature, c0, seed, scale))
    return (key.new_empty((b, h, m, d)), value.new_empty((b, h, m, value.shape[3])),
            key.new_empty((b, h, m), dtype=torch.float32))


@torch.library.custom_op("balancekv::weighted_decode", mutates_args=())
def _weighted_decode(query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, log_weights: torch.Tensor,
                     scale: float, causal: bool) -> torch.Tensor:
    b, hq, l, d = query.shape
    hkv, n, dv = key.shape[1], key.shape[2], value.shape[3]
    q, k, v = query.contiguous(), key.contiguous(), value.contiguous()
    lw = log_weights.contiguous().float()
    out = torch.empty((b, hq, l, dv), dtype=torch.float32)
    rc = _library().balancekv_reference_attention(
        _dtype(query), q.data_ptr(), k.data_ptr(), v.data_ptr(),
        lw.data_ptr(), b, hq, hkv, l, n, d, dv, scale, int(causal),
        out.data_ptr())
    if rc != 0:
        raise BalanceKVError(_library().balancekv_reference_error().decode())
    return out.to(query.dtype)


@_weighted_decode.register_fake
def _(query, key, value, log_weights, scale, causal):
    b, hq, l, _ = query.shape
    return query.new_empty((b, hq, l, value.shape[3]))


def compress(key, value, **overrides):
    """torch.ops.balancekv.compress with the library's defaults
    (default_params) and `overrides` (method, rounds, sink, ...)."""
    p = default_params(**overrides)
    method = {v: k for k, v in p.METHODS.items()}[p.method]
    return torch.ops.balancekv.compress(
        key, value, method, *[getattr(p, f) for f in _PARAM_ORDER])


def weighted_decode(query, key, value, log_weights, scale=0.0, causal=False):
    return torch.ops.balancekv.weighted_decode(query, key, value, log_weights,
                                               scale, causal)
