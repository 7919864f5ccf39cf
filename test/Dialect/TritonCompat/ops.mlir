// RUN: balancekv-opt %s | FileCheck %s
// RUN: balancekv-opt %s --mlir-print-op-generic | balancekv-opt | FileCheck %s
// Ops the fixtures do not use, in Triton 3.6's syntax.

// CHECK-LABEL: tt.func @casts_and_atomics
tt.func @casts_and_atomics(%p: !tt.ptr<f32>, %i: i64, %x: f32, %h: tensor<4xf16>) -> i32 {
  // CHECK: tt.ptr_to_int %{{.*}} : !tt.ptr<f32> -> i64
  %a = tt.ptr_to_int %p : !tt.ptr<f32> -> i64
  // CHECK: tt.int_to_ptr %{{.*}} : i64 -> !tt.ptr<f32>
  %b = tt.int_to_ptr %i : i64 -> !tt.ptr<f32>
  // CHECK: tt.bitcast %{{.*}} : f32 -> i32
  %c = tt.bitcast %x : f32 -> i32
  // CHECK: tt.fp_to_fp %{{.*}}, rounding = rtne : tensor<4xf16> -> tensor<4xf32>
  %d = tt.fp_to_fp %h, rounding = rtne : tensor<4xf16> -> tensor<4xf32>
  // CHECK: tt.atomic_rmw fadd, acq_rel, gpu, %{{.*}}, %{{.*}} : (!tt.ptr<f32>, f32) -> f32
  %e = tt.atomic_rmw fadd, acq_rel, gpu, %p, %x : (!tt.ptr<f32>, f32) -> f32
  // CHECK: tt.atomic_cas relaxed, cta, %{{.*}}, %{{.*}}, %{{.*}} : (!tt.ptr<f32>, f32, f32) -> f32
  %f = tt.atomic_cas relaxed, cta, %p, %x, %x : (!tt.ptr<f32>, f32, f32) -> f32
  // CHECK: tt.get_num_programs z : i32
  %n = tt.get_num_programs z : i32
  // CHECK: tt.load %{{.*}} cacheModifier = cg evictionPolicy = evict_first : !tt.ptr<f32, 3>
  %s = tt.int_to_ptr %i : i64 -> !tt.ptr<f32, 3>
  %l = tt.load %s cacheModifier = cg evictionPolicy = evict_first : !tt.ptr<f32, 3>
  // CHECK: tt.reshape %{{.*}} allow_reorder : tensor<4xf16> -> tensor<2x2xf16>
  %r = tt.reshape %h allow_reorder : tensor<4xf16> -> tensor<2x2xf16>
  // CHECK: tt.call @callee(%{{.*}}) : (f32) -> f32
  %g = tt.call @callee(%x) : (f32) -> f32
  // CHECK: tt.return %{{.*}} : i32
  tt.return %n : i32
}

// CHECK-LABEL: tt.func private @callee
tt.func private @callee(%x: f32) -> f32 {
  tt.return %x : f32
}

// CHECK-LABEL: tt.func @scan
// CHECK: "tt.scan"(%{{.*}}) <{axis = 0 : i32, reverse = false}>
// CHECK: tt.scan.return
tt.func @scan(%t: tensor<8xf32>) -> tensor<8xf32> {
  %y = "tt.scan"(%t) <{axis = 0 : i32, reverse = false}> ({
  ^bb0(%a: f32, %b: f32):
    %s = arith.addf %a, %b : f32
    tt.scan.return %s : f32
  }) : (tensor<8xf32>) -> tensor<8xf32>
  tt.return %y : tensor<8xf32>
}

// Block pointers and print.
// CHECK-LABEL: tt.func @block_pointers
// CHECK: %[[B:.*]] = tt.make_tensor_ptr %{{.*}}, [%{{.*}}, %{{.*}}], [%{{.*}}, %{{.*}}], [%{{.*}}, %{{.*}}] {order = array<i32: 1, 0>} : <tensor<64x64xf16>>
// CHECK: tt.advance %[[B]], [%{{.*}}, %{{.*}}] : <tensor<64x64xf16>>
// CHECK: tt.print " x: " {hex = false, isSigned = array<i32: 1>} : %{{.*}} : i32
tt.func @block_pointers(%p: !tt.ptr<f16>, %n: i64, %o: i32) {
  %b = tt.make_tensor_ptr %p, [%n, %n], [%n, %n], [%o, %o] {order = array<i32: 1, 0>} : <tensor<64x64xf16>>
  %c = tt.advance %b, [%o, %o] : <tensor<64x64xf16>>
  tt.print " x: " {hex = false, isSigned = array<i32: 1>} : %o : i32
  tt.return
}
