// RUN: balancekv-opt %s --split-input-file --balancekv-loops-to-triton -verify-diagnostics | FileCheck %s

// Each parallel loop a kernel: one program per point (last dim on x),
// buffers as pointers addressed row-major in i64, scalar loops kept; the
// host's loop over rounds unrolled, its value folded into the kernels; the
// plan (allocations, launches, copies, outputs) on the module.
// CHECK: module attributes {balancekv.triton_plans = "{\22scale_rounds\22:{\22buffers\22:[{\22dtype\22:\22fp32\22,\22name\22:\22buf0\22,\22shape\22:[4,8]}],\22inputs\22:[{\22dtype\22:\22fp16\22,\22name\22:\22arg0\22,\22shape\22:[4,8]}],\22outputs\22:[{\22name\22:\22buf0\22,\22shape\22:[4,8]}],\22steps\22:[{\22args\22:[\22arg0\22,\22buf0\22],\22grid\22:[8,4,1],\22kernel\22:\22scale_rounds_k0\22},{\22args\22:[\22buf0\22],\22grid\22:[8,4,1],\22kernel\22:\22scale_rounds_k1\22},{\22args\22:[\22buf0\22],\22grid\22:[8,4,1],\22kernel\22:\22scale_rounds_k2\22}]}}"}
// CHECK-LABEL: tt.func public @scale_rounds_k0
// CHECK-SAME: (%[[X:.*]]: !tt.ptr<f16>, %[[Y:.*]]: !tt.ptr<f32>)
// CHECK-DAG: %[[PX:.*]] = tt.get_program_id x : i32
// CHECK-DAG: %[[PY:.*]] = tt.get_program_id y : i32
// CHECK-DAG: %[[I:.*]] = arith.extsi %[[PY]] : i32 to i64
// CHECK-DAG: %[[J:.*]] = arith.extsi %[[PX]] : i32 to i64
// CHECK: %[[ROW:.*]] = arith.muli %[[I]], %{{.*}} : i64
// CHECK: %[[OFF:.*]] = arith.addi %[[ROW]], %[[J]] : i64
// CHECK: %[[P:.*]] = tt.addptr %[[X]], %[[OFF]] : !tt.ptr<f16>, i64
// CHECK: %[[V:.*]] = tt.load %[[P]] : !tt.ptr<f16>
// CHECK: %[[E:.*]] = arith.extf %[[V]] : f16 to f32
// CHECK: tt.store %{{.*}}, %[[E]] : !tt.ptr<f32>
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
