// REQUIRES: ptxas
// Bad pipeline options are diagnosed and fail (upstream gpu-module-to-binary
// only reports a bad format or toolkit and would exit 0): a toolkit that does
// not exist, an unknown binary format, and every option whose value would
// otherwise reach a pass or ptxas unchecked (the pipeline is built from
// passes, never from text, so `}` or `,` in a value cannot change it).
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="toolkit=/nonexistent/cuda format=isa" -o /dev/null 2>&1 | FileCheck %s --check-prefix=TOOLKIT
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="format=bogus" -o /dev/null 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="sm-count=0" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SMS
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="sm-count=4611686018427387904" -o /dev/null 2>&1 | FileCheck %s --check-prefix=SMS-HUGE
// RUN: not balancekv-opt %s --balancekv-gpu-pipeline="opt-level=-5" -o /dev/null 2>&1 | FileCheck %s --check-prefix=OPT
// RUN: not balancekv-opt %s '--balancekv-gpu-pipeline=features=a}b' -o /dev/null 2>&1 | FileCheck %s --check-prefix=FEATURES
// RUN: not balancekv-opt %s '--balancekv-gpu-pipeline=chip=sm_90,x' -o /dev/null 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not balancekv-opt %s '--balancekv-gpu-pipeline=chip=sm_90}' -o /dev/null 2>&1 | FileCheck %s --check-prefix=CHIP2
// TOOLKIT: error: balancekv-gpu-pipeline: no CUDA toolkit at '/nonexistent/cuda' (libdevice, ptxas): pass toolkit=<dir> or set CUDA_HOME
// FORMAT: error: balancekv-gpu-pipeline: format must be isa, bin, fatbin or offloading, got 'bogus'
// SMS: error: balancekv-gpu-pipeline: sm-count must be in [1, 65536], got 0
// SMS-HUGE: error: balancekv-gpu-pipeline: sm-count must be in [1, 65536], got 4611686018427387904
// OPT: error: balancekv-gpu-pipeline: opt-level must be in [0, 3], got -5
// FEATURES: error: balancekv-gpu-pipeline: features must be a comma list of +name or -name (e.g. +ptx80), got 'a}b'
// CHIP: error: balancekv-gpu-pipeline: chip must look like sm_90 or sm_90a, got 'sm_90,x'
// CHIP2: error: balancekv-gpu-pipeline: chip must look like sm_90 or sm_90a, got 'sm_90}'
func.func @f(%q: tensor<1x1x1x16xf16>, %k: tensor<1x1x64x16xf16>,
             %v: tensor<1x1x64x16xf16>) -> tensor<1x1x1x16xf16> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x16xf16>, tensor<1x1x64x16xf16>, tensor<1x1x64x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}
