// REQUIRES: ptxas
// Bad pipeline options are diagnosed and fail (upstream gpu-module-to-binary
// only reports a bad format or toolkit and would exit 0): a toolkit that does
// not exist, an unknown binary format, sm-count < 1 (the lowering).
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="toolkit=/nonexistent/cuda format=isa" -o /dev/null 2>&1 | FileCheck %s --check-prefix=TOOLKIT
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="format=bogus" -o /dev/null 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="sm-count=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SMS
// TOOLKIT: error: balancekv-gpu-pipeline: no CUDA toolkit at '/nonexistent/cuda' (libdevice, ptxas): pass toolkit=<dir> or set CUDA_HOME
// FORMAT: error: balancekv-gpu-pipeline: format must be isa, bin, fatbin or offloading, got 'bogus'
// SMS: error: balancekv-lower-to-gpu: sm-count must be >= 1, got 0
func.func @f(%q: tensor<1x1x1x16xf16>, %k: tensor<1x1x64x16xf16>,
             %v: tensor<1x1x64x16xf16>) -> tensor<1x1x1x16xf16> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x16xf16>, tensor<1x1x64x16xf16>, tensor<1x1x64x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}
