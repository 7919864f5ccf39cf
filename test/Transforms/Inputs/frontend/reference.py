#!/usr/bin/env python3
"""Checks a raised front-end export with real compression (not rounds = 0)
against the CPU reference on the same inputs.

  reference.py program OPT FIXTURE [compress options]
      | balancekv-opt --balancekv-cpu-pipeline | mlir-runner ... > OUT
  reference.py check OPT FIXTURE [compress options] < OUT

`program` raises + compresses the export and wraps it in an entry that feeds
it fixed inputs (embedded as constants, so both sides use the same bits) and
prints its output. `check` runs the reference (libbalancekv_capi through the
`balancekv` package: the selection and the weighted attention) on the same
inputs and prints how far the compiled program is from it and how far both are
from full attention. The export's arguments must be (query, key, value).
"""
import array
import math
import re
import struct
import subprocess
import sys

import fixed_inputs

mode, opt, fixture = sys.argv[1], sys.argv[2], sys.argv[3]
compress = sys.argv[4] if len(sys.argv) > 4 else "min-kv-len=1 max-query-len=0"

raised = subprocess.run(
    [opt, fixture, "--balancekv-raise-attention",
     f"--balancekv-compress-kv-cache={compress}"],
    check=True, capture_output=True, text=True).stdout
sig = re.search(r"func\.func (?:public )?@main\((.*?)\) -> (tensor<[^>]*>)", raised)
args = re.findall(r"(%\w+): tensor<([0-9x]+)x(f16|f32)>", sig.group(1))
shapes = [[int(d) for d in a[1].split("x")] for a in args]
elem = args[0][2]
result_type = sig.group(2)


inputs = [fixed_inputs.values(i, math.prod(s), elem) for i, s in enumerate(shapes)]

if mode == "program":
    body = re.search(r"module[^{]*\{\n(.*)\n\}\s*$", raised, re.S).group(1)
    aliases = "\n".join(re.findall(r"^#\w+ = .*$", raised, re.M))
    lines = [aliases, "module {", body.replace("@main(", "@raised("),
             "func.func private @printMemrefF32(memref<*xf32>)",
             "func.func @entry() {"]
    names = []
    for i, (_, shape, _) in enumerate(args):
        fmt = "<%de" % len(inputs[i]) if elem == "f16" else "<%df" % len(inputs[i])
        hexbits = struct.pack(fmt, *inputs[i]).hex().upper()
        ty = f"tensor<{shape}x{elem}>"
        lines.append(f'  %in{i} = arith.constant dense<"0x{hexbits}"> : {ty}')
        names.append(f"%in{i}")
    types = ", ".join(f"tensor<{a[1]}x{elem}>" for a in args)
    lines.append(f"  %r = call @raised({', '.join(names)}) : ({types}) -> {result_type}")
    rshape = re.match(r"tensor<([0-9x]+)x(\w+)>", result_type).group(1)
    out = "%r"
    if elem == "f16":
        rank = len(rshape.split("x"))
        ids = ", ".join(f"d{k}" for k in range(rank))
        parallel = ", ".join(['"parallel"'] * rank)
        lines += [f"  %e = tensor.empty() : tensor<{rshape}xf32>",
                  f"  %r32 = linalg.generic {{indexing_maps = [affine_map<({ids}) -> ({ids})>, affine_map<({ids}) -> ({ids})>], "
                  f"iterator_types = [{parallel}]}} ins(%r : {result_type}) outs(%e : tensor<{rshape}xf32>) {{",
                  "  ^bb0(%x: f16, %o: f32):", "    %y = arith.extf %x : f16 to f32",
                  "    linalg.yield %y : f32", f"  }} -> tensor<{rshape}xf32>"]
        out = "%r32"
    lines += [f"  %m = bufferization.to_buffer {out} : tensor<{rshape}xf32> to memref<{rshape}xf32>",
              f"  %u = memref.cast %m : memref<{rshape}xf32> to memref<*xf32>",
              "  call @printMemrefF32(%u) : (memref<*xf32>) -> ()",
              "  return", "}", "}"]
    print("\n".join(lines))
    sys.exit(0)

# check
import ctypes  # noqa: E402

import balancekv  # noqa: E402

text = sys.stdin.read()
ours = fixed_inputs.printed_values(text)
fields = {}
attr = re.search(r"balancekv\.compress %\w+, %\w+ <([^>]*)>", raised)
for name, value in re.findall(r"(\w+) = ([^,]+)", attr.group(1) if attr else ""):
    value = value.strip()
    fields[name] = value if name == "method" else (
        float(value) if re.search(r"[.e]", value) else int(value))
params = balancekv.default_params(**fields)
scale = float(re.search(r"weighted_attention [^\n]*scale\(([^)]*)\)", raised).group(1))
causal = bool(re.search(r"weighted_attention [^\n]* causal", raised))

(b, hq, lq, d), (_, hkv, n, _), (_, _, _, dv) = shapes
q, k, v = inputs
dtype = elem
m = balancekv.compressed_length(n, params)
pack = "e" if elem == "f16" else "f"


def buffer(vals):
    return (ctypes.c_char * (len(vals) * struct.calcsize(pack))).from_buffer_copy(
        struct.pack("<%d%s" % (len(vals), pack), *vals))


idx, log_w = balancekv.reference_compress(buffer(k), buffer(v), (b, hkv, n, d), dv,
                                          dtype, params)
ck, cv = array.array("f"), array.array("f")
for bh in range(b * hkv):
    for j in range(m):
        row = bh * n + idx[bh * m + j]
        ck.extend(k[row * d:(row + 1) * d])
        cv.extend(v[row * dv:(row + 1) * dv])


def attention(key, value, lw, length):
    out = (ctypes.c_float * (b * hq * lq * dv))()
    rc = balancekv._library().balancekv_reference_attention(
        balancekv._DTYPES[dtype], buffer(q), buffer(key), buffer(value),
        (ctypes.c_float * len(lw))(*lw), b, hq, hkv, lq, length, d, dv,
        ctypes.c_float(scale), int(causal), out)
    if rc != 0:
        raise balancekv.BalanceKVError(balancekv._library().balancekv_reference_error().decode())
    return list(out)


reference = attention(ck, cv, log_w, m)
full = attention(k, v, [0.0] * (b * hkv * n), n)
if elem == "f16":  # the program's output is f16
    reference = [struct.unpack("e", struct.pack("e", x))[0] for x in reference]


def rel(a, ref):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, ref)) /
                     sum(y * y for y in ref))


diff = max(abs(x - y) for x, y in zip(ours, reference))
tol = 2e-3 if elem == "f16" else 1e-5
print(f"kept {m} of {n}; max |compiled - reference| = {diff:.2e}")
print(f"relative L2 error vs full attention: compiled {rel(ours, full):.4f}, "
      f"reference {rel(reference, full):.4f}")
print("equal to the reference" if len(ours) == len(reference) and diff <= tol
      else "DIFFERENT from the reference")
