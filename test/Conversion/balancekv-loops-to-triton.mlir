// RUN: balancekv-opt %s --split-input-file --balancekv-loops-to-triton -verify-diagnostics | FileCheck %s

// Each parallel loop a kernel: one program per point, the last dim as
// lanes (a tensor) where the body is straight-line code; buffers as pointers
// addressed row-major in i64; scalar loops kept; the host's loop over rounds
// unrolled, its value folded into the kernels; the plan (allocations,
// launches, copies, outputs) on the module.
// CHECK: module attributes {balancekv.triton_plans = "{\22scale_rounds\22:{\22buffers\22:[{\22dtype\22:\22fp32\22,\22name\22:\22buf0\22,\22shape\22:[4,8]}],\22inputs\22:[{\22dtype\22:\22fp16\22,\22name\22:\22arg0\22,\22shape\22:[4,8]}],\22outputs\22:[{\22name\22:\22buf0\22,\22shape\22:[4,8]}],\22steps\22:[{\22args\22:[\22arg0\22,\22buf0\22],\22grid\22:[1,4,1],\22kernel\22:\22scale_rounds_k0\22},{\22args\22:[\22buf0\22],\22grid\22:[8,4,1],\22kernel\22:\22scale_rounds_k1\22},{\22args\22:[\22buf0\22],\22grid\22:[8,4,1],\22kernel\22:\22scale_rounds_k2\22}]}}"}
// CHECK-LABEL: tt.func public @scale_rounds_k0
// CHECK-SAME: (%[[X:.*]]: !tt.ptr<f16>, %[[Y:.*]]: !tt.ptr<f32>)
// CHECK: %[[PY:.*]] = tt.get_program_id y : i32
// CHECK: %[[I:.*]] = arith.extsi %[[PY]] : i32 to i64
// CHECK: %[[PX:.*]] = tt.get_program_id x : i32
// CHECK: %[[R:.*]] = tt.make_range {end = 8 : i32, start = 0 : i32} : tensor<8xi32>
// CHECK: %[[J:.*]] = arith.addi %{{.*}} : tensor<8xi64>
// CHECK: %[[IS:.*]] = tt.splat %[[I]] : i64 -> tensor<8xi64>
// CHECK: %[[ROW:.*]] = arith.muli %[[IS]], %{{.*}} : tensor<8xi64>
// CHECK: %[[OFF:.*]] = arith.addi %[[ROW]], %[[J]] : tensor<8xi64>
// CHECK: %[[P:.*]] = tt.addptr %{{.*}}, %[[OFF]] : tensor<8x!tt.ptr<f16>>, tensor<8xi64>
// CHECK: %[[V:.*]] = tt.load %[[P]] : tensor<8x!tt.ptr<f16>>
// CHECK: %[[E:.*]] = arith.extf %[[V]] : tensor<8xf16> to tensor<8xf32>
// CHECK: tt.store %{{.*}}, %[[E]] : tensor<8x!tt.ptr<f32>>
// CHECK: tt.return
// CHECK-LABEL: tt.func public @scale_rounds_k1
// CHECK: %[[R:.*]] = arith.constant 0 : i64
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f32)  : i64
// CHECK-LABEL: tt.func public @scale_rounds_k2
// CHECK: arith.constant 1 : i64
// CHECK-NOT: func.func
func.func @scale_rounds(%x: memref<4x8xf16>) -> memref<4x8xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %y = memref.alloc() : memref<4x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c8) step (%c1, %c1) {
    %v = memref.load %x[%i, %j] : memref<4x8xf16>
    %e = arith.extf %v : f16 to f32
    memref.store %e, %y[%i, %j] : memref<4x8xf32>
    scf.reduce
  }
  scf.for %r = %c0 to %c2 step %c1 {
    scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c8) step (%c1, %c1) {
      %v = memref.load %y[%i, %j] : memref<4x8xf32>
      %ri = arith.index_cast %r : index to i64
      %rf = arith.sitofp %ri : i64 to f32
      %s = scf.for %k = %c0 to %j step %c1 iter_args(%acc = %v) -> (f32) {
        %a = arith.addf %acc, %rf : f32
        scf.yield %a : f32
      }
      memref.store %s, %y[%i, %j] : memref<4x8xf32>
      scf.reduce
    }
  }
  return %y : memref<4x8xf32>
}

// -----

// More than three parallel dims: linearised into x.
// CHECK: \22grid\22:[120,1,1]
// CHECK-LABEL: tt.func public @four_dims_k0
// CHECK: %[[ID:.*]] = tt.get_program_id x : i32
// CHECK-NOT: tt.get_program_id y
// CHECK: arith.remsi
// CHECK: arith.divsi
func.func @four_dims(%x: memref<2x3x4x5xf32>) -> memref<2x3x4x5xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c5 = arith.constant 5 : index
  %cst = arith.constant 1.0 : f32
  scf.parallel (%a, %b, %c, %d) = (%c0, %c0, %c0, %c0) to (%c2, %c3, %c4, %c5) step (%c1, %c1, %c1, %c1) {
    memref.store %cst, %x[%a, %b, %c, %d] : memref<2x3x4x5xf32>
    scf.reduce
  }
  return %x : memref<2x3x4x5xf32>
}

// -----

func.func @dynamic(%x: memref<?xf32>) {
  // expected-error @-1 {{balancekv-loops-to-triton: argument 0 is not a static identity-layout memref of a Triton element type}}
  return
}

// -----

func.func @host_compute(%x: memref<4xf32>) -> memref<4xf32> {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{balancekv-loops-to-triton: host op 'memref.load' is not supported (allocations, scf.parallel loops, copies and constant-bound loops are)}}
  %v = memref.load %x[%c0] : memref<4xf32>
  memref.store %v, %x[%c0] : memref<4xf32>
  return %x : memref<4xf32>
}

// -----

// A sum over a constant trip count (an inner product): the terms at once
// as a tensor (a chunk of up to 1024; here one), rounded up to a power of
// two and masked, then tt.reduce.
// CHECK-LABEL: tt.func public @inner_product_k0
// CHECK: %[[S:.*]] = scf.for %{{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (f64)  : i64 {
// CHECK: %[[R:.*]] = tt.make_range {end = 8 : i32, start = 0 : i32} : tensor<8xi32>
// CHECK: %[[M:.*]] = arith.cmpi slt, %{{.*}}, %{{.*}} : tensor<8xi64>
// CHECK: %[[A:.*]] = tt.load %{{.*}}, %[[M]], %{{.*}} : tensor<8x!tt.ptr<f64>>
// CHECK: %[[B:.*]] = tt.load %{{.*}}, %[[M]], %{{.*}} : tensor<8x!tt.ptr<f64>>
// CHECK: %[[P:.*]] = arith.mulf %[[A]], %[[B]] : tensor<8xf64>
// CHECK: %[[T:.*]] = arith.select %[[M]], %[[P]], %{{.*}} : tensor<8xi1>, tensor<8xf64>
// CHECK: %[[SUM:.*]] = "tt.reduce"(%[[T]]) <{axis = 0 : i32}>
// CHECK: arith.addf
// CHECK: tt.reduce.return
// CHECK: %[[NEXT:.*]] = arith.addf %[[ACC]], %[[SUM]] : f64
// CHECK: scf.yield %[[NEXT]] : f64
// CHECK: tt.store %{{.*}}, %[[S]] : !tt.ptr<f64>
func.func @inner_product(%a: memref<4x6xf64>, %b: memref<4x6xf64>) -> memref<4xf64> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c6 = arith.constant 6 : index
  %zero = arith.constant 0.0 : f64
  %out = memref.alloc() : memref<4xf64>
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    %s = scf.for %k = %c0 to %c6 step %c1 iter_args(%acc = %zero) -> (f64) {
      %x = memref.load %a[%i, %k] : memref<4x6xf64>
      %y = memref.load %b[%i, %k] : memref<4x6xf64>
      %p = arith.mulf %x, %y : f64
      %n = arith.addf %acc, %p : f64
      scf.yield %n : f64
    }
    memref.store %s, %out[%i] : memref<4xf64>
    scf.reduce
  }
  return %out : memref<4xf64>
}

// -----

// A sequential host loop whose unrolled copies still loop (the baselines'
// per-head nests) is an error naming what to do, not a silent host
// computation.
// expected-error @+1 {{balancekv-loops-to-triton: a host loop is left after unrolling (sequential host loops, e.g. the baselines' per-head nests, are not kernels: convert `compress` with method balance)}}
func.func @sequential_host_loop(%x: memref<4xf32>) -> memref<4xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %cst = arith.constant 1.0 : f32
  scf.for %i = %c0 to %c4 step %c1 {
    scf.for %j = %c0 to %i step %c1 {
      memref.store %cst, %x[%j] : memref<4xf32>
    }
  }
  return %x : memref<4xf32>
}

// -----

// A parallel loop with a reduction has no program-per-point form.
func.func @parallel_reduction(%x: memref<4xf32>) -> memref<4xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @+1 {{balancekv-loops-to-triton: parallel loops with reductions are not supported}}
  %s = scf.parallel (%i) = (%c0) to (%c4) step (%c1) init (%zero) -> f32 {
    %v = memref.load %x[%i] : memref<4xf32>
    scf.reduce(%v : f32) {
    ^bb0(%a: f32, %b: f32):
      %r = arith.addf %a, %b : f32
      scf.reduce.return %r : f32
    }
  }
  memref.store %s, %x[%c0] : memref<4xf32>
  return %x : memref<4xf32>
}
