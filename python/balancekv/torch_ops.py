"""PyTorch custom ops over balancekv (torch.library):

    torch.ops.balancekv.compress(key, value, *params) -> (k, v, log_w)
    torch.ops.balancekv.weighted_decode(q, k, v, log_w, scale, causal) -> o

and, CUDA only, over paged KV caches as serving engines hold them (a pool of
pages and a block table; see balancekv_page_pool in BalanceKVRuntime.h):

    compress_paged(key_pool, value_pool, block_table, n, layout, **params)
    weighted_decode_paged(q, key_pool, value_pool, block_table, log_w, ...)

CPU: the C++ reference (the oracle the CUDA kernels match), through
libbalancekv_capi. CUDA: the hand-tuned kernels of libbalancekv_cuda.so (on
the tensors' current stream; the library is looked for next to this module,
then in $BALANCEKV_CUDA_LIBRARY, then in the build tree's lib/). Fake (meta)
implementations give torch.compile the shapes. Call `compress(key, value,
**overrides)` below for the library's defaults.
"""
import ctypes
import math
import os

import torch

from . import (BalanceKVError, _DTYPES, _library, compressed_length,
               default_params)

_TORCH_DTYPES = {torch.float16: "f16", torch.bfloat16: "bf16",
                 torch.float32: "f32"}
_PARAM_ORDER = ["rounds", "block_size", "sink", "recent", "gamma",
                "temperature", "c0", "seed", "scale"]


class _Tensor(ctypes.Structure):
    """balancekv_tensor / balancekv_mutable_tensor (BalanceKVRuntime.h)."""
    _fields_ = [("data", ctypes.c_void_p), ("strides", ctypes.c_int64 * 4)]


def _view(t):
    return _Tensor(t.data_ptr(), (ctypes.c_int64 * 4)(*t.stride()))


class _PagePool(ctypes.Structure):
    """balancekv_page_pool: element strides of [page, slot, head, dim]."""
    _fields_ = [("data", ctypes.c_void_p), ("strides", ctypes.c_int64 * 4)]


class _BlockTable(ctypes.Structure):
    _fields_ = [("block_table", ctypes.c_void_p),
                ("max_pages", ctypes.c_int64), ("page_size", ctypes.c_int64)]


def _pool_view(pool, layout):
    """A pool tensor as balancekv_page_pool, with its (page size, heads,
    dim): NHD [pages, page_size, H, D] or HND [pages, H, page_size, D]."""
    if pool.dim() != 4 or pool.stride(3) != 1:
        raise BalanceKVError("a page pool is a 4-d tensor with unit "
                             "innermost stride")
    s = pool.stride()
    if layout == "NHD":
        _, size, heads, dim = pool.shape
        strides = s
    elif layout == "HND":
        _, heads, size, dim = pool.shape
        strides = (s[0], s[2], s[1], s[3])
    else:
        raise BalanceKVError(f"layout must be NHD or HND, not {layout!r}")
    return _PagePool(pool.data_ptr(), (ctypes.c_int64 * 4)(*strides)), \
        size, heads, dim


def _check_on_cuda(*tensors):
    if not all(t.is_cuda for t in tensors):
        raise BalanceKVError("the paged ops run on CUDA tensors (the CUDA "
                             "kernels read the pages in place)")


def _block_table(block_table, page_size):
    if block_table.dtype != torch.int32 or block_table.dim() != 2 or \
            not block_table.is_contiguous():
        raise BalanceKVError("block_table must be a contiguous int32 "
                             "[batch, max_pages] tensor")
    return _BlockTable(block_table.data_ptr(), block_table.shape[1], page_size)


_cuda_lib = None


def cuda_library_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in [os.path.join(here, "libbalancekv_cuda.so"),
                 os.environ.get("BALANCEKV_CUDA_LIBRARY", ""),
                 os.path.join(here, "..", "..", "build", "lib",
                              "libbalancekv_cuda.so")]:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise BalanceKVError("libbalancekv_cuda.so not found (build with "
                         "BALANCEKV_ENABLE_CUDA=ON, or set "
                         "BALANCEKV_CUDA_LIBRARY)")


def _cuda():
    global _cuda_lib
    if _cuda_lib is None:
        lib = ctypes.CDLL(cuda_library_path())
        lib.balancekv_last_error.restype = ctypes.c_char_p
        size_t_p = ctypes.POINTER(ctypes.c_size_t)
        lib.balancekv_compress_workspace_size.argtypes = [
            ctypes.c_int64] * 3 + [ctypes.c_void_p, size_t_p]
        lib.balancekv_compress.argtypes = (
            [ctypes.c_int, _Tensor, _Tensor] + [ctypes.c_int64] * 5 +
            [ctypes.c_void_p, _Tensor, _Tensor, ctypes.c_void_p,
             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
             ctypes.c_void_p])
        lib.balancekv_weighted_decode_workspace_size.argtypes = [
            ctypes.c_int64] * 5 + [size_t_p]
        lib.balancekv_weighted_decode_attention.argtypes = (
            [ctypes.c_int, _Tensor, _Tensor, _Tensor, ctypes.c_void_p,
             ctypes.c_void_p] + [ctypes.c_int64] * 7 +
            [ctypes.c_float, ctypes.c_int, _Tensor, ctypes.c_void_p,
             ctypes.c_size_t, ctypes.c_void_p])
        lib.balancekv_compress_paged.argtypes = (
            [ctypes.c_int, _PagePool, _PagePool, _BlockTable] +
            [ctypes.c_int64] * 5 +
            [ctypes.c_void_p, _Tensor, _Tensor, ctypes.c_void_p,
             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
             ctypes.c_void_p])
        for f in ["balancekv_weighted_decode_attention_paged",
                  "balancekv_weighted_decode_attention_paged_ragged"]:
            getattr(lib, f).argtypes = (
                [ctypes.c_int, _Tensor, _PagePool, _PagePool, _BlockTable,
                 ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 7 +
                [ctypes.c_float, ctypes.c_int, _Tensor, ctypes.c_void_p,
                 ctypes.c_size_t, ctypes.c_void_p])
        for f in ["balancekv_compress", "balancekv_weighted_decode_attention",
                  "balancekv_compress_paged",
                  "balancekv_weighted_decode_attention_paged",
                  "balancekv_weighted_decode_attention_paged_ragged",
                  "balancekv_compress_workspace_size",
                  "balancekv_weighted_decode_workspace_size"]:
            getattr(lib, f).restype = ctypes.c_int
        _cuda_lib = lib
    return _cuda_lib


def _check_cuda(rc):
    if rc != 0:
        raise BalanceKVError(_cuda().balancekv_last_error().decode())


def _workspace(size_entry, *sizes, device):
    """The kernels' workspace, its byte count asked of the C API
    (`size_entry(*sizes, &bytes)`): (tensor, its pointer or None, bytes)."""
    nbytes = ctypes.c_size_t()
    _check_cuda(size_entry(*sizes, ctypes.byref(nbytes)))
    ws = torch.empty(nbytes.value, dtype=torch.uint8, device=device)
    return ws, (ws.data_ptr() if nbytes.value else None), nbytes.value


def _stream(device):
    return torch.cuda.current_stream(device).cuda_stream


def _inner_contiguous(t):
    return t if t.stride(-1) == 1 else t.contiguous()


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


@_compress.register_kernel("cuda")
def _(key, value, method, rounds, block_size, sink, recent, gamma,
      temperature, c0, seed, scale):
    p = _params(method, rounds, block_size, sink, recent, gamma, temperature,
                c0, seed, scale)
    b, h, n, d = key.shape
    dv = value.shape[3]
    m = compressed_length(n, p)
    k, v = _inner_contiguous(key), _inner_contiguous(value)
    ck = k.new_empty((b, h, m, d))
    cv = v.new_empty((b, h, m, dv))
    log_w = torch.empty((b, h, m), dtype=torch.float32, device=key.device)
    lib = _cuda()
    ws, ws_ptr, ws_bytes = _workspace(lib.balancekv_compress_workspace_size,
                                      b, h, n, ctypes.byref(p),
                                      device=key.device)
    _check_cuda(lib.balancekv_compress(
        _dtype(key), _view(k), _view(v), b, h, n, d, dv, ctypes.byref(p),
        _view(ck), _view(cv), log_w.data_ptr(), None, ws_ptr, ws_bytes,
        _stream(key.device)))
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


@_weighted_decode.register_kernel("cuda")
def _(query, key, value, log_weights, scale, causal):
    b, hq, l, d = query.shape
    hkv, m, dv = key.shape[1], key.shape[2], value.shape[3]
    q = _inner_contiguous(query)
    k, v = _inner_contiguous(key), _inner_contiguous(value)
    lw = log_weights.contiguous().float()
    out = q.new_empty((b, hq, l, dv))
    lib = _cuda()
    ws, ws_ptr, ws_bytes = _workspace(
        lib.balancekv_weighted_decode_workspace_size, b, hq, l, m, dv,
        device=query.device)
    _check_cuda(lib.balancekv_weighted_decode_attention(
        _dtype(query), _view(q), _view(k), _view(v), lw.data_ptr(), None,
        b, hq, hkv, l, m, d, dv, scale if scale > 0 else 1.0 / math.sqrt(d),
        int(causal), _view(out), ws_ptr, ws_bytes, _stream(query.device)))
    return out


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


def compress_paged(key_pool, value_pool, block_table, n, layout="NHD",
                   **overrides):
    """Compresses the first n tokens of every sequence of a paged cache
    (CUDA): key_pool / value_pool NHD [pages, page_size, H, D] or HND
    [pages, H, page_size, D], block_table [B, max_pages] int32 (sequence b's
    pages in order). Returns the dense compressed (k [B, H, M, D], v, log_w
    [B, H, M]), bit-identical to compress() on the gathered cache."""
    p = default_params(**overrides)
    kpool, size, h, d = _pool_view(key_pool, layout)
    vpool, vsize, vh, dv = _pool_view(value_pool, layout)
    if (vsize, vh) != (size, h):
        raise BalanceKVError("key and value pools differ in page size or heads")
    table = _block_table(block_table, size)
    _check_on_cuda(key_pool, value_pool, block_table)
    b = block_table.shape[0]
    m = compressed_length(n, p)
    dev = key_pool.device
    ck = key_pool.new_empty((b, h, m, d))
    cv = value_pool.new_empty((b, h, m, dv))
    log_w = torch.empty((b, h, m), dtype=torch.float32, device=dev)
    lib = _cuda()
    ws, ws_ptr, ws_bytes = _workspace(lib.balancekv_compress_workspace_size,
                                      b, h, n, ctypes.byref(p), device=dev)
    _check_cuda(lib.balancekv_compress_paged(
        _dtype(key_pool), kpool, vpool, table, b, h, n, d, dv, ctypes.byref(p),
        _view(ck), _view(cv), log_w.data_ptr(), None, ws_ptr, ws_bytes,
        _stream(dev)))
    return ck, cv, log_w


def weighted_decode_paged(query, key_pool, value_pool, block_table,
                          log_weights, kv_len=None, scale=0.0, causal=False,
                          layout="NHD"):
    """Weighted decode over a paged cache (CUDA): query [B, Hq, L, D];
    log_weights [B, Hkv, m] f32 gives the slots a sequence may hold (0 for
    tokens decoded after compression); kv_len [B] int32 the ones it holds
    now, or [B, Hkv] the ones each KV head holds (method adaptive's ragged
    heads). Bit-identical to weighted_decode() on the gathered cache."""
    b, hq, l, d = query.shape
    kpool, size, hkv, _ = _pool_view(key_pool, layout)
    vpool, _, _, dv = _pool_view(value_pool, layout)
    table = _block_table(block_table, size)
    per_head = kv_len is not None and tuple(kv_len.shape) == (b, hkv)
    if kv_len is not None and not per_head and tuple(kv_len.shape) != (b,):
        raise BalanceKVError(
            f"kv_len must be [B] = [{b}] or [B, Hkv] = [{b}, {hkv}], got "
            f"{list(kv_len.shape)}")
    _check_on_cuda(query, key_pool, value_pool, block_table, log_weights,
                   *([kv_len] if kv_len is not None else []))
    m = log_weights.shape[2]
    q = _inner_contiguous(query)
    lw = log_weights.contiguous().float()
    out = q.new_empty((b, hq, l, dv))
    lib = _cuda()
    ws, ws_ptr, ws_bytes = _workspace(
        lib.balancekv_weighted_decode_workspace_size, b, hq, l, m, dv,
        device=query.device)
    entry = (lib.balancekv_weighted_decode_attention_paged_ragged if per_head
             else lib.balancekv_weighted_decode_attention_paged)
    lens = kv_len.int().contiguous() if kv_len is not None else None
    _check_cuda(entry(
        _dtype(query), _view(q), kpool, vpool, table,
        lw.data_ptr(), lens.data_ptr() if lens is not None else None,
        b, hq, hkv, l, m, d, dv, scale if scale > 0 else 1.0 / math.sqrt(d),
        int(causal), _view(out), ws_ptr, ws_bytes, _stream(query.device)))
    return out
