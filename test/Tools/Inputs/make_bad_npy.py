"""Writes malformed and hostile .npy caches for balancekv-eval's tests.

Usage: make_bad_npy.py OUTDIR. Each case is a PREFIX_{q,k,v}.npy triple in
OUTDIR named after what is wrong with it; `good` is a valid small cache.
No NumPy needed: the format is written by hand.
"""
import math
import os
import struct
import sys


def npy(path, shape_text, values, version=(1, 0), descr="<f4", data=None):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
        descr, shape_text)
    size_bytes = 2 if version[0] == 1 else 4
    total = 8 + size_bytes + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes(version))
        f.write(struct.pack("<H" if size_bytes == 2 else "<I", len(header)))
        f.write(header.encode())
        f.write(data if data is not None else
                struct.pack("<%df" % len(values), *values))


def triple(out, name, hq=2, hkv=1, n=200, d=8, dv=8, shapes=None, **kw):
    def vals(count, phase):
        return [math.sin(0.37 * i + phase) for i in range(count)]
    shapes = shapes or {"q": "(%d, %d, %d)" % (hq, n, d),
                        "k": "(%d, %d, %d)" % (hkv, n, d),
                        "v": "(%d, %d, %d)" % (hkv, n, dv)}
    counts = {"q": hq * n * d, "k": hkv * n * d, "v": hkv * n * dv}
    for i, part in enumerate("qkv"):
        v = vals(counts[part], i)
        override = kw.get(part, {})
        if "nan_at" in override:
            v[override["nan_at"]] = float(override.get("value", "nan"))
        npy(os.path.join(out, "%s_%s.npy" % (name, part)),
            override.get("shape", shapes[part]), v,
            version=override.get("version", (1, 0)),
            data=override.get("data"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    triple(out, "good")
    triple(out, "v3", k={"version": (3, 0)}, q={"version": (3, 0)},
           v={"version": (3, 0)})
    triple(out, "v0", k={"version": (0, 1)})
    triple(out, "dim0", d=0, dv=0)
    triple(out, "qheads0", hq=0)
    triple(out, "negative", k={"shape": "(-2, 64, 8)"})
    triple(out, "huge", k={"shape": "(9223372036854775808, 64, 8)"})
    triple(out, "overflow", k={"shape": "(4294967296, 4294967296, 8)"})
    triple(out, "mismatch", k={"shape": "(1, 64, 800)"})
    triple(out, "nan", k={"nan_at": 5})
    triple(out, "inf", v={"nan_at": 7, "value": "inf"})


if __name__ == "__main__":
    main()
