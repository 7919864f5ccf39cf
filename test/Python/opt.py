import sys

import balancekv

ir = open(sys.argv[1]).read()
print(balancekv.opt(ir, "builtin.module(balancekv-compress-kv-cache{seed=5})"))
for text, pipeline in [(ir, "builtin.module(balancekv-compress-kv-cache{rounds=17})"),
                       ("not mlir", "builtin.module(canonicalize)"),
                       (ir, "builtin.module(no-such-pass)")]:
    try:
        balancekv.opt(text, pipeline)
    except balancekv.BalanceKVError as e:
        print("BalanceKVError:", str(e).replace("\n", " "))

# The C API's parameters and the CPU reference, without numpy.
import array
import math

p = balancekv.default_params(rounds=3, seed=7)
print("params", p.rounds, p.block_size, p.sink, p.recent, p.gamma, p.seed)
b, h, n, d, dv = 1, 2, 300, 8, 4
key = array.array("f", [math.sin(0.1 * i) for i in range(b * h * n * d)])
value = array.array("f", [math.cos(0.07 * i) for i in range(b * h * n * dv)])
idx, lw = balancekv.reference_compress(key, value, (b, h, n, d), dv, "f32", p)
m = balancekv.compressed_length(n, p)
print("M", m, "kept", len(idx), "sink", idx[:3], "last", idx[m - 1],
      "max log w", round(max(lw), 4))
try:
    balancekv.reference_compress(key, value, (b, h, n, d), dv, "f32",
                                 balancekv.default_params(rounds=17))
except balancekv.BalanceKVError as e:
    print("BalanceKVError:", e)

# Method adaptive (ragged heads) through the reference's observed entry.
obs = array.array("f", [math.sin(0.3 * i + 1.0) for i in range(b * h * 8 * d)])
pa = balancekv.default_params(method="adaptive")
idx, lw, lens, m = balancekv.reference_compress_observed(
    key, value, obs, (b, h, n, d), dv, h, 8, "f32", pa)
mean = balancekv.compressed_length(n, pa)
print("adaptive slots", m, "= 2 x", mean, "within budget", sum(lens) <= h * mean,
      "padding", all(idx[hh * m + j] == -1 and lw[hh * m + j] == -math.inf
                     for hh in range(h) for j in range(lens[hh], m)))
