#!/usr/bin/env python3
"""Where one compression call's time goes, kernel by kernel:

  python3 bench/compress_timeline.py --lib build/lib/libbalancekv_cuda.so \\
      [--heads 32] [--tokens 32768] [--calls 3]

Queues `--calls` calls behind a sleep kernel (so the host runs ahead and no
launch waits for it), prints the time per call by CUDA events and then the
first call's kernels (start relative to the first, duration, in µs) from the
PyTorch profiler's trace.
"""
import argparse
import json
import os
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

from balancekv_bench import Lib, compress_cache


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    lib = Lib(args.lib)
    k, v = compress_cache(args.heads, args.tokens)
    p = lib.params(rounds=2)
    o = lib.compress_prepare(k, v, p)
    for _ in range(3):
        lib.compress(k, v, p, o, indices=False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(2_000_000)
        start.record()
        for _ in range(args.calls):
            lib.compress(k, v, p, o, indices=False)
        end.record()
        torch.cuda.synchronize()
    print(f"{args.calls} calls with the host ahead: "
          f"{start.elapsed_time(end) * 1000 / args.calls:.1f} us per call")
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace)
        events = json.load(open(trace))["traceEvents"]
    kernels = sorted((e for e in events if e.get("cat") == "kernel"
                      and "sleep" not in e["name"] and "spin" not in e["name"]),
                     key=lambda e: e["ts"])
    per_call = len(kernels) // max(args.calls, 1)
    t0 = kernels[0]["ts"] if kernels else 0
    for e in kernels[:per_call]:
        print(f'{e["ts"] - t0:9.1f} {e["dur"]:8.1f}  {e["name"][:70]}')


if __name__ == "__main__":
    main()
