"""Reads --balancekv-convert-to-triton's output (argv[1]) as a
balancekv.triton.TritonProgram, prints each plan's launches and compiles
every kernel with Triton 3.6 for sm_90 (no GPU)."""
import sys

from triton.backends.compiler import GPUTarget

from balancekv.triton import TritonProgram

program = TritonProgram.parse(open(sys.argv[1]).read())
for name, plan in sorted(program.plans.items()):
    print(name, "inputs", [(i["shape"], i["dtype"]) for i in plan["inputs"]])
    for step in plan["steps"]:
        print(" ", step.get("kernel", "copy"), step.get("grid", step.get("copy")))
    print("  outputs", [(o["name"], o["shape"]) for o in plan["outputs"]])
compiled = program.compile(target=GPUTarget("cuda", 90, 32))
print(f"{len(compiled)} of {len(program.kernels)} kernels compiled")
