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

__all__ = ["opt", "BalanceKVError", "library_path"]


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
        lib.balancekv_opt.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_int,
                                      ctypes.POINTER(ctypes.c_void_p)]
        lib.balancekv_opt.restype = ctypes.c_int
        lib.balancekv_free.argtypes = [ctypes.c_void_p]
        lib.balancekv_free.restype = None
        _lib = lib
    return _lib


def opt(ir, pipeline, generic=False):
    """`pipeline` (textual, e.g. "builtin.module(balancekv-raise-attention)")
    on the module `ir`; returns the printed result (remarks and warnings
    appended as `//` comments) or raises BalanceKVError."""
    lib = _library()
    out = ctypes.c_void_p()
    rc = lib.balancekv_opt(ir.encode(), pipeline.encode(), int(generic),
                           ctypes.byref(out))
    try:
        text = ctypes.string_at(out.value).decode() if out.value else ""
    finally:
        lib.balancekv_free(out)
    if rc != 0:
        raise BalanceKVError(text)
    return text
