"""balancekv from Python: run balancekv's (and MLIR's) passes on MLIR text in
this process, through the library's C entry point (balancekv/CAPI/Opt.h).

    import balancekv
    print(balancekv.opt(ir, "builtin.module(balancekv-raise-attention,"
                            "balancekv-compress-kv-cache)"))

The shared library is looked for next to this module (a `pip install .`
puts it there), then in $BALANCEKV_LIBRARY (a path), then beside the build
tree this file sits in (build/lib).
"""
import ctypes
import os

__all__ = ["opt", "BalanceKVError", "library_path", "CompressParams",
           "default_params", "compressed_length", "compressed_slots",
           "reference_compress", "reference_compress_observed"]


class BalanceKVError(RuntimeError):
    """A parse error, a bad pipeline or a failing pass; the message holds
    MLIR's diagnostics."""


def library_path():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, "libbalancekv_capi.so"),
                  os.environ.get("BALANCEKV_LIBRARY", ""),
                  os.path.join(here, "..", "..", "build", "lib",
                               "libbalancekv_capi.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise BalanceKVError("libbalancekv_capi.so not found (pip install the "
                         "package, or set BALANCEKV_LIBRARY)")


_lib = None


def _library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(library_path())
        # The kernels-only libbalancekv_cuda.so (BALANCEKV_LIBRARY on a GPU
        # machine without MLIR) has the reference's entries but no passes.
        if hasattr(lib, "balancekv_opt"):
            lib.balancekv_opt.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_void_p)]
            lib.balancekv_opt.restype = ctypes.c_int
            lib.balancekv_free.argtypes = [ctypes.c_void_p]
            lib.balancekv_free.restype = None
        lib.balancekv_compress_params_init.argtypes = [
            ctypes.POINTER(CompressParams)]
        lib.balancekv_compress_params_init.restype = None
        lib.balancekv_compressed_length.argtypes = [ctypes.c_int64] * 4
        lib.balancekv_compressed_length.restype = ctypes.c_int64
        lib.balancekv_reference_compress.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p] + \
            [ctypes.c_int64] * 5 + [ctypes.POINTER(CompressParams),
                                    ctypes.c_void_p, ctypes.c_void_p]
        lib.balancekv_reference_compress.restype = ctypes.c_int
        lib.balancekv_reference_compress_observed.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p] + \
            [ctypes.c_int64] * 7 + [ctypes.POINTER(CompressParams),
                                    ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p]
        lib.balancekv_reference_compress_observed.restype = ctypes.c_int
        lib.balancekv_compressed_slots.argtypes = [
            ctypes.c_int64, ctypes.POINTER(CompressParams)]
        lib.balancekv_compressed_slots.restype = ctypes.c_int64
        lib.balancekv_reference_error.restype = ctypes.c_char_p
        lib.balancekv_reference_attention.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_void_p] + [ctypes.c_int64] * 7 + [
            ctypes.c_float, ctypes.c_int, ctypes.c_void_p]
        lib.balancekv_reference_attention.restype = ctypes.c_int
        _lib = lib
    return _lib


def opt(ir, pipeline, generic=False, debuginfo=False):
    """`pipeline` (textual, e.g. "builtin.module(balancekv-raise-attention)")
    on the module `ir`; returns the printed result (remarks and warnings
    appended as `//` comments) or raises BalanceKVError. `generic` prints
    the generic op form, `debuginfo` the locations."""
    lib = _library()
    if not hasattr(lib, "balancekv_opt"):
        raise BalanceKVError(f"{library_path()} has no passes (balancekv_opt): "
                             "it is the kernels-only library")
    out = ctypes.c_void_p()
    rc = lib.balancekv_opt(ir.encode(), pipeline.encode(),
                           int(generic) | (2 if debuginfo else 0),
                           ctypes.byref(out))
    try:
        text = ctypes.string_at(out.value).decode() if out.value else ""
    finally:
        lib.balancekv_free(out)
    if rc != 0:
        raise BalanceKVError(text)
    return text


class CompressParams(ctypes.Structure):
    """The C API's balancekv_compress_params (BalanceKVRuntime.h); its
    defaults come from the library (default_params), i.e. from
    CompressParams.h."""
    _fields_ = [("method", ctypes.c_int), ("rounds", ctypes.c_int64),
                ("block_size", ctypes.c_int64), ("sink", ctypes.c_int64),
                ("recent", ctypes.c_int64), ("gamma", ctypes.c_double),
                ("temperature", ctypes.c_double), ("c0", ctypes.c_double),
                ("seed", ctypes.c_uint64), ("scale", ctypes.c_float),
                ("budget", ctypes.c_int64)]

    # The CUDA kernels run balance and uniform; the reference all six
    # (snapkv and adaptive through reference_compress_observed).
    METHODS = {"balance": 0, "uniform": 1, "streaming": 2, "knorm": 3,
               "snapkv": 4, "adaptive": 5}


def default_params(**fields):
    """The spec's defaults (balancekv_compress_params_init) with `fields`
    replaced; `method` may be given by name."""
    p = CompressParams()
    _library().balancekv_compress_params_init(ctypes.byref(p))
    for name, value in fields.items():
        if name == "method" and isinstance(value, str):
            value = CompressParams.METHODS[value]
        if not hasattr(p, name):
            raise BalanceKVError(f"unknown compression parameter {name!r}")
        setattr(p, name, value)
    return p


def compressed_length(n, params=None):
    """M = S' + (L_0 >> T) + W' for a cache of n tokens."""
    p = params or default_params()
    return _library().balancekv_compressed_length(n, p.sink, p.recent,
                                                  p.rounds)


_DTYPES = {"f16": 0, "float16": 0, "bf16": 1, "bfloat16": 1, "f32": 2,
           "float32": 2}


def reference_compress(key, value, shape, value_dim, dtype="f32",
                       params=None):
    """The CPU reference's selection (the oracle every back end matches):
    key [B, H, N, D] and value [B, H, N, Dv] as contiguous buffers (numpy
    arrays, array.array, bytes...) of `dtype`; returns (indices, log_weights)
    as lists of B*H*M kept positions and log-weights."""
    import array
    b, h, n, d = shape
    p = params or default_params()
    m = compressed_length(n, p)
    indices = array.array("i", [0] * (b * h * m))
    log_w = array.array("f", [0.0] * (b * h * m))
    kbuf = (ctypes.c_char * memoryview(key).nbytes).from_buffer_copy(key)
    vbuf = (ctypes.c_char * memoryview(value).nbytes).from_buffer_copy(value)
    rc = _library().balancekv_reference_compress(
        _DTYPES[dtype], kbuf, vbuf, b, h, n, d, value_dim, ctypes.byref(p),
        indices.buffer_info()[0], log_w.buffer_info()[0])
    if rc != 0:
        raise BalanceKVError(_library().balancekv_reference_error().decode())
    return list(indices), list(log_w)


def compressed_slots(n, params=None):
    """Slots per (batch, KV head) compressing n tokens fills: M of the spec
    layout, or with method adaptive the most one head may keep."""
    p = params or default_params()
    m = _library().balancekv_compressed_slots(n, ctypes.byref(p))
    if m < 0:
        raise BalanceKVError(f"bad compression parameters for n = {n}")
    return m


def reference_compress_observed(key, value, observation, shape, value_dim,
                                q_heads, obs_len, dtype="f32", params=None):
    """reference_compress for every method, including those that read
    observation queries (snapkv, adaptive): `observation` [B, q_heads,
    obs_len, D] holds the queries of the cache's last obs_len positions.
    Returns (indices, log_weights, lengths, m): B*H*m slots (with adaptive,
    head (b, h) keeps lengths[b*H + h] of them; the rest are index -1,
    log-weight -inf) and the per-head counts."""
    import array
    b, h, n, d = shape
    p = params or default_params()
    m = compressed_slots(n, p)
    indices = array.array("i", [0] * (b * h * m))
    log_w = array.array("f", [0.0] * (b * h * m))
    lengths = array.array("i", [0] * (b * h))
    bufs = [(ctypes.c_char * memoryview(x).nbytes).from_buffer_copy(x)
            for x in (key, value, observation)]
    rc = _library().balancekv_reference_compress_observed(
        _DTYPES[dtype], bufs[0], bufs[1], bufs[2], b, h, q_heads, obs_len, n,
        d, value_dim, ctypes.byref(p), indices.buffer_info()[0],
        log_w.buffer_info()[0], lengths.buffer_info()[0])
    if rc != 0:
        raise BalanceKVError(_library().balancekv_reference_error().decode())
    return list(indices), list(log_w), list(lengths), m
