#!/usr/bin/env python3
"""Compiles TTIR files with real Triton 3.6 (no GPU needed):
  python scripts/triton_compile_check.py [--same-ptx-as DIR] FILE.ttir [...]
Prints one line per file, `OK <name> <cubin bytes>` (plus `same PTX` when
DIR/<name>, the original, compiles to the same PTX) or `FAIL <name>: why`,
and exits non-zero if any failed. Files named *_sm100.ttir are compiled for
sm_100 (their ops need it: TMA gather/scatter), the rest for sm_90."""
import os
import sys

import triton
from triton.backends.compiler import GPUTarget


def compile_file(path):
    arch = 100 if path.endswith("_sm100.ttir") else 90
    return triton.compile(path, target=GPUTarget("cuda", arch, 32))


def first_line(error):
    """An exception's first line (Triton's are long), or its type's name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def main(argv):
    original = None
    if argv[:1] == ["--same-ptx-as"]:
        original, argv = argv[1], argv[2:]
    failed = 0
    for path in argv:
        name = os.path.basename(path)
        try:
            kernel = compile_file(path)
            note = ""
            if original:
                reference = compile_file(os.path.join(original, name))
                if kernel.asm["ptx"] != reference.asm["ptx"]:
                    raise RuntimeError("PTX differs from the original's")
                note = " same PTX"
            print(f"OK {name} {len(kernel.asm['cubin'])}{note}")
        except Exception as e:  # report and go on with the next file
            failed += 1
            print(f"FAIL {name}: {first_line(e)}")
    print(f"triton {triton.__version__}: {len(argv) - failed} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
