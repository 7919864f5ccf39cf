// RUN: balancekv-opt %s --balancekv-lower-to-loops --split-input-file | FileCheck %s
// The result bufferizes with one-shot bufferization as the CPU pipeline runs
// it (each round's walk state is a new buffer: slots read the old one).
// RUN: balancekv-opt %s --balancekv-lower-to-loops --canonicalize --one-shot-bufferize="bufferize-function-boundaries allow-return-allocs-from-loops" --split-input-file | FileCheck %s --check-prefix=BUF

// CHECK-LABEL: func.func @attention_gqa_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x2x16xf16>, %[[K:.*]]: tensor<1x2x10x16xf16>, %[[V:.*]]: tensor<1x2x10x8xf16>)
// CHECK-NOT: balancekv.
// Q viewed as [B, Hkv, G, L, D] for GQA.
// CHECK: %[[Q5:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0], [1, 2], [3], [4]] output_shape [1, 2, 2, 2, 16]
// Q·Kᵀ accumulates in f32.
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%[[Q5]], %[[K]] : tensor<1x2x2x2x16xf16>, tensor<1x2x10x16xf16>)
// CHECK: arith.extf %{{.*}} : f16 to f32
// Scale and the causal mask: query l sits at N - L + l.
// CHECK: arith.constant 2.500000e-01 : f32
// CHECK: linalg.index 3
// CHECK: linalg.index 4
// CHECK: arith.cmpi slt
// CHECK: arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// Row max, exp, row sum, P·V, normalise and truncate.
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.addf
// CHECK: arith.divf
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0], [1, 2], [3], [4]] : tensor<1x2x2x2x8xf16> into tensor<1x4x2x8xf16>
// BUF-LABEL: func.func @attention_gqa_causal
// BUF-NOT: tensor.
// BUF: return %{{.*}} : memref<1x4x2x8xf16
func.func @attention_gqa_causal(%q: tensor<1x4x2x16xf16>, %k: tensor<1x2x10x16xf16>,
                                %v: tensor<1x2x10x8xf16>) -> tensor<1x4x2x8xf16> {
  %o = balancekv.attention %q, %k, %v causal scale(0.25)
      : tensor<1x4x2x16xf16>, tensor<1x2x10x16xf16>, tensor<1x2x10x8xf16> -> tensor<1x4x2x8xf16>
  return %o : tensor<1x4x2x8xf16>
}

// -----

// The log-weights are added to the scaled logits (IREE's mask position).
// CHECK-LABEL: func.func @weighted_attention_kv_len
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<2x1x6xf32>, %[[LEN:.*]]: tensor<2xi64>
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[W]], %[[LEN]] : tensor<2x1x1x1x6xf32>, tensor<2x1x6xf32>, tensor<2xi64>)
// CHECK: %[[S:.*]] = arith.mulf
// CHECK: arith.addf %[[S]]
// CHECK: arith.index_cast %{{.*}} : i64 to index
// CHECK: arith.cmpi slt
func.func @weighted_attention_kv_len(%q: tensor<2x1x1x4xf32>, %k: tensor<2x1x6x4xf32>,
                                    %v: tensor<2x1x6x4xf32>, %w: tensor<2x1x6xf32>,
                                    %len: tensor<2xi64>) -> tensor<2x1x1x4xf32> {
  %o = balancekv.weighted_attention %q, %k, %v, %w kv_len(%len : tensor<2xi64>)
      : tensor<2x1x1x4xf32>, tensor<2x1x6x4xf32>, tensor<2x1x6x4xf32>, tensor<2x1x6xf32>
      -> tensor<2x1x1x4xf32>
  return %o : tensor<2x1x1x4xf32>
}

// -----

// compress (balance): its stages (decomposeCompress) in an scf.for over the
// rounds, each lowered in place to linalg.generic ops whose bodies loop
// (nothing is written element by element outside them, so a compiler that
// forms dispatches from linalg ops, IREE, runs each as one parallel op).
// balance_init: the middle's positions; balance_walk: L_t = L_0 >> t, each
// block's mean key [B, H, NB, D], then per (batch, head, block) the walk: the
// weights 2^r (as an f64 exponent), the Gram entry
// exp(tau s <kc_i, kc_j>) (<wv_i, wv_j> + c0) as it is needed, Philox-4x32-10
// as 20 arith.mului_extended, the signs as two i64 words; then the signs per
// token; balance_halve: the crossover and kappa per (batch, head), the
// kept-colour count per chunk, each slot's token (one more doubling up to c);
// gather_kept: each slot's row and log w = r ln 2, gathers of the rows.
// CHECK-LABEL: func.func @compress_balance
// CHECK-NOT: balancekv.
// CHECK: linalg.generic
// CHECK: arith.index_cast %{{.*}} : index to i32
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (tensor<1x2x236xi32>, tensor<1x2x236xi32>)
// CHECK: arith.shrui %{{.*}}, %[[T]] : index
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x2x4x16xf64>)
// CHECK: arith.divf
// CHECK: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<1x2x4xi64>, tensor<1x2x4xi64>)
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (i64, i64)
// CHECK: arith.bitcast %{{.*}} : i64 to f64
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[I]] step %{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f64)
// Gram: exp(tau * s * <kc_i, kc_j>) * (<wv_i, wv_j> + c0), tau * s = 1/sqrt(16).
// CHECK: arith.constant 2.500000e-01 : f64
// CHECK: math.exp
// CHECK: arith.constant 2.500000e-02 : f64
// CHECK-COUNT-20: arith.mului_extended
// CHECK: arith.cmpf olt
// CHECK: arith.ori
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x2x236xi8>)
// Crossover and kappa, chunk counts, slots.
// CHECK: arith.divui %{{.*}}, %c2
// CHECK: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<1x2xi32>, tensor<1x2xi8>)
// CHECK: arith.maxui
// CHECK: scf.if
// CHECK: arith.subi %{{.*}}, %{{.*}} : i8
// CHECK: linalg.generic {{.*}} outs(%{{.*}} : tensor<1x2x2xi32>)
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x2x236xi32>, tensor<1x2x236xi32>) outs(%{{.*}}, %{{.*}} : tensor<1x2x236xi32>, tensor<1x2x236xi32>)
// CHECK: arith.extui %{{.*}} : i1 to i32
// Slots, then gathers by i32 row indices (index-typed tensors cannot cross
// IREE's dispatch boundaries).
// CHECK: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}} : tensor<1x2x?xi32>, tensor<1x2x?xf32>)
// CHECK: arith.constant 0.69314718055994529 : f64
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x2x?xi32>) outs(%{{.*}} : tensor<1x2x?x16xf32>)
// CHECK: tensor.cast %{{.*}} : tensor<1x2x?x16xf32> to tensor<1x2x123x16xf32>
// BUF-LABEL: func.func @compress_balance
// BUF-NOT: tensor.
// BUF: return
func.func @compress_balance(%k: tensor<1x2x300x16xf32>, %v: tensor<1x2x300x8xf32>)
    -> (tensor<1x2x123x16xf32>, tensor<1x2x123x8xf32>, tensor<1x2x123xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <block_size = 64>
      : tensor<1x2x300x16xf32>, tensor<1x2x300x8xf32>
  return %ck, %cv, %lw : tensor<1x2x123x16xf32>, tensor<1x2x123x8xf32>, tensor<1x2x123xf32>
}

// -----

// The stages lower on their own too (a back end's decomposition, dynamic
// shapes): the state's L_0 and the layout come from the operands.
// CHECK-LABEL: func.func @balance_stages_dynamic
// CHECK-NOT: balancekv.
// CHECK: tensor.dim
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x?x?x8xf32>, tensor<?x?x?x4xf32>, tensor<?x?x?xf32>
// BUF-LABEL: func.func @balance_stages_dynamic
// BUF-NOT: tensor.
// BUF: return
func.func @balance_stages_dynamic(%k: tensor<?x?x?x8xf32>, %v: tensor<?x?x?x4xf32>, %r: index)
    -> (tensor<?x?x?x8xf32>, tensor<?x?x?x4xf32>, tensor<?x?x?xf32>) {
  %t, %d = balancekv.balance_init %k <rounds = 1, sink = 4, recent = 4> : tensor<?x?x?x8xf32>
  %s = balancekv.balance_walk %k, %v, %t, %d, %r <rounds = 1, sink = 4, recent = 4>
      : tensor<?x?x?x8xf32>, tensor<?x?x?x4xf32>, tensor<?x?x?xi32>
  %t1, %d1 = balancekv.balance_halve %s, %t, %d, %r : tensor<?x?x?xi8>, tensor<?x?x?xi32>
  %ck, %cv, %lw = balancekv.gather_kept %k, %v, %t1, %d1 <rounds = 1, sink = 4, recent = 4>
      : tensor<?x?x?x8xf32>, tensor<?x?x?x4xf32>, tensor<?x?x?xi32>
  return %ck, %cv, %lw : tensor<?x?x?x8xf32>, tensor<?x?x?x4xf32>, tensor<?x?x?xf32>
}

// -----

// uniform: Philox draws with round word 0xffffffff, rank select, log(L0/LT).
// CHECK-LABEL: func.func @compress_uniform
// CHECK: arith.constant -1 : i32
// CHECK-COUNT-20: arith.mului_extended
// CHECK: math.log
func.func @compress_uniform(%k: tensor<1x1x100x8xf16>, %v: tensor<1x1x100x8xf16>) -> tensor<1x1x?xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = uniform> : tensor<1x1x100x8xf16>, tensor<1x1x100x8xf16>
  %c = tensor.cast %lw : tensor<1x1x73xf32> to tensor<1x1x?xf32>
  return %c : tensor<1x1x?xf32>
}

// -----

// Dynamic shapes lower too (M computed at run time).
// CHECK-LABEL: func.func @compress_dynamic
// CHECK: tensor.dim
// CHECK: arith.shrui
// CHECK-NOT: balancekv.
func.func @compress_dynamic(%k: tensor<?x?x?x8xbf16>, %v: tensor<?x?x?x8xbf16>)
    -> (tensor<?x?x?x8xbf16>, tensor<?x?x?x8xbf16>, tensor<?x?x?xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = knorm> : tensor<?x?x?x8xbf16>, tensor<?x?x?x8xbf16>
  return %ck, %cv, %lw : tensor<?x?x?x8xbf16>, tensor<?x?x?x8xbf16>, tensor<?x?x?xf32>
}

// -----

// gather_pages: one gather; the body reads the page id from the table and
// the element from the pool (HND: [page, head, slot, x]).
// CHECK-LABEL: func.func @gather_pages
// CHECK-SAME: (%[[POOL:.*]]: tensor<6x2x16x8xf32>, %[[TAB:.*]]: tensor<1x4xi32>)
// CHECK: %[[E:.*]] = tensor.empty() : tensor<1x2x50x8xf32>
// CHECK: linalg.generic {{.*}} outs(%[[E]] : tensor<1x2x50x8xf32>)
// CHECK: %[[B:.*]] = linalg.index 0
// CHECK: %[[H:.*]] = linalg.index 1
// CHECK: %[[J:.*]] = linalg.index 2
// CHECK: %[[X:.*]] = linalg.index 3
// CHECK: %[[L:.*]] = arith.divui %[[J]], %c16
// CHECK: %[[S:.*]] = arith.remui %[[J]], %c16
// CHECK: %[[ID:.*]] = tensor.extract %[[TAB]][%[[B]], %[[L]]] : tensor<1x4xi32>
// CHECK: %[[P:.*]] = arith.index_cast %[[ID]] : i32 to index
// CHECK: %[[V:.*]] = tensor.extract %[[POOL]][%[[P]], %[[H]], %[[S]], %[[X]]] : tensor<6x2x16x8xf32>
// CHECK: linalg.yield %[[V]]
// CHECK-NOT: balancekv.gather_pages
func.func @gather_pages(%pool: tensor<6x2x16x8xf32>, %table: tensor<1x4xi32>) -> tensor<1x2x50x8xf32> {
  %k = balancekv.gather_pages %pool, %table heads_major : tensor<6x2x16x8xf32>, tensor<1x4xi32> -> tensor<1x2x50x8xf32>
  return %k : tensor<1x2x50x8xf32>
}
