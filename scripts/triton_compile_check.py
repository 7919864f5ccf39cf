#!/usr/bin/env python3
"""Compiles TTIR files with real Triton 3.6 for sm_90 (no GPU needed):
  python scripts/triton_compile_check.py FILE.ttir [...]
Prints one line per file, `OK <name> <cubin bytes>` or `FAIL <name>: why`,
and exits non-zero if any failed."""
import os
import sys

import triton
from triton.backends.compiler import GPUTarget


def main(paths):
    failed = 0
    for path in paths:
        name = os.path.basename(path)
        try:
            kernel = triton.compile(path, target=GPUTarget("cuda", 90, 32))
            print(f"OK {name} {len(kernel.asm['cubin'])}")
        except Exception as e:  # report and go on with the next file
            failed += 1
            msg = str(e).strip().splitlines()
            print(f"FAIL {name}: {msg[0] if msg else type(e).__name__}")
    print(f"triton {triton.__version__}: {len(paths) - failed} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
