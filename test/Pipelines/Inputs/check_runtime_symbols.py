"""Every mgpu* function the host LLVM IR declares must be defined by the
runtime library (llvm-nm -D --defined-only output). Prints what is missing."""
import re
import sys

declared = set(re.findall(r"^declare .*@(mgpu\w+)\(", open(sys.argv[1]).read(), re.M))
defined = {line.split()[-1] for line in open(sys.argv[2]) if line.strip()}
missing = sorted(declared - defined)
print("declared:", " ".join(sorted(declared)))
print("missing:", " ".join(missing) or "none")
sys.exit(1 if missing or not declared else 0)
