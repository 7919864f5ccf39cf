#!/usr/bin/env python3
"""The fastest a kernel can read a cache once, size by size: a plain
16-byte streaming read (bench/stream_floor.cu, built here with nvcc),
timed exactly like the decode in bench_kernels.py (CUDA graph of calls
cycled over copies beyond L2). Its time at a size is the floor for the
weighted decode over a compressed cache of that size.

  python3 bench/stream_floor.py [--out DIR]
"""
import argparse
import ctypes
import json
import os
import subprocess
import tempfile

import torch

from balancekv_bench import bench_graph_cycle, copies_beyond_l2, hbm_peak, table


def build():
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "stream_floor.cu")
    so = os.path.join(tempfile.mkdtemp(), "libstream_floor.so")
    subprocess.check_call(["nvcc", "-O3", "-arch=sm_90", "-shared",
                           "-Xcompiler", "-fPIC", src, "-o", so])
    lib = ctypes.CDLL(so)
    lib.stream_read.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int,
                                ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return lib


# CTAs per SM x threads: one wave of 2-8 big chunks an SM, and many waves
# of small chunks (the hardware hands them to whichever SM is free: from
# 136 MB up 1.5-2 % faster than any one-wave read on an H200, whose SMs get
# unequal bandwidth; bench/results/2026-12-03-h200-decode-sm-rates.md).
MANY_WAVES = ((32, 256), (64, 256), (128, 256), (256, 256))
FLOOR_CONFIGS = ((2, 512), (4, 512), (8, 512)) + MANY_WAVES


def floor_time(lib, nbytes, sms, sink, configs=FLOOR_CONFIGS):
    """Best graph-timed plain read of `nbytes`: (ms, CTAs per SM, threads,
    copies), cycled over copies beyond L2 like the decode."""
    n = int(nbytes) // 16 * 16
    sets = copies_beyond_l2((torch.empty(n, dtype=torch.uint8, device="cuda"),))
    best = None
    for per_sm, threads in configs:
        fns = [lambda a=a, c=per_sm * sms, th=threads: lib.stream_read(
            a[0].data_ptr(), n, c, th, sink.data_ptr(),
            torch.cuda.current_stream().cuda_stream) for a in sets]
        t = bench_graph_cycle(fns)
        if best is None or t < best[0]:
            best = (t, per_sm, threads)
    return best + (len(sets),)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    lib = build()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    sink = torch.zeros(1, dtype=torch.int32, device="cuda")
    peak = hbm_peak()
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}; HBM copy peak (read+write): {peak:.0f} GB/s",
          flush=True)
    rows = []
    # The compressed-cache sizes of the decode table (MB).
    for mb in (2.3, 8.6, 18.7, 33.8, 69.1, 136, 270, 1080):
        n = int(mb * 1e6) // 16 * 16
        t, per_sm, threads, copies = floor_time(
            lib, n, sms, sink,
            [(c, th) for c in (1, 2, 4, 8) for th in (256, 512)] +
            list(MANY_WAVES))
        t *= 1e3
        rows.append(dict(MB=mb, copies=copies, us=round(t, 1),
                         GBps=round(n / t / 1e3), pct_peak=f"{n / t / 1e3 / peak:.0%}",
                         ctas_per_sm=per_sm, threads=threads))
        print(rows[-1], flush=True)
    md = (f"# Streaming-read floor, {dev}\n\nHBM copy peak (read+write): "
          f"{peak:.0f} GB/s\n\n{table(rows)}\n")
    print(md)
    with open(os.path.join(args.out, "stream_floor.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "stream_floor.json"), "w") as f:
        json.dump(dict(device=dev, peak_GBps=round(peak), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
