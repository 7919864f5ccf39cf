#!/usr/bin/env python3
"""Writes the last ROWS rows of every head of a [heads, tokens, dim] .npy
(f2/f4, C order) to DST: a query file that holds only the last positions.

  last_rows_npy.py SRC DST ROWS
"""
import ast
import struct
import sys

src, dst, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
hlen = struct.unpack("<H", data[8:10])[0]
header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
heads, tokens, dim = header["shape"]
es = int(header["descr"][2:])
body = data[10 + hlen:]
out = b"".join(body[((h * tokens + tokens - rows) * dim) * es:((h + 1) * tokens * dim) * es]
               for h in range(heads))
new = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d, %d), }" % (
    header["descr"], heads, rows, dim)
new += " " * ((64 - (10 + len(new) + 1) % 64) % 64) + "\n"
open(dst, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(new)) + new.encode("latin1") + out)
