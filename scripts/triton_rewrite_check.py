#!/usr/bin/env python3
"""Runs --balancekv-triton-weighted-attention on Triton kernels (TTIR) and
compiles every rewritten kernel with real Triton 3.6 (no GPU needed):

  PYTHONPATH=python python scripts/triton_rewrite_check.py \
      --opt build/bin/balancekv-opt --out DIR FILE.ttir [...]

Prints, per file, `REWRITTEN <name> +<new arguments> compiled <cubin bytes>`
or `UNCHANGED <name>: <the pass's remark>` (or `FAIL <name>: why`), then a
summary line; exits non-zero if a rewritten kernel does not compile or
balancekv-opt fails. The rewritten generic-form TTIR is left in DIR."""
import argparse
import os
import re
import subprocess
import sys

from balancekv.triton import appended_args
from triton_compile_check import compile_file, first_line


def rewrite(opt, path, out):
    proc = subprocess.run(
        [opt, path, "--balancekv-triton-weighted-attention=remarks",
         "--mlir-print-op-generic", "--mlir-print-debuginfo", "-o", out],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    remark = re.search(r"remark: balancekv-triton-weighted-attention: (.*)", proc.stderr)
    return remark.group(1) if remark else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--opt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rewritten = unchanged = failed = 0
    for path in args.files:
        name = os.path.basename(path)
        out = os.path.join(args.out, name)
        try:
            remark = rewrite(args.opt, path, out)
            if remark:
                unchanged += 1
                print(f"UNCHANGED {name}: {remark}")
                continue
            with open(out) as f:
                added = [name for name, _ in appended_args(f.read())]
            kernel = compile_file(out)
            rewritten += 1
            print(f"REWRITTEN {name} +{','.join(added)} compiled {len(kernel.asm['cubin'])}")
        except Exception as e:  # report and go on with the next file
            failed += 1
            print(f"FAIL {name}: {first_line(e)}")
    print(f"{rewritten} rewritten and compiled, {unchanged} unchanged, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
