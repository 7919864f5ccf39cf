"""Splits the lit tests into a seed corpus for balancekv-fuzz-mlir.

Usage: fuzz_corpus.py OUTDIR. Every test/**/*.mlir is cut at `// -----`
(lit's split-input-file marker) and each piece that holds a balancekv op or
something our passes raise (linalg) becomes one file; RUN/CHECK comments
stay (they are comments to the parser and give the mutator text to work on).
"""
import os
import pathlib
import sys


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted((root / "test").rglob("*.mlir")):
        if "TritonCompat" in path.parts:
            continue
        for i, piece in enumerate(path.read_text().split("// -----")):
            if "balancekv." not in piece and "linalg." not in piece:
                continue
            name = "%s_%d.mlir" % (path.relative_to(root / "test")
                                   .as_posix().replace("/", "_")[:-5], i)
            (out / name).write_text(piece)
            count += 1
    print("fuzz_corpus: %d seeds in %s" % (count, out))


if __name__ == "__main__":
    main()
