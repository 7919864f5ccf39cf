#!/usr/bin/env python3
"""What every script under bench/ shares: the ctypes bindings of the C API
(libbalancekv_cuda.so: the CUDA kernels and the CPU reference, with the
workspaces kept across calls so calls can be captured in CUDA graphs) and
the timing and reference helpers (CUDA-event medians, CUDA-graph cycles over
cache copies beyond L2, the HBM copy peak, float64 attention, tables).

  from balancekv_bench import Lib, bench_graph_cycle, copies_beyond_l2

(Scripts run as `python3 bench/NAME.py`: bench/ is on their import path.)
"""
import ctypes
import math

import torch

# ---------------------------------------------------------------- C API ----


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("strides", ctypes.c_int64 * 4)]


class Params(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("rounds", ctypes.c_int64),
                ("block_size", ctypes.c_int64), ("sink", ctypes.c_int64),
                ("recent", ctypes.c_int64), ("gamma", ctypes.c_double),
                ("temperature", ctypes.c_double), ("c0", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("scale", ctypes.c_float),
                ("budget", ctypes.c_int64)]


class PagePool(ctypes.Structure):
    """balancekv_page_pool: strides of [page, slot, head, dim]."""
    _fields_ = [("data", ctypes.c_void_p), ("strides", ctypes.c_int64 * 4)]


class BlockTable(ctypes.Structure):
    _fields_ = [("block_table", ctypes.c_void_p), ("max_pages", ctypes.c_int64),
                ("page_size", ctypes.c_int64)]


DTYPES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}


def paged(tensors, page_size, layout="NHD", seed=0):
    """Dense caches [B, H, N, D] (keys, values) as a serving engine's page
    pools sharing one block table: pages of `page_size` tokens in a random
    order of the pool (with a spare page at the front, so that no id is its
    logical page), NHD ([pages, page_size, H, D]) or HND ([pages, H,
    page_size, D]). Returns ([(pool, strides in [page, slot, head, dim]
    order)], block_table [B, max_pages] int32)."""
    b, h, n, _ = tensors[0].shape
    per = -(-n // page_size)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(b * per, generator=gen) + 1
    table = order.reshape(b, per).int().contiguous().to(tensors[0].device)
    pools = []
    for x in tensors:
        d = x.shape[3]
        pad = x.new_zeros(b, h, per * page_size - n, d)
        pages = torch.cat([x, pad], dim=2).reshape(b, h, per, page_size, d)
        pages = pages.permute(0, 2, 3, 1, 4).reshape(b * per, page_size, h, d)
        pool = x.new_zeros(b * per + 1, page_size, h, d)
        pool[order.to(x.device)] = pages
        if layout == "HND":
            pool = pool.permute(0, 2, 1, 3).contiguous()
            strides = (pool.stride(0), pool.stride(2), pool.stride(1), 1)
        else:
            strides = pool.stride()
        pools.append((pool, strides))
    return pools, table


class DecodeLaunch(ctypes.Structure):
    _fields_ = [("kernel", ctypes.c_char_p)] + [
        (name, ctypes.c_int32) for name in
        ("splits", "grid_x", "grid_y", "grid_z", "ctas_per_sm", "combine")]


class Lib:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        L = self.lib
        L.balancekv_last_error.restype = ctypes.c_char_p
        L.balancekv_reference_error.restype = ctypes.c_char_p
        L.balancekv_compressed_length.restype = ctypes.c_int64
        L.balancekv_compressed_length.argtypes = [ctypes.c_int64] * 4
        L.balancekv_compress_workspace_size.argtypes = [
            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
            ctypes.POINTER(Params), ctypes.POINTER(ctypes.c_size_t)]
        L.balancekv_compress.argtypes = [
            ctypes.c_int, Tensor, Tensor, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
            ctypes.POINTER(Params), Tensor, Tensor, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        L.balancekv_weighted_decode_workspace_size.argtypes = [
            ctypes.c_int64] * 5 + [ctypes.POINTER(ctypes.c_size_t)]
        L.balancekv_weighted_decode_attention.argtypes = [
            ctypes.c_int, Tensor, Tensor, Tensor, ctypes.c_void_p,
            ctypes.c_void_p] + [ctypes.c_int64] * 7 + [
            ctypes.c_float, ctypes.c_int, Tensor, ctypes.c_void_p,
            ctypes.c_size_t, ctypes.c_void_p]
        L.balancekv_weighted_decode_attention_ragged.argtypes = \
            L.balancekv_weighted_decode_attention.argtypes
        L.balancekv_compress_paged.argtypes = [
            ctypes.c_int, PagePool, PagePool, BlockTable] + [ctypes.c_int64] * 5 + [
            ctypes.POINTER(Params), Tensor, Tensor, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        L.balancekv_weighted_decode_attention_paged.argtypes = [
            ctypes.c_int, Tensor, PagePool, PagePool, BlockTable,
            ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 7 + [
            ctypes.c_float, ctypes.c_int, Tensor, ctypes.c_void_p,
            ctypes.c_size_t, ctypes.c_void_p]
        L.balancekv_weighted_decode_attention_paged_ragged.argtypes = \
            L.balancekv_weighted_decode_attention_paged.argtypes
        L.balancekv_compress_params_init.argtypes = [ctypes.POINTER(Params)]
        L.balancekv_compress_params_init.restype = None
        L.balancekv_reference_compress.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p] + [
            ctypes.c_int64] * 5 + [ctypes.POINTER(Params), ctypes.c_void_p,
                                   ctypes.c_void_p]

    def last_launch(self):
        """How the last decode on this thread was launched (a dict for the
        tables; empty for a library without balancekv_last_decode_launch)."""
        entry = getattr(self.lib, "balancekv_last_decode_launch", None)
        if entry is None:
            return {}
        out = DecodeLaunch()
        self.check(entry(ctypes.byref(out)))
        return dict(kernel=out.kernel.decode(), splits=out.splits,
                    grid=f"{out.grid_x}x{out.grid_y}x{out.grid_z}",
                    ctas_per_sm=out.ctas_per_sm, combine=bool(out.combine))

    def check(self, status):
        if status != 0:
            raise RuntimeError(f"status {status}: "
                               f"{self.lib.balancekv_last_error().decode()}")

    @staticmethod
    def view(t):
        return Tensor(t.data_ptr(), (ctypes.c_int64 * 4)(*t.stride()))

    def params(self, rounds=None, method=None, seed=None, block=None):
        """The C API's defaults (balancekv_compress_params_init, i.e.
        CompressParams.h), with the given fields replaced."""
        p = Params()
        self.lib.balancekv_compress_params_init(ctypes.byref(p))
        for name, value in (("rounds", rounds), ("method", method),
                            ("seed", seed), ("block_size", block)):
            if value is not None:
                setattr(p, name, value)
        return p

    def m(self, n, p):
        return self.lib.balancekv_compressed_length(n, p.sink, p.recent, p.rounds)

    def compress_prepare(self, k, v, p):
        b, h, n, d = k.shape
        m = self.m(n, p)
        ws = ctypes.c_size_t()
        self.check(self.lib.balancekv_compress_workspace_size(
            b, h, n, ctypes.byref(p), ctypes.byref(ws)))
        out = dict(
            ck=torch.empty(b, h, m, d, dtype=k.dtype, device=k.device),
            cv=torch.empty(b, h, m, v.shape[3], dtype=v.dtype, device=v.device),
            lw=torch.empty(b, h, m, dtype=torch.float32, device=k.device),
            idx=torch.empty(b, h, m, dtype=torch.int32, device=k.device),
            ws=torch.empty(max(ws.value, 1), dtype=torch.uint8, device=k.device))
        return out

    def compress(self, k, v, p, o, indices=True):
        b, h, n, d = k.shape
        self.check(self.lib.balancekv_compress(
            DTYPES[k.dtype], self.view(k), self.view(v), b, h, n, d,
            v.shape[3], ctypes.byref(p), self.view(o["ck"]), self.view(o["cv"]),
            o["lw"].data_ptr(), o["idx"].data_ptr() if indices else None,
            o["ws"].data_ptr(), o["ws"].numel(),
            torch.cuda.current_stream().cuda_stream))

    def decode_prepare(self, q, k, v):
        b, hq, l, d = q.shape
        ws = ctypes.c_size_t()
        self.check(self.lib.balancekv_weighted_decode_workspace_size(
            b, hq, l, k.shape[2], v.shape[3], ctypes.byref(ws)))
        return dict(out=torch.empty(b, hq, l, v.shape[3], dtype=q.dtype,
                                    device=q.device),
                    ws=torch.empty(max(ws.value, 1), dtype=torch.uint8,
                                   device=q.device))

    def decode(self, q, k, v, lw, o, kv_len=None, causal=False, scale=None):
        """Weighted decode; kv_len [B] (int32), or [B, Hkv] for ragged heads
        (balancekv_weighted_decode_attention_ragged)."""
        b, hq, l, d = q.shape
        scale = scale or 1.0 / math.sqrt(d)
        entry = (self.lib.balancekv_weighted_decode_attention_ragged
                 if kv_len is not None and kv_len.dim() == 2
                 else self.lib.balancekv_weighted_decode_attention)
        self.check(entry(
            DTYPES[q.dtype], self.view(q), self.view(k), self.view(v),
            lw.data_ptr() if lw is not None else None,
            kv_len.data_ptr() if kv_len is not None else None,
            b, hq, k.shape[1], l, k.shape[2], d, v.shape[3], scale,
            int(causal), self.view(o["out"]), o["ws"].data_ptr(),
            o["ws"].numel(), torch.cuda.current_stream().cuda_stream))

    @staticmethod
    def pool(pool, strides):
        return PagePool(pool.data_ptr(), (ctypes.c_int64 * 4)(*strides))

    @staticmethod
    def table(table, page_size):
        return BlockTable(table.data_ptr(), table.shape[1], page_size)

    def compress_paged(self, kp, vp, table, page_size, shape, p, o, indices=True):
        """balancekv_compress_paged; kp, vp: (pool, strides) from paged();
        shape: the dense cache's (B, H, N, D, Dv)."""
        b, h, n, d, dv = shape
        self.check(self.lib.balancekv_compress_paged(
            DTYPES[kp[0].dtype], self.pool(*kp), self.pool(*vp),
            self.table(table, page_size), b, h, n, d, dv, ctypes.byref(p),
            self.view(o["ck"]), self.view(o["cv"]), o["lw"].data_ptr(),
            o["idx"].data_ptr() if indices else None, o["ws"].data_ptr(),
            o["ws"].numel(), torch.cuda.current_stream().cuda_stream))

    def decode_paged(self, q, kp, vp, table, page_size, m, lw, o, kv_len=None,
                     causal=False, scale=None, kv_heads=None, dv=None):
        """balancekv_weighted_decode_attention_paged; kv_len [B], or [B, Hkv]
        for ragged heads (..._paged_ragged)."""
        b, hq, l, d = q.shape
        scale = scale or 1.0 / math.sqrt(d)
        entry = (self.lib.balancekv_weighted_decode_attention_paged_ragged
                 if kv_len is not None and kv_len.dim() == 2
                 else self.lib.balancekv_weighted_decode_attention_paged)
        self.check(entry(
            DTYPES[q.dtype], self.view(q), self.pool(*kp), self.pool(*vp),
            self.table(table, page_size),
            lw.data_ptr() if lw is not None else None,
            kv_len.data_ptr() if kv_len is not None else None,
            b, hq, kv_heads, l, m, d, dv, scale, int(causal),
            self.view(o["out"]), o["ws"].data_ptr(), o["ws"].numel(),
            torch.cuda.current_stream().cuda_stream))

    def reference(self, k, v, p):
        b, h, n, d = k.shape
        m = self.m(n, p)
        kc, vc = k.contiguous().cpu(), v.contiguous().cpu()
        idx = torch.empty(b, h, m, dtype=torch.int32)
        lw = torch.empty(b, h, m, dtype=torch.float32)
        r = self.lib.balancekv_reference_compress(
            DTYPES[k.dtype], kc.data_ptr(), vc.data_ptr(), b, h, n, d,
            v.shape[3], ctypes.byref(p), idx.data_ptr(), lw.data_ptr())
        if r != 0:
            raise RuntimeError(self.lib.balancekv_reference_error().decode())
        return idx, lw


def bench(fn, reps=50, warmup=5):
    """Median of CUDA-event timings in ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def bench_graph_cycle(fns, calls=20, reps=30):
    """Median per-call time in ms of several closures (e.g. the same call on
    different copies of a cache, like the layers of a model) cycled in one
    CUDA graph of at least `calls` launches: host and launch overheads stay
    out, and with enough copies nothing stays in L2 from one call to the
    next."""
    seq = [fns[i % len(fns)] for i in range(max(calls, len(fns)))]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for f in fns:
            f()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for f in seq:
            f()
    return bench(graph.replay, reps=reps, warmup=3) / len(seq)


def medians_in_turn(timed, rounds=3):
    """Each timer of `timed` (name -> function returning a time) run in turn
    `rounds` times; the median per name (single timings on an H200 were seen
    5-13 % slow at random)."""
    times = {name: [] for name in timed}
    for _ in range(rounds):
        for name, fn in timed.items():
            times[name].append(fn())
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def compress_cache(heads, tokens, d=128):
    """Random bf16 keys and values of one sequence, the compression
    benchmark's shape ([1, heads, tokens, d])."""
    k = torch.randn(1, heads, tokens, d, device="cuda", dtype=torch.bfloat16)
    return k, torch.randn_like(k)


def copies_beyond_l2(tensors, warm_l2=False):
    """`tensors` and enough clones of them that cycling through the copies
    works on at least four times the L2 cache (one copy with `warm_l2`)."""
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    n = 1 if warm_l2 else max(1, min(64, math.ceil(4 * l2 / max(nbytes, 1))))
    return [tuple(tensors)] + [tuple(t.clone() for t in tensors)
                               for _ in range(n - 1)]


def attention64(q, k, v, lw=None, causal=False, kv_len=None):
    """float64 reference: softmax(q kᵀ / sqrt(d) + lw) v with GQA."""
    b, hq, l, d = q.shape
    g = hq // k.shape[1]
    k64 = k.double().repeat_interleave(g, dim=1)
    v64 = v.double().repeat_interleave(g, dim=1)
    s = q.double() @ k64.transpose(-1, -2) / math.sqrt(d)
    if lw is not None:
        s = s + lw.double().repeat_interleave(g, dim=1)[:, :, None, :]
    n = k.shape[2]
    pos = torch.arange(n, device=q.device)
    # kv_len [B], or [B, Hkv] (ragged heads): one length per query head.
    lens = kv_len.long() if kv_len is not None else torch.full((b,), n, device=q.device)
    lens = lens.clamp(0, n)
    lens = (lens.repeat_interleave(g, dim=1) if lens.dim() == 2
            else lens[:, None].expand(b, hq))
    limit = lens[:, :, None].expand(b, hq, l).clone()
    if causal:
        limit = torch.minimum(limit, lens[:, :, None] - l +
                              torch.arange(l, device=q.device)[None, None, :] + 1)
    mask = pos[None, None, None, :] < limit[:, :, :, None]  # [b, hq, l, n]
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return p @ v64


def rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


def hbm_peak():
    x = torch.empty(2 * 1024**3 // 2, dtype=torch.bfloat16, device="cuda")
    y = torch.empty_like(x)
    t = bench(lambda: y.copy_(x), reps=20)
    del x, y
    return 2 * 2 * 1024**3 / (t * 1e-3) / 1e9  # GB/s read + write


def table(rows):
    if not rows:
        return ""
    cols = list(dict.fromkeys(c for r in rows for c in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)
