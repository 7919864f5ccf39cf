// --balancekv-runtime-calls-pipeline: host LLVM IR that calls the hand-tuned
// kernels' memref entry points (libbalancekv_cuda.so) and allocates the
// results through the mgpu runtime; the GPU run is test/Integration/gpu-path.test.
// RUN: balancekv-opt %s --balancekv-runtime-calls-pipeline | mlir-translate --mlir-to-llvmir | FileCheck %s

// The C-interface wrappers of the declarations call libbalancekv_cuda.so.
// CHECK: define private i32 @balancekv_rt_weighted_decode_bf16(
// CHECK: call i32 @_mlir_ciface_balancekv_rt_weighted_decode_bf16(
// CHECK: declare i32 @_mlir_ciface_balancekv_rt_weighted_decode_bf16(ptr, ptr, ptr, ptr, i32, ptr, i32, ptr, float, i32)
// CHECK: define private i32 @balancekv_rt_compress_bf16(
// CHECK: call i32 @_mlir_ciface_balancekv_rt_compress_bf16(
// CHECK: declare i32 @_mlir_ciface_balancekv_rt_compress_bf16(ptr, ptr, ptr, ptr, ptr, i32, i64, i64, i64, i64, double, double, double, i64, float, i64)
// Results are allocated on the device and waited for before the calls.
// CHECK: define {{.*}} @decode(
// CHECK: call ptr @mgpuMemAlloc(
// CHECK: call void @mgpuStreamSynchronize(
// CHECK: call i32 @balancekv_rt_compress_bf16(
// CHECK: call ptr @mgpuMemAlloc(
// CHECK: call i32 @balancekv_rt_weighted_decode_bf16(
// CHECK: define void @_mlir_ciface_decode(
// CHECK: declare ptr @mgpuMemAlloc(i64, ptr, i8)
func.func @decode(%q: tensor<1x32x1x128xbf16>, %k: tensor<1x8x4096x128xbf16>,
                  %v: tensor<1x8x4096x128xbf16>) -> tensor<1x32x1x128xbf16> {
  %ck, %cv, %lw = balancekv.compress %k, %v <seed = 3>
      : tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16>
  %o = balancekv.weighted_attention %q, %ck, %cv, %lw causal
      : tensor<1x32x1x128xbf16>, tensor<1x8x1072x128xbf16>,
        tensor<1x8x1072x128xbf16>, tensor<1x8x1072xf32> -> tensor<1x32x1x128xbf16>
  return %o : tensor<1x32x1x128xbf16>
}
