#!/usr/bin/env python3
"""Prints the payload of the first gpu.binary object in an MLIR file (the PTX
text of `format=isa`), or writes it with -o (the cubin of `format=bin`, the
fatbin of `format=fatbin`), e.g. to feed `ptxas` or `cuobjdump`.

  extract-gpu-binary.py out.mlir > kernels.ptx
  extract-gpu-binary.py out.mlir -o kernels.cubin
"""
import argparse
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("mlir")
ap.add_argument("-o", "--output")
args = ap.parse_args()
text = open(args.mlir).read()
# The payload is the object's string: `assembly = "..."` (isa),
# `bin = "..."` (bin) or bare after the target/properties (fatbin).
m = re.search(r'#gpu\.object<.*?(?:(?:assembly|bin) = |[}>], )"((?:[^"\\]|\\.)*)"', text, re.S)
if not m:
    sys.exit(f"{args.mlir}: no gpu.binary object")
# MLIR escapes bytes as \XX (hex) and backslashes as \\.
data = re.sub(rb"\\([0-9A-Fa-f]{2}|\\)",
              lambda x: b"\\" if x.group(1) == b"\\" else bytes([int(x.group(1), 16)]),
              m.group(1).encode("latin-1"))
if args.output:
    open(args.output, "wb").write(data)
else:
    sys.stdout.buffer.write(data)
