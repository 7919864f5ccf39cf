// REQUIRES: mlir-runner, uninstrumented
// Method adaptive through --balancekv-cpu-pipeline: compress becomes a call
// of the CPU reference (libbalancekv_capi.so), the rest the usual loops.
// RUN: balancekv-opt %s --balancekv-lower-to-loops | FileCheck %s --check-prefix=IR
// RUN: balancekv-opt %s --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:     -shared-libs=%balancekv_obj_root/lib/libbalancekv_capi.so \
// RUN:   | FileCheck %s

// IR: func.func private @balancekv_rt_reference_compress_f32({{.*}}) -> i32 attributes {llvm.emit_c_interface}
// IR-LABEL: func.func @compress_adaptive
// IR: %[[OBS:.*]] = memref.cast %{{.*}} : memref<1x4x8x16xf32> to memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>
// IR: call @balancekv_rt_reference_compress_f32(%{{.*}}, %{{.*}}, %[[OBS]], %{{.*}}, %{{.*}}, %{{.*}}, %c5_i32,

// 300 tokens, 2 KV heads, defaults: a mean of 32 + (236 >> 2) + 32 = 123
// tokens per head in 246 slots. Printed: the kept tokens of both heads
// (at most 246), whether the padding is a suffix of -inf log-weights, and
// max |weighted attention over the padded layout - the same with kv_len per
// head (the kept counts)|: the padding contributes nothing.
// The split is the reference's (balancekv.reference_compress_observed on the
// same data gives [95, 68]): the heads do not keep 123 each.
// CHECK: kept per head: 95 68
// CHECK-NEXT: kept within 246: 1
// CHECK-NEXT: padding is a suffix: 1
// CHECK-NEXT: 0

#id4 = affine_map<(b, h, n, d) -> (b, h, n, d)>
#id3 = affine_map<(b, h, n) -> (b, h, n)>

func.func private @printI64(i64)
func.func private @printF32(f32)
func.func private @printNewline()
func.func private @printString(!llvm.ptr)

// sin(0.37 n + 1.3 d + h + phase) * amp
func.func @make(%phase: f32, %amp: f32, %e: tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32> {
  %t = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : tensor<?x?x?x?xf32>) {
  ^bb0(%out: f32):
    %hi = linalg.index 1 : index
    %ni = linalg.index 2 : index
    %di = linalg.index 3 : index
    %hh = arith.index_cast %hi : index to i32
    %nn = arith.index_cast %ni : index to i32
    %dd = arith.index_cast %di : index to i32
    %hf = arith.sitofp %hh : i32 to f32
    %nf = arith.sitofp %nn : i32 to f32
    %df = arith.sitofp %dd : i32 to f32
    %c37 = arith.constant 0.37 : f32
    %c13 = arith.constant 1.3 : f32
    %x0 = arith.mulf %nf, %c37 : f32
    %x1 = arith.mulf %df, %c13 : f32
    %x2 = arith.addf %x0, %x1 : f32
    %x3 = arith.addf %x2, %hf : f32
    %x4 = arith.addf %x3, %phase : f32
    %s = math.sin %x4 : f32
    %a = arith.mulf %s, %amp : f32
    linalg.yield %a : f32
  } -> tensor<?x?x?x?xf32>
  return %t : tensor<?x?x?x?xf32>
}

func.func @compress_adaptive(%k: tensor<1x2x300x16xf32>, %v: tensor<1x2x300x16xf32>, %obs: tensor<1x4x8x16xf32>)
    -> (tensor<1x2x246x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%obs : tensor<1x4x8x16xf32>) <method = adaptive>
      : tensor<1x2x300x16xf32>, tensor<1x2x300x16xf32>
  return %ck, %cv, %lw : tensor<1x2x246x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246xf32>
}

func.func @main() {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c300 = arith.constant 300 : index
  %p0 = arith.constant 0.0 : f32
  %p1 = arith.constant 0.7 : f32
  %p2 = arith.constant 2.1 : f32
  %one = arith.constant 1.0 : f32
  %three = arith.constant 3.0 : f32
  %ek = tensor.empty(%c1, %c2, %c300, %c16) : tensor<?x?x?x?xf32>
  %eq = tensor.empty(%c1, %c4, %c8, %c16) : tensor<?x?x?x?xf32>
  %kd = call @make(%p0, %three, %ek) : (f32, f32, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %vd = call @make(%p1, %one, %ek) : (f32, f32, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %od = call @make(%p2, %three, %eq) : (f32, f32, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %k = tensor.cast %kd : tensor<?x?x?x?xf32> to tensor<1x2x300x16xf32>
  %v = tensor.cast %vd : tensor<?x?x?x?xf32> to tensor<1x2x300x16xf32>
  %obs = tensor.cast %od : tensor<?x?x?x?xf32> to tensor<1x4x8x16xf32>
  %ck, %cv, %lw = call @compress_adaptive(%k, %v, %obs)
      : (tensor<1x2x300x16xf32>, tensor<1x2x300x16xf32>, tensor<1x4x8x16xf32>)
      -> (tensor<1x2x246x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246xf32>)

  // Kept per head: the finite log-weights; padding a suffix: no finite
  // log-weight after a -inf one (counted as "finite after -inf" pairs).
  %zi = arith.constant 0 : i32
  %e2 = tensor.empty() : tensor<1x2xi32>
  %z2 = linalg.fill ins(%zi : i32) outs(%e2 : tensor<1x2xi32>) -> tensor<1x2xi32>
  %kept = linalg.generic {indexing_maps = [#id3, affine_map<(b, h, n) -> (b, h)>],
                          iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%lw : tensor<1x2x246xf32>) outs(%z2 : tensor<1x2xi32>) {
  ^bb0(%w: f32, %acc: i32):
    %ninf = arith.constant 0xFF800000 : f32
    %fin = arith.cmpf one, %w, %ninf : f32
    %one_i = arith.extui %fin : i1 to i32
    %s = arith.addi %acc, %one_i : i32
    linalg.yield %s : i32
  } -> tensor<1x2xi32>
  %i0 = arith.constant 0 : index
  %k0 = tensor.extract %kept[%i0, %i0] : tensor<1x2xi32>
  %k1 = tensor.extract %kept[%i0, %c1] : tensor<1x2xi32>
  %sum = arith.addi %k0, %k1 : i32
  %c246 = arith.constant 246 : i32
  %within = arith.cmpi sle, %sum, %c246 : i32
  %within64 = arith.extui %within : i1 to i64
  %bad0 = tensor.empty() : tensor<i32>
  %badz = linalg.fill ins(%zi : i32) outs(%bad0 : tensor<i32>) -> tensor<i32>
  %bad = linalg.generic {indexing_maps = [#id3, affine_map<(b, h, n) -> (b, h)>, affine_map<(b, h, n) -> ()>],
                         iterator_types = ["reduction", "reduction", "reduction"]}
      ins(%lw, %kept : tensor<1x2x246xf32>, tensor<1x2xi32>) outs(%badz : tensor<i32>) {
  ^bb0(%w: f32, %len: i32, %acc: i32):
    %ni = linalg.index 2 : index
    %n32 = arith.index_cast %ni : index to i32
    %ninf = arith.constant 0xFF800000 : f32
    %fin = arith.cmpf one, %w, %ninf : f32
    %inside = arith.cmpi slt, %n32, %len : i32
    %wrong = arith.cmpi ne, %fin, %inside : i1
    %w32 = arith.extui %wrong : i1 to i32
    %s = arith.addi %acc, %w32 : i32
    linalg.yield %s : i32
  } -> tensor<i32>
  %badv = tensor.extract %bad[] : tensor<i32>
  %ok = arith.cmpi eq, %badv, %zi : i32
  %ok64 = arith.extui %ok : i1 to i64
  %lbl0 = llvm.mlir.addressof @per_head_label : !llvm.ptr
  call @printString(%lbl0) : (!llvm.ptr) -> ()
  %k0_64 = arith.extsi %k0 : i32 to i64
  %k1_64 = arith.extsi %k1 : i32 to i64
  call @printI64(%k0_64) : (i64) -> ()
  %sp = llvm.mlir.addressof @space : !llvm.ptr
  call @printString(%sp) : (!llvm.ptr) -> ()
  call @printI64(%k1_64) : (i64) -> ()
  call @printNewline() : () -> ()
  %lbl1 = llvm.mlir.addressof @kept_label : !llvm.ptr
  call @printString(%lbl1) : (!llvm.ptr) -> ()
  call @printI64(%within64) : (i64) -> ()
  call @printNewline() : () -> ()
  %lbl2 = llvm.mlir.addressof @pad_label : !llvm.ptr
  call @printString(%lbl2) : (!llvm.ptr) -> ()
  call @printI64(%ok64) : (i64) -> ()
  call @printNewline() : () -> ()

  // The padded layout as it is vs the same with per-head lengths.
  %q = tensor.extract_slice %obs[0, 0, 7, 0] [1, 4, 1, 16] [1, 1, 1, 1] : tensor<1x4x8x16xf32> to tensor<1x4x1x16xf32>
  %padded = balancekv.weighted_attention %q, %ck, %cv, %lw
      : tensor<1x4x1x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246xf32> -> tensor<1x4x1x16xf32>
  %ragged = balancekv.weighted_attention %q, %ck, %cv, %lw kv_len(%kept : tensor<1x2xi32>)
      : tensor<1x4x1x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246x16xf32>, tensor<1x2x246xf32> -> tensor<1x4x1x16xf32>
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<f32>
  %i = linalg.fill ins(%z : f32) outs(%e0 : tensor<f32>) -> tensor<f32>
  %m = linalg.generic {indexing_maps = [#id4, #id4, affine_map<(b, h, n, d) -> ()>],
                       iterator_types = ["reduction", "reduction", "reduction", "reduction"]}
      ins(%padded, %ragged : tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>) outs(%i : tensor<f32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %d = arith.subf %x, %y : f32
    %ad = math.absf %d : f32
    %r = arith.maximumf %acc, %ad : f32
    linalg.yield %r : f32
  } -> tensor<f32>
  %mv = tensor.extract %m[] : tensor<f32>
  call @printF32(%mv) : (f32) -> ()
  call @printNewline() : () -> ()
  return
}

llvm.mlir.global internal constant @per_head_label("kept per head: \00") {addr_space = 0 : i32}
llvm.mlir.global internal constant @space(" \00") {addr_space = 0 : i32}
llvm.mlir.global internal constant @kept_label("kept within 246: \00") {addr_space = 0 : i32}
llvm.mlir.global internal constant @pad_label("padding is a suffix: \00") {addr_space = 0 : i32}
