// RUN: balancekv-opt %s --balancekv-decompose-compress --split-input-file | FileCheck %s
// RUN: balancekv-opt %s --balancekv-decompose-compress=unroll-rounds --split-input-file | FileCheck %s --check-prefix=UNROLL

// The round structure: init, T rounds of walk + halve carrying the state,
// gather. The parameters travel with every stage that reads them.
// CHECK-LABEL: func.func @balance
// CHECK-SAME: (%[[K:.*]]: tensor<1x2x300x16xf32>, %[[V:.*]]: tensor<1x2x300x8xf32>)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
// CHECK: %[[TOK:.*]], %[[DBL:.*]] = balancekv.balance_init %[[K]] <rounds = 3, block_size = 64, seed = 5> : tensor<1x2x300x16xf32>
// CHECK: %[[R:.*]]:2 = scf.for %[[T:.*]] = %[[C0]] to %[[C3]] step %[[C1]] iter_args(%[[T0:.*]] = %[[TOK]], %[[D0:.*]] = %[[DBL]]) -> (tensor<1x2x236xi32>, tensor<1x2x236xi32>)
// CHECK:   %[[S:.*]] = balancekv.balance_walk %[[K]], %[[V]], %[[T0]], %[[D0]], %[[T]] <rounds = 3, block_size = 64, seed = 5> : tensor<1x2x300x16xf32>, tensor<1x2x300x8xf32>, tensor<1x2x236xi32>
// CHECK:   %[[T1:.*]], %[[D1:.*]] = balancekv.balance_halve %[[S]], %[[T0]], %[[D0]], %[[T]] : tensor<1x2x236xi8>, tensor<1x2x236xi32>
// CHECK:   scf.yield %[[T1]], %[[D1]]
// CHECK: %[[CK:.*]], %[[CV:.*]], %[[LW:.*]] = balancekv.gather_kept %[[K]], %[[V]], %[[R]]#0, %[[R]]#1 <rounds = 3, block_size = 64, seed = 5>
// CHECK: return %[[CK]], %[[CV]], %[[LW]] : tensor<1x2x93x16xf32>, tensor<1x2x93x8xf32>, tensor<1x2x93xf32>
// UNROLL-LABEL: func.func @balance
// UNROLL-NOT: scf.for
// UNROLL: balancekv.balance_init
// UNROLL-COUNT-3: balancekv.balance_halve
// UNROLL: balancekv.gather_kept
func.func @balance(%k: tensor<1x2x300x16xf32>, %v: tensor<1x2x300x8xf32>)
    -> (tensor<1x2x93x16xf32>, tensor<1x2x93x8xf32>, tensor<1x2x93xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 3, block_size = 64, seed = 5>
      : tensor<1x2x300x16xf32>, tensor<1x2x300x8xf32>
  return %ck, %cv, %lw : tensor<1x2x93x16xf32>, tensor<1x2x93x8xf32>, tensor<1x2x93xf32>
}

// -----

// Dynamic shapes: the state is [B, Hkv, ?].
// CHECK-LABEL: func.func @balance_dynamic
// CHECK: balancekv.balance_init %{{.*}} : tensor<?x2x?x16xbf16>
// CHECK: scf.for {{.*}} -> (tensor<?x2x?xi32>, tensor<?x2x?xi32>)
// CHECK: balancekv.gather_kept
func.func @balance_dynamic(%k: tensor<?x2x?x16xbf16>, %v: tensor<?x2x?x16xbf16>) -> tensor<?x2x?xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<?x2x?x16xbf16>, tensor<?x2x?x16xbf16>
  return %lw : tensor<?x2x?xf32>
}

// -----

// The baselines have no rounds: left alone.
// CHECK-LABEL: func.func @uniform
// CHECK: balancekv.compress %{{.*}}, %{{.*}} <method = uniform>
// CHECK-NOT: balancekv.balance_
func.func @uniform(%k: tensor<1x2x300x16xf32>, %v: tensor<1x2x300x8xf32>) -> tensor<1x2x123xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = uniform> : tensor<1x2x300x16xf32>, tensor<1x2x300x8xf32>
  return %lw : tensor<1x2x123xf32>
}
