#!/usr/bin/env python3
"""A front-end export raised, compressed and lowered by balancekv-opt, back
into IREE: compiled by iree-compile (llvm-cpu) and run by iree-run-module on
the inputs reference.py feeds (fixed_inputs.py), against our CPU pipeline's
output for the same program (reference.py program | --balancekv-cpu-pipeline
| mlir-runner, in CPU_OUT).

  iree_roundtrip.py OPT IREE_BIN FIXTURE CPU_OUT [compress options]
      [--signature-from EXPORT]

Prints the IREE dispatch count, max |IREE - CPU pipeline|, and whether they
agree. The export's arguments must be (query, key, value); for IREE's own
input IR (util.func over buffer views) --signature-from names a func.func
export of the same module whose arguments it has.
"""
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

import fixed_inputs

argv = sys.argv[1:]
signature_from = None
if "--signature-from" in argv:
    at = argv.index("--signature-from")
    signature_from = argv[at + 1]
    del argv[at:at + 2]
opt, iree_bin, fixture, cpu_out = argv[:4]
compress = argv[4] if len(argv) > 4 else "min-kv-len=1 max-query-len=0"

work = tempfile.mkdtemp()
lowered = subprocess.run(
    [opt, fixture, "--allow-unregistered-dialect", "--balancekv-raise-attention",
     f"--balancekv-compress-kv-cache={compress}", "--balancekv-lower-to-loops",
     "--canonicalize", "--cse"], check=True, capture_output=True, text=True).stdout
if re.search(r"tensor<[^>]*xindex>", lowered):
    sys.exit("index-typed tensors in the lowered program")
with open(os.path.join(work, "lowered.mlir"), "w") as f:
    f.write(lowered)

# Where our program sits in IREE's flow: after the input conversion (a
# front end's --compile-to=input), as plain linalg/scf/tensor IR. The walk is
# f64 by the spec: IREE's default demotion to f32 must stay off.
vmfb = os.path.join(work, "module.vmfb")
compiled = subprocess.run(
    [os.path.join(iree_bin, "iree-compile"), os.path.join(work, "lowered.mlir"),
     "--iree-input-type=none", "--iree-hal-target-device=local",
     "--iree-hal-local-target-device-backends=llvm-cpu",
     "--iree-llvmcpu-target-cpu=generic", "--iree-input-demote-f64-to-f32=false",
     "--compile-to=end", "-o", vmfb], capture_output=True, text=True)
if compiled.returncode != 0:
    sys.exit("iree-compile failed:\n" + compiled.stderr)
flow = subprocess.run(
    [os.path.join(iree_bin, "iree-compile"), os.path.join(work, "lowered.mlir"),
     "--iree-input-type=none", "--iree-hal-target-device=local",
     "--iree-hal-local-target-device-backends=llvm-cpu",
     "--iree-input-demote-f64-to-f32=false", "--compile-to=flow"],
    capture_output=True, text=True).stdout
dispatches = len(re.findall(r"flow\.executable private", flow))

sig = re.search(r"func\.func (?:public )?@(\w+)\((.*?)\) ->",
                open(signature_from).read() if signature_from else lowered)
args = re.findall(r"%\w+: tensor<([0-9x]+)x(f16|f32)>", sig.group(2))
cmd = [os.path.join(iree_bin, "iree-run-module"), f"--module={vmfb}",
       "--device=local-task", f"--function={sig.group(1)}"]
for i, (shape, elem) in enumerate(args):
    dims = [int(d) for d in shape.split("x")]
    data = np.array(fixed_inputs.values(i, math.prod(dims), elem), dtype=np.float32)
    path = os.path.join(work, f"in{i}.npy")
    np.save(path, data.reshape(dims).astype(np.float16 if elem == "f16" else np.float32))
    cmd.append(f"--input=@{path}")
out_path = os.path.join(work, "out.npy")
cmd.append(f"--output=@{out_path}")
subprocess.run(cmd, check=True, capture_output=True)
iree = np.load(out_path).astype(np.float64).ravel()

text = open(cpu_out).read()
ours = np.array(fixed_inputs.printed_values(text))
diff = float(np.abs(iree - ours).max()) if iree.size == ours.size else math.inf
elem = args[0][1]
tol = 2e-3 if elem == "f16" else 1e-5
print(f"iree: {dispatches} dispatches; {iree.size} outputs; "
      f"max |iree - cpu pipeline| = {diff:.2e}")
print("equal to the CPU pipeline" if diff <= tol else "DIFFERENT from the CPU pipeline")
