// REQUIRES: ptxas
// The whole GPU pipeline down to PTX text (format=isa): FileCheck the key
// instructions, then ptxas must accept the PTX for sm_90.
// RUN: balancekv-opt %s --balancekv-gpu-pipeline="chip=sm_90 features=+ptx80 format=isa" -o %t.isa.mlir
// RUN: FileCheck %s --check-prefix=HOST < %t.isa.mlir
// RUN: %python %balancekv_src_root/scripts/extract-gpu-binary.py %t.isa.mlir > %t.ptx
// RUN: FileCheck %s --check-prefix=PTX < %t.ptx
// RUN: %ptxas -arch=sm_90 %t.ptx -o %t.cubin
// cubin through ptxas, and the host side as LLVM IR calling the mgpu* runtime.
// RUN: balancekv-opt %s --balancekv-gpu-pipeline="format=bin" -o %t.bin.mlir
// RUN: FileCheck %s --check-prefix=BIN < %t.bin.mlir
// RUN: mlir-translate --mlir-to-llvmir %t.bin.mlir | FileCheck %s --check-prefix=LLVM
// RUN: %python %balancekv_src_root/scripts/extract-gpu-binary.py %t.bin.mlir -o %t.cubin2
// RUN: %python %S/Inputs/check_magic.py %t.cubin2 7f454c46
// The default format is a fatbin (fatbinary from the toolkit).
// RUN: balancekv-opt %s --balancekv-gpu-pipeline -o %t.fat.mlir
// RUN: %python %balancekv_src_root/scripts/extract-gpu-binary.py %t.fat.mlir -o %t.fatbin
// RUN: %python %S/Inputs/check_magic.py %t.fatbin 50ed55ba

// HOST: llvm.func @compress(
// HOST: gpu.launch_func <%{{.*}} : !llvm.ptr> @balancekv_kernels::@balancekv_walk
// HOST: llvm.func @_mlir_ciface_compress(
// HOST: gpu.binary @balancekv_kernels [#gpu.object<#nvvm.target<{{.*}}chip = "sm_90", features = "+ptx80">, {{.*}}assembly = "

// PTX: .target sm_90
// PTX: .visible .entry balancekv_init_tokens(
// PTX: .maxntid 256, 1, 1
// PTX: .visible .entry balancekv_walk(
// PTX: .maxntid 256, 1, 1
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX: ex2.approx
// PTX: bar.sync
// PTX: .visible .entry balancekv_select(
// PTX: .maxntid 1024, 1, 1
// PTX: .visible .entry balancekv_gather(
// PTX: .visible .entry balancekv_decode_split(
// PTX: ld.global.v4.b32
// PTX: shfl.sync.bfly.b32
// PTX: .visible .entry balancekv_decode_combine(

// BIN: gpu.binary @balancekv_kernels [#gpu.object<#nvvm.target<{{.*}}chip = "sm_90", features = "+ptx80">, {{.*}}bin = "

// LLVM-DAG: declare ptr @mgpuStreamCreate()
// LLVM-DAG: declare ptr @mgpuMemAlloc(i64, ptr, i8)
// LLVM-DAG: declare void @mgpuMemFree(ptr, ptr)
// LLVM-DAG: declare ptr @mgpuModuleLoad(ptr, i64)
// LLVM-DAG: declare void @mgpuLaunchKernel(ptr, i64, i64, i64, i64, i64, i64, i32, ptr, ptr, ptr, i64)
// LLVM-DAG: define void @_mlir_ciface_compress(ptr %0, ptr %1, ptr %2)
// LLVM-DAG: define void @_mlir_ciface_decode(ptr %0, ptr %1, ptr %2, ptr %3, ptr %4)

func.func @compress(%k: tensor<1x2x600x64xbf16>, %v: tensor<1x2x600x64xbf16>)
    -> (tensor<1x2x198x64xbf16>, tensor<1x2x198x64xbf16>, tensor<1x2x198xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2, seed = 7>
      : tensor<1x2x600x64xbf16>, tensor<1x2x600x64xbf16>
  return %ck, %cv, %lw : tensor<1x2x198x64xbf16>, tensor<1x2x198x64xbf16>, tensor<1x2x198xf32>
}

func.func @decode(%q: tensor<1x4x1x64xbf16>, %k: tensor<1x2x198x64xbf16>,
                  %v: tensor<1x2x198x64xbf16>, %lw: tensor<1x2x198xf32>) -> tensor<1x4x1x64xbf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw
      : tensor<1x4x1x64xbf16>, tensor<1x2x198x64xbf16>, tensor<1x2x198x64xbf16>,
        tensor<1x2x198xf32> -> tensor<1x4x1x64xbf16>
  return %o : tensor<1x4x1x64xbf16>
}
