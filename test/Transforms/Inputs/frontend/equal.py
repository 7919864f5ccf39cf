#!/usr/bin/env python3
"""Builds a program that runs a front-end export both as exported and after
--balancekv-raise-attention + --balancekv-compress-kv-cache (rounds = 0: the
compressed cache is the cache), on the same deterministic inputs, and prints
the number of raised attention ops and max |raised - exported| (f32).

  equal.py OPT FIXTURE [compress options] | balancekv-opt --balancekv-cpu-pipeline
      | mlir-runner -e entry ...
"""
import re
import subprocess
import sys

PAR, RED = '"parallel"', '"reduction"'

opt, fixture = sys.argv[1], sys.argv[2]
compress = sys.argv[3] if len(sys.argv) > 3 else "rounds=0 min-kv-len=1 max-query-len=0"
exported = open(fixture).read()
raised = subprocess.run(
    [opt, fixture, "--balancekv-raise-attention",
     f"--balancekv-compress-kv-cache={compress}"],
    check=True, capture_output=True, text=True).stdout
count = raised.count("balancekv.weighted_attention") + raised.count("balancekv.attention ")


def body(text, name):
    """The module's body with @main renamed, maps renamed per copy."""
    m = re.search(r"module[^{]*\{\n(.*)\n\}\s*$", text, re.S)
    inner = m.group(1)
    aliases = re.findall(r"^(#\w+) = (.*)$", text, re.M)
    for alias, _ in sorted(aliases, key=lambda a: -len(a[0])):
        inner = re.sub(re.escape(alias) + r"\b", alias + "_" + name, inner)
    defs = "\n".join(f"{a}_{name} = {d}" for a, d in aliases)
    return defs, inner.replace("@main(", f"@{name}(")


sig = re.search(r"func\.func (?:public )?@main\((.*?)\) -> (tensor<[^>]*>)", exported)
args = re.findall(r"%\w+: (tensor<([0-9x]+)x(f16|f32|bf16)>)", sig.group(1))
result_type = sig.group(2)
d1, b1 = body(exported, "exported")
d2, b2 = body(raised, "raised")
lines = [d1, d2, "module {", b1, b2,
         "func.func private @printF32(f32)", "func.func private @printNewline()",
         "func.func @entry() {"]
names = []
for i, (ty, shape, elem) in enumerate(args):
    dims = shape.split("x")
    rank = len(dims)
    ids = ", ".join(f"d{k}" for k in range(rank))
    lines.append(f"  %e{i} = tensor.empty() : {ty}")
    lines.append(
        f"  %f{i} = linalg.generic {{indexing_maps = [affine_map<({ids}) -> ({ids})>], "
        f"iterator_types = [{', '.join([PAR] * rank)}]}} outs(%e{i} : {ty}) {{")
    lines.append(f"  ^bb0(%o: {elem}):")
    terms = []
    for k in range(rank):
        lines.append(f"    %i{k} = linalg.index {k} : index")
        lines.append(f"    %c{k} = arith.index_cast %i{k} : index to i32")
        lines.append(f"    %x{k} = arith.sitofp %c{k} : i32 to f32")
        lines.append(f"    %w{k} = arith.constant {0.37 * (k + 1) + 0.11 * i:.4f} : f32")
        lines.append(f"    %t{k} = arith.mulf %x{k}, %w{k} : f32")
        terms.append(f"%t{k}")
    acc = terms[0]
    for k, t in enumerate(terms[1:]):
        lines.append(f"    %s{k} = arith.addf {acc}, {t} : f32")
        acc = f"%s{k}"
    lines.append(f"    %v = math.sin {acc} : f32")
    if elem == "f32":
        lines.append("    linalg.yield %v : f32")
    else:
        lines.append(f"    %vt = arith.truncf %v : f32 to {elem}")
        lines.append(f"    linalg.yield %vt : {elem}")
    lines.append(f"  }} -> {ty}")
    names.append(f"%f{i}")
types = ", ".join(a[0] for a in args)
lines.append(f"  %a = call @exported({', '.join(names)}) : ({types}) -> {result_type}")
lines.append(f"  %b = call @raised({', '.join(names)}) : ({types}) -> {result_type}")
rshape = re.match(r"tensor<([0-9x]+)x(\w+)>", result_type)
shape, elem = rshape.group(1), rshape.group(2)
rank = len(shape.split("x"))
ids = ", ".join(f"d{k}" for k in range(rank))
lines += [
    "  %z = arith.constant 0.0 : f32",
    "  %m0 = tensor.empty() : tensor<f32>",
    "  %m1 = linalg.fill ins(%z : f32) outs(%m0 : tensor<f32>) -> tensor<f32>",
    f"  %m = linalg.generic {{indexing_maps = [affine_map<({ids}) -> ({ids})>, affine_map<({ids}) -> ({ids})>, affine_map<({ids}) -> ()>], "
    f"iterator_types = [{', '.join([RED] * rank)}]}} ins(%a, %b : {result_type}, {result_type}) outs(%m1 : tensor<f32>) {{",
    f"  ^bb0(%p: {elem}, %q: {elem}, %acc: f32):",
]
if elem == "f32":
    lines += ["    %d = arith.subf %p, %q : f32"]
else:
    lines += [f"    %pe = arith.extf %p : {elem} to f32", f"    %qe = arith.extf %q : {elem} to f32",
              "    %d = arith.subf %pe, %qe : f32"]
lines += [
    "    %ad = math.absf %d : f32",
    "    %mx = arith.maximumf %acc, %ad : f32",
    "    linalg.yield %mx : f32",
    "  } -> tensor<f32>",
    "  %r = tensor.extract %m[] : tensor<f32>",
    f"  %n = arith.constant {count}.0 : f32",
    "  call @printF32(%n) : (f32) -> ()",
    "  call @printNewline() : () -> ()",
    "  call @printF32(%r) : (f32) -> ()",
    "  call @printNewline() : () -> ()",
    "  return",
    "}",
    "}",
]
print("\n".join(lines))
