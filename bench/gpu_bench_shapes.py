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
