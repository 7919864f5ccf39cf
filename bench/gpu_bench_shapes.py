"""Static shapes of the MLIR GPU-path benchmark: bench/build_gpu_bench.sh
compiles one function per shape, bench/bench_mlir_gpu.py runs them."""

D = 128
HQ, HKV = 32, 8
SINK = RECENT = 32

# (N, heads), B = 1, T = 2: the compress shapes of bench_kernels.py.
COMPRESS = [(8192, 8), (8192, 32), (32768, 8), (32768, 32), (131072, 8)]
# (B, N, ratio): decode over the compressed cache, Hq = 32, Hkv = 8.
DECODE = [(b, n, r) for n in (8192, 32768, 131072) for b in (1, 8) for r in (4, 16)]


def compressed_length(n, rounds):
    s = min(SINK, n)
    w = min(RECENT, n - s)
    return s + ((n - s - w) >> rounds) + w


def compress_name(n, h):
    return f"compress_n{n}_h{h}"


def decode_name(b, n, r):
    return f"decode_b{b}_n{n}_r{r}"

# Conformance cases of bench/check_mlir_gpu.py: every kernel variant of the
# generated code (tensor-core and FFMA Gram, 16-byte and scalar loads, f16 /
# bf16 / f32, odd sizes, GQA, L > 1, causal, kv_len, plain attention).
# compress: (dtype, B, H, N, D, Dv, rounds, block)
CHECK_COMPRESS = [
    ("bf16", 2, 8, 4096, 128, 128, 2, 128),
    ("f16", 1, 4, 3001, 64, 64, 3, 128),
    ("bf16", 1, 2, 1000, 128, 64, 2, 64),
    ("f32", 1, 2, 700, 32, 32, 2, 128),
    ("f16", 1, 2, 900, 80, 40, 2, 128),     # D % 16 != 0: FFMA Gram, 16-bit
    ("bf16", 1, 2, 40, 128, 128, 2, 128),   # N < S + W: no middle
    ("bf16", 1, 2, 1500, 64, 64, 2, 100),   # block not a multiple of 16
    ("f32", 1, 1, 900, 48, 24, 1, 98),      # FFMA, block not a multiple of 4
]
# decode: (dtype, B, Hq, Hkv, L, M, D, Dv, causal, kv_len, log_weights)
CHECK_DECODE = [
    ("bf16", 2, 32, 8, 1, 4000, 128, 128, False, False, True),
    ("f16", 3, 8, 8, 4, 1500, 64, 64, True, False, True),
    ("bf16", 2, 16, 2, 2, 3000, 128, 128, True, True, True),
    ("f32", 1, 4, 1, 16, 777, 128, 128, False, True, True),
    ("bf16", 1, 8, 1, 1, 33, 256, 256, False, False, True),
    ("f16", 1, 4, 2, 3, 300, 32, 20, True, False, False),  # attention, Dv 20
]


def check_compress_name(i):
    return f"check_compress_{i}"


def check_decode_name(i):
    return f"check_decode_{i}"
