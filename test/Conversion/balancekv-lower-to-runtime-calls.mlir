// RUN: balancekv-opt %s --balancekv-lower-to-runtime-calls --split-input-file --verify-diagnostics | FileCheck %s
// The calls survive bufferization and lower to the C-interface entry points.
// RUN: balancekv-opt %s --balancekv-lower-to-runtime-calls --split-input-file --verify-diagnostics \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" --finalize-memref-to-llvm \
// RUN:   --convert-func-to-llvm --convert-arith-to-llvm --reconcile-unrealized-casts | FileCheck %s --check-prefix=LLVM
// device-alloc: results in device memory (gpu.alloc, waited for before the call).
// RUN: balancekv-opt %s --balancekv-lower-to-runtime-calls=device-alloc=true --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=DEV

// DEV-LABEL: func.func @decode
// DEV: %[[T0:.*]] = gpu.wait async
// DEV: %[[CK:.*]], %[[T1:.*]] = gpu.alloc async [%[[T0]]] () : memref<1x8x1072x128xbf16>
// DEV: gpu.wait [%[[T1]]]
// DEV: gpu.alloc async
// DEV: gpu.alloc async {{.*}} : memref<1x8x1072xf32>
// DEV-NOT: memref.alloc()
// DEV: call @balancekv_rt_compress_bf16
// DEV: bufferization.to_tensor %[[CK]] restrict writable
// DEV: gpu.alloc async {{.*}} : memref<1x32x1x128xbf16>
// DEV: call @balancekv_rt_weighted_decode_bf16

// CHECK-DAG: func.func private @balancekv_rt_compress_bf16(memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i32, i64, i64, i64, i64, f64, f64, f64, i64, f32, i64) -> i32 attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @balancekv_rt_weighted_decode_bf16({{.*}}) -> i32 attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[Q:.*]]: tensor<1x32x1x128xbf16>, %[[K:.*]]: tensor<1x8x4096x128xbf16>, %[[V:.*]]: tensor<1x8x4096x128xbf16>)
// CHECK: %[[CK:.*]] = memref.alloc() : memref<1x8x1072x128xbf16>
// CHECK: %[[CV:.*]] = memref.alloc() : memref<1x8x1072x128xbf16>
// CHECK: %[[LW:.*]] = memref.alloc() : memref<1x8x1072xf32>
// CHECK: %[[KB:.*]] = bufferization.to_buffer %[[K]] read_only
// method 0 (balance), rounds 2, block 128, sink 32, recent 32, gamma, temperature, c0, seed 3, scale 0 (1/sqrt(D))
// CHECK: %{{.*}} = call @balancekv_rt_compress_bf16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32, %c2_i64, %c128_i64, %c32_i64, %c32_i64{{.*}}, %cst, %cst{{.*}}, %cst{{.*}}, %c3_i64, %cst{{.*}})
// CHECK: %[[CKT:.*]] = bufferization.to_tensor %[[CK]] restrict writable
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<1x32x1x128xbf16>
// has log-weights = 1, has kv_len = 0, scale 1/sqrt(128), causal = 1
// CHECK: call @balancekv_rt_weighted_decode_bf16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c1_i32, %{{.*}}, %c0_i32{{.*}}, %{{.*}}, %cst{{.*}}, %c1_i32{{.*}})
// CHECK: %[[R:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: return %[[R]]
// The declarations get C-interface wrappers that pass descriptor pointers.
// LLVM-DAG: llvm.call @_mlir_ciface_balancekv_rt_compress_bf16({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i64, i64, i64, i64, f64, f64, f64, i64, f32, i64) -> i32
// LLVM-DAG: llvm.call @_mlir_ciface_balancekv_rt_weighted_decode_bf16({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr, i32, !llvm.ptr, f32, i32) -> i32
// LLVM-LABEL: llvm.func @decode
// LLVM: llvm.call @balancekv_rt_compress_bf16(
// LLVM: llvm.call @balancekv_rt_weighted_decode_bf16(
func.func @decode(%q: tensor<1x32x1x128xbf16>, %k: tensor<1x8x4096x128xbf16>, %v: tensor<1x8x4096x128xbf16>) -> tensor<1x32x1x128xbf16> {
  %ck, %cv, %lw = balancekv.compress %k, %v <seed = 3> : tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16>
  %o = balancekv.weighted_attention %q, %ck, %cv, %lw causal : tensor<1x32x1x128xbf16>, tensor<1x8x1072x128xbf16>, tensor<1x8x1072x128xbf16>, tensor<1x8x1072xf32> -> tensor<1x32x1x128xbf16>
  return %o : tensor<1x32x1x128xbf16>
}

// -----

// Plain decode attention: no log-weights (empty buffer, flag 0), kv_len as
// i32, dynamic batch and cache length.
// CHECK-LABEL: func.func @attention_kv_len
// CHECK: %[[D0:.*]] = tensor.dim %{{.*}}, %c0
// CHECK: memref.alloc(%[[D0]]) : memref<?x8x2x64xf16>
// CHECK: memref.alloca() : memref<0x0x0xf32>
// CHECK: %[[LENS:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?xi32>
// CHECK: call @balancekv_rt_weighted_decode_f16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32, %{{.*}}, %c1_i32
// LLVM: llvm.call @_mlir_ciface_balancekv_rt_weighted_decode_f16
// LLVM-LABEL: llvm.func @attention_kv_len
// LLVM: llvm.call @balancekv_rt_weighted_decode_f16(
func.func @attention_kv_len(%q: tensor<?x8x2x64xf16>, %k: tensor<?x2x?x64xf16>, %v: tensor<?x2x?x64xf16>,
                            %len: tensor<?xi32>) -> tensor<?x8x2x64xf16> {
  %o = balancekv.attention %q, %k, %v kv_len(%len : tensor<?xi32>)
      : tensor<?x8x2x64xf16>, tensor<?x2x?x64xf16>, tensor<?x2x?x64xf16> -> tensor<?x8x2x64xf16>
  return %o : tensor<?x8x2x64xf16>
}

// -----

// Ragged heads: kv_len per KV head [B, Hkv] travels flattened, flagged 2
// (the shim calls balancekv_weighted_decode_attention_ragged).
// CHECK-LABEL: func.func @weighted_ragged_heads
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1]] : tensor<2x2xi32> into tensor<4xi32>
// CHECK: %[[LENS:.*]] = bufferization.to_buffer %[[FLAT]] read_only : tensor<4xi32>
// CHECK: %[[C2:.*]] = arith.constant 2 : i32
// CHECK: call @balancekv_rt_weighted_decode_f16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c1_i32, %{{.*}}, %[[C2]]
func.func @weighted_ragged_heads(%q: tensor<2x8x1x64xf16>, %k: tensor<2x2x600x64xf16>, %v: tensor<2x2x600x64xf16>,
                                 %lw: tensor<2x2x600xf32>, %len: tensor<2x2xi32>) -> tensor<2x8x1x64xf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<2x2xi32>)
      : tensor<2x8x1x64xf16>, tensor<2x2x600x64xf16>, tensor<2x2x600x64xf16>, tensor<2x2x600xf32> -> tensor<2x8x1x64xf16>
  return %o : tensor<2x8x1x64xf16>
}

// -----

func.func @snapkv_has_no_kernel(%k: tensor<1x8x4096x128xbf16>, %v: tensor<1x8x4096x128xbf16>,
                                %q: tensor<1x8x1x128xbf16>) -> tensor<1x8x1072xf32> {
  // expected-error @+1 {{'balancekv.compress' op method 'snapkv' has no CUDA kernel; lower it with --balancekv-lower-to-loops}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%q : tensor<1x8x1x128xbf16>) <method = snapkv>
      : tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16>
  return %lw : tensor<1x8x1072xf32>
}

// -----

func.func @prefill_is_not_decode(%q: tensor<1x8x64x128xbf16>, %k: tensor<1x8x4096x128xbf16>,
                                 %v: tensor<1x8x4096x128xbf16>) -> tensor<1x8x64x128xbf16> {
  // expected-error @+1 {{'balancekv.attention' op the decode kernel takes at most 16 queries (a static L), got 64}}
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x8x64x128xbf16>, tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16> -> tensor<1x8x64x128xbf16>
  return %o : tensor<1x8x64x128xbf16>
}

// -----

func.func @value_dim(%q: tensor<1x8x1x128xbf16>, %k: tensor<1x8x4096x128xbf16>,
                     %v: tensor<1x8x4096x96xbf16>) -> tensor<1x8x1x96xbf16> {
  // expected-error @+1 {{'balancekv.attention' op the decode kernel takes value dims 32, 64, 128 or 256}}
  %o = balancekv.attention %q, %k, %v
      : tensor<1x8x1x128xbf16>, tensor<1x8x4096x128xbf16>, tensor<1x8x4096x96xbf16> -> tensor<1x8x1x96xbf16>
  return %o : tensor<1x8x1x96xbf16>
}

// -----

func.func @head_dim(%q: tensor<1x8x1x100xbf16>, %k: tensor<1x8x4096x100xbf16>,
                    %v: tensor<1x8x4096x128xbf16>) -> tensor<1x8x1x128xbf16> {
  // expected-error @+1 {{'balancekv.attention' op the decode kernel takes a static head dim, a multiple of 8 up to 256}}
  %o = balancekv.attention %q, %k, %v
      : tensor<1x8x1x100xbf16>, tensor<1x8x4096x100xbf16>, tensor<1x8x4096x128xbf16> -> tensor<1x8x1x128xbf16>
  return %o : tensor<1x8x1x128xbf16>
}

// -----

func.func @kv_len_i64(%q: tensor<1x8x1x128xbf16>, %k: tensor<1x8x4096x128xbf16>,
                      %v: tensor<1x8x4096x128xbf16>, %len: tensor<1xi64>) -> tensor<1x8x1x128xbf16> {
  // expected-error @+1 {{'balancekv.attention' op the decode kernel takes kv_len as i32}}
  %o = balancekv.attention %q, %k, %v kv_len(%len : tensor<1xi64>)
      : tensor<1x8x1x128xbf16>, tensor<1x8x4096x128xbf16>, tensor<1x8x4096x128xbf16> -> tensor<1x8x1x128xbf16>
  return %o : tensor<1x8x1x128xbf16>
}

// -----

// A paged cache (gather_pages of one block table as key and value): the
// paged calls read the pools through the table; nothing is gathered.
// CHECK-DAG: func.func private @balancekv_rt_compress_paged_bf16(memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?xi32, strided<[?, ?], offset: ?>>, i32, i64, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i32, i64, i64, i64, i64, f64, f64, f64, i64, f32, i64) -> i32 attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @balancekv_rt_weighted_decode_paged_bf16(memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?xi32, strided<[?, ?], offset: ?>>, i32, i64, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i32, memref<?xi32, strided<[?], offset: ?>>, i32, memref<?x?x?x?xbf16, strided<[?, ?, ?, ?], offset: ?>>, f32, i32) -> i32 attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @paged
// CHECK-SAME: (%[[Q:.*]]: tensor<4x32x1x128xbf16>, %[[KP:.*]]: tensor<300x16x8x128xbf16>, %[[VP:.*]]: tensor<300x16x8x128xbf16>, %[[TAB:.*]]: tensor<4x64xi32>, %[[LEN:.*]]: tensor<4xi32>)
// CHECK-NOT: balancekv.gather_pages
// CHECK-NOT: linalg.generic
// CHECK: %[[KPB:.*]] = bufferization.to_buffer %[[KP]] read_only
// CHECK: %[[VPB:.*]] = bufferization.to_buffer %[[VP]] read_only
// CHECK: %[[TB:.*]] = bufferization.to_buffer %[[TAB]] read_only
// NHD pools (heads_major 0), 1000 tokens a sequence
// CHECK: %[[N:.*]] = arith.index_cast %c1000 : index to i64
// CHECK: call @balancekv_rt_compress_paged_bf16(%{{.*}}, %{{.*}}, %{{.*}}, %c0_i32{{.*}}, %[[N]], %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32
// The decode reads the caller's pages of compressed tokens (1024 slots).
// CHECK: %[[M:.*]] = arith.index_cast %c1024{{.*}} : index to i64
// CHECK: call @balancekv_rt_weighted_decode_paged_bf16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32{{.*}}, %[[M]], %{{.*}}, %c1_i32{{.*}}, %{{.*}}, %c1_i32
// CHECK-NOT: balancekv.
// LLVM-DAG: llvm.call @_mlir_ciface_balancekv_rt_compress_paged_bf16({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i64, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i64, i64, i64, i64, f64, f64, f64, i64, f32, i64) -> i32
// LLVM-DAG: llvm.call @_mlir_ciface_balancekv_rt_weighted_decode_paged_bf16({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i64, !llvm.ptr, i32, !llvm.ptr, i32, !llvm.ptr, f32, i32) -> i32
// LLVM-LABEL: llvm.func @paged
func.func @paged(%q: tensor<4x32x1x128xbf16>, %kpool: tensor<300x16x8x128xbf16>, %vpool: tensor<300x16x8x128xbf16>,
                 %table: tensor<4x64xi32>, %len: tensor<4xi32>)
    -> (tensor<4x8x298x128xbf16>, tensor<4x32x1x128xbf16>) {
  %k = balancekv.gather_pages %kpool, %table : tensor<300x16x8x128xbf16>, tensor<4x64xi32> -> tensor<4x8x1000x128xbf16>
  %v = balancekv.gather_pages %vpool, %table : tensor<300x16x8x128xbf16>, tensor<4x64xi32> -> tensor<4x8x1000x128xbf16>
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<4x8x1000x128xbf16>, tensor<4x8x1000x128xbf16>
  %k2 = balancekv.gather_pages %kpool, %table : tensor<300x16x8x128xbf16>, tensor<4x64xi32> -> tensor<4x8x1024x128xbf16>
  %v2 = balancekv.gather_pages %vpool, %table : tensor<300x16x8x128xbf16>, tensor<4x64xi32> -> tensor<4x8x1024x128xbf16>
  %lw2 = tensor.empty() : tensor<4x8x1024xf32>
  %o = balancekv.weighted_attention %q, %k2, %v2, %lw2 kv_len(%len : tensor<4xi32>)
      : tensor<4x32x1x128xbf16>, tensor<4x8x1024x128xbf16>, tensor<4x8x1024x128xbf16>, tensor<4x8x1024xf32> -> tensor<4x32x1x128xbf16>
  return %ck, %o : tensor<4x8x298x128xbf16>, tensor<4x32x1x128xbf16>
}

// -----

// HND pools, dynamic sizes: N is the table's capacity (max_pages * 32).
// CHECK-LABEL: func.func @paged_hnd_dynamic
// CHECK: %[[MP:.*]] = tensor.dim %{{.*}}, %c1{{.*}} : tensor<?x?xi32>
// CHECK: %[[CAP:.*]] = arith.muli %[[MP]], %c32
// CHECK: %[[TOK:.*]] = arith.index_cast %[[CAP]] : index to i64
// CHECK: call @balancekv_rt_weighted_decode_paged_f16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c1_i32, %[[TOK]], %{{.*}}, %c0_i32
func.func @paged_hnd_dynamic(%q: tensor<?x4x1x64xf16>, %kpool: tensor<?x2x32x64xf16>, %vpool: tensor<?x2x32x64xf16>,
                             %table: tensor<?x?xi32>) -> tensor<?x4x1x64xf16> {
  %k = balancekv.gather_pages %kpool, %table heads_major : tensor<?x2x32x64xf16>, tensor<?x?xi32> -> tensor<?x2x?x64xf16>
  %v = balancekv.gather_pages %vpool, %table heads_major : tensor<?x2x32x64xf16>, tensor<?x?xi32> -> tensor<?x2x?x64xf16>
  %o = balancekv.attention %q, %k, %v
      : tensor<?x4x1x64xf16>, tensor<?x2x?x64xf16>, tensor<?x2x?x64xf16> -> tensor<?x4x1x64xf16>
  return %o : tensor<?x4x1x64xf16>
}

// -----

// kv_len per KV head over pages: the paged call reads the pages in place
// too, kv_len flattened and flagged 2 (the shim calls
// balancekv_weighted_decode_attention_paged_ragged).
// CHECK-LABEL: func.func @paged_ragged_heads
// CHECK-NOT: linalg.generic
// CHECK: tensor.collapse_shape %{{.*}} {{\[}}[0, 1]] : tensor<1x2xi32> into tensor<2xi32>
// CHECK: %[[C2:.*]] = arith.constant 2 : i32
// CHECK: call @balancekv_rt_weighted_decode_paged_f16(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32{{.*}}, %{{.*}}, %{{.*}}, %c1_i32{{.*}}, %{{.*}}, %[[C2]]
// CHECK-NOT: balancekv.gather_pages
func.func @paged_ragged_heads(%q: tensor<1x4x1x64xf16>, %pool: tensor<8x16x2x64xf16>, %t: tensor<1x4xi32>,
                              %lw: tensor<1x2x64xf32>, %len: tensor<1x2xi32>) -> tensor<1x4x1x64xf16> {
  %k = balancekv.gather_pages %pool, %t : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  %v = balancekv.gather_pages %pool, %t : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<1x2xi32>)
      : tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64xf32> -> tensor<1x4x1x64xf16>
  return %o : tensor<1x4x1x64xf16>
}
