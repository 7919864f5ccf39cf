// REQUIRES: mlir-runner
// Edge cases of attention through --balancekv-cpu-pipeline, executed.
// 1-4: dynamic head counts and sizes give what static shapes give (2b:
// dynamic Hq over a static Hkv): all-dynamic MHA, GQA 4/2 with
// every dimension dynamic, static Hq with dynamic Hkv, weighted_attention
// with dynamic Hkv. (MLIR 22's expand-strided-metadata crashed on the
// [B, Hkv, G, L, D] view of Q that these used to get.) Head counts that do
// not divide are caught when the program runs (cf.assert: the program
// aborts instead of reading past the KV heads; its message goes to a
// buffered stdout, so only the abort is checked).
// RUN: balancekv-opt %s --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s
// RUN: balancekv-opt %s --balancekv-cpu-pipeline \
// RUN:   | not --crash mlir-runner -e bad_groups -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so
// RUN: balancekv-opt %s --balancekv-cpu-pipeline \
// RUN:   | not --crash mlir-runner -e bad_groups_static_kv -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so

// 5: kv_len out of [0, N] is clamped (the op's contract, as the reference and
// the CUDA kernels do): kv_len (-3, 100) with N = 40, causal, equals
// kv_len (0, 40); the batch with no key gets zeros.

// 6: a query carried through scf.for iter_args (bufferization must return
// a new allocation from the loop) equals the same steps unrolled.

// 7: kv_len per KV head (ragged heads, [B, Hkv]) equals -inf log-weights
// past each head's length.

// Max |dynamic - static| per case, then max |kv_len (-3, 100) - (0, 40)|,
// max |row with no key|, max |ragged - masked| and max |loop - unrolled|.
// CHECK: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0

func.func private @printF32(f32)
func.func private @printNewline()

#id4 = affine_map<(b, h, n, d) -> (b, h, n, d)>
#id3 = affine_map<(b, h, n) -> (b, h, n)>

// A [b, h, n, d] tensor of sin(0.37 n + 1.3 d + h + phase).
func.func @make(%b: index, %h: index, %n: index, %d: index, %phase: f32) -> tensor<?x?x?x?xf32> {
  %e = tensor.empty(%b, %h, %n, %d) : tensor<?x?x?x?xf32>
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
    linalg.yield %s : f32
  } -> tensor<?x?x?x?xf32>
  return %t : tensor<?x?x?x?xf32>
}

func.func @maxdiff(%a: tensor<?x?x?x?xf32>, %b: tensor<?x?x?x?xf32>) {
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<f32>
  %i = linalg.fill ins(%z : f32) outs(%e0 : tensor<f32>) -> tensor<f32>
  %m = linalg.generic {indexing_maps = [#id4, #id4, affine_map<(b, h, n, d) -> ()>],
                       iterator_types = ["reduction", "reduction", "reduction", "reduction"]}
      ins(%a, %b : tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) outs(%i : tensor<f32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %d = arith.subf %x, %y : f32
    %ad = math.absf %d : f32
    %r = arith.maximumf %acc, %ad : f32
    linalg.yield %r : f32
  } -> tensor<f32>
  %v = tensor.extract %m[] : tensor<f32>
  call @printF32(%v) : (f32) -> ()
  call @printNewline() : () -> ()
  return
}

func.func @attention_dynamic(%q: tensor<?x?x?x?xf32>, %k: tensor<?x?x?x?xf32>, %v: tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32> {
  %o = balancekv.attention %q, %k, %v {scale = 0.25 : f32}
      : tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32> -> tensor<?x?x?x?xf32>
  return %o : tensor<?x?x?x?xf32>
}

func.func @attention_dynamic_kv_heads(%q: tensor<1x4x3x16xf32>, %k: tensor<1x?x40x16xf32>, %v: tensor<1x?x40x8xf32>) -> tensor<1x4x3x8xf32> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x4x3x16xf32>, tensor<1x?x40x16xf32>, tensor<1x?x40x8xf32> -> tensor<1x4x3x8xf32>
  return %o : tensor<1x4x3x8xf32>
}

func.func @weighted_dynamic_kv_heads(%q: tensor<2x4x1x16xf32>, %k: tensor<2x?x40x16xf32>, %v: tensor<2x?x40x16xf32>, %lw: tensor<2x?x40xf32>) -> tensor<2x4x1x16xf32> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw
      : tensor<2x4x1x16xf32>, tensor<2x?x40x16xf32>, tensor<2x?x40x16xf32>, tensor<2x?x40xf32> -> tensor<2x4x1x16xf32>
  return %o : tensor<2x4x1x16xf32>
}

func.func @main() {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c40 = arith.constant 40 : index
  %p0 = arith.constant 0.0 : f32
  %p1 = arith.constant 0.5 : f32
  %p2 = arith.constant 1.5 : f32

  // 1. MHA, every dimension dynamic.
  %q1 = call @make(%c1, %c2, %c3, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %k1 = call @make(%c1, %c2, %c40, %c16, %p1) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %v1 = call @make(%c1, %c2, %c40, %c16, %p2) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %o1 = call @attention_dynamic(%q1, %k1, %v1) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %q1s = tensor.cast %q1 : tensor<?x?x?x?xf32> to tensor<1x2x3x16xf32>
  %k1s = tensor.cast %k1 : tensor<?x?x?x?xf32> to tensor<1x2x40x16xf32>
  %v1s = tensor.cast %v1 : tensor<?x?x?x?xf32> to tensor<1x2x40x16xf32>
  %r1 = balancekv.attention %q1s, %k1s, %v1s {scale = 0.25 : f32}
      : tensor<1x2x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x2x3x16xf32>
  %r1d = tensor.cast %r1 : tensor<1x2x3x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o1, %r1d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 2. GQA 4/2, every dimension dynamic.
  %q2 = call @make(%c1, %c4, %c3, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %o2 = call @attention_dynamic(%q2, %k1, %v1) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  %q2s = tensor.cast %q2 : tensor<?x?x?x?xf32> to tensor<1x4x3x16xf32>
  %r2 = balancekv.attention %q2s, %k1s, %v1s {scale = 0.25 : f32}
      : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x3x16xf32>
  %r2d = tensor.cast %r2 : tensor<1x4x3x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o2, %r2d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()
  // 2b. GQA 4/2 with dynamic Hq and static Hkv (query 0 of each head).
  %q2b = tensor.extract_slice %q2s[0, 0, 0, 0] [1, 4, 1, 16] [1, 1, 1, 1] : tensor<1x4x3x16xf32> to tensor<1x4x1x16xf32>
  %q2bd = tensor.cast %q2b : tensor<1x4x1x16xf32> to tensor<1x?x1x16xf32>
  %o2b = call @attention_dynamic_q_heads(%q2bd, %k1s, %v1s) : (tensor<1x?x1x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32>) -> tensor<1x?x1x16xf32>
  %r2b = balancekv.attention %q2b, %k1s, %v1s : tensor<1x4x1x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x1x16xf32>
  %o2bd = tensor.cast %o2b : tensor<1x?x1x16xf32> to tensor<?x?x?x?xf32>
  %r2bd = tensor.cast %r2b : tensor<1x4x1x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o2bd, %r2bd) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 3. Static Hq = 4 with a dynamic Hkv = 2, causal, Dv = 8.
  %v3 = call @make(%c1, %c2, %c40, %c8, %p2) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %k3 = tensor.cast %k1 : tensor<?x?x?x?xf32> to tensor<1x?x40x16xf32>
  %v3d = tensor.cast %v3 : tensor<?x?x?x?xf32> to tensor<1x?x40x8xf32>
  %o3 = call @attention_dynamic_kv_heads(%q2s, %k3, %v3d) : (tensor<1x4x3x16xf32>, tensor<1x?x40x16xf32>, tensor<1x?x40x8xf32>) -> tensor<1x4x3x8xf32>
  %v3s = tensor.cast %v3 : tensor<?x?x?x?xf32> to tensor<1x2x40x8xf32>
  %r3 = balancekv.attention %q2s, %k1s, %v3s causal
      : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x8xf32> -> tensor<1x4x3x8xf32>
  %o3d = tensor.cast %o3 : tensor<1x4x3x8xf32> to tensor<?x?x?x?xf32>
  %r3d = tensor.cast %r3 : tensor<1x4x3x8xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o3d, %r3d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 4. weighted_attention, batch 2, dynamic Hkv = 2, log-weights.
  %q4 = call @make(%c2, %c4, %c1, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %k4 = call @make(%c2, %c2, %c40, %c16, %p1) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %v4 = call @make(%c2, %c2, %c40, %c16, %p2) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %w4 = call @make(%c2, %c2, %c40, %c1, %p1) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %w4s = tensor.cast %w4 : tensor<?x?x?x?xf32> to tensor<2x2x40x1xf32>
  %lw = tensor.collapse_shape %w4s [[0], [1], [2, 3]] : tensor<2x2x40x1xf32> into tensor<2x2x40xf32>
  %q4s = tensor.cast %q4 : tensor<?x?x?x?xf32> to tensor<2x4x1x16xf32>
  %k4s = tensor.cast %k4 : tensor<?x?x?x?xf32> to tensor<2x2x40x16xf32>
  %v4s = tensor.cast %v4 : tensor<?x?x?x?xf32> to tensor<2x2x40x16xf32>
  %k4d = tensor.cast %k4 : tensor<?x?x?x?xf32> to tensor<2x?x40x16xf32>
  %v4d = tensor.cast %v4 : tensor<?x?x?x?xf32> to tensor<2x?x40x16xf32>
  %lwd = tensor.cast %lw : tensor<2x2x40xf32> to tensor<2x?x40xf32>
  %o4 = call @weighted_dynamic_kv_heads(%q4s, %k4d, %v4d, %lwd) : (tensor<2x4x1x16xf32>, tensor<2x?x40x16xf32>, tensor<2x?x40x16xf32>, tensor<2x?x40xf32>) -> tensor<2x4x1x16xf32>
  %r4 = balancekv.weighted_attention %q4s, %k4s, %v4s, %lw
      : tensor<2x4x1x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x4x1x16xf32>
  %o4d = tensor.cast %o4 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  %r4d = tensor.cast %r4 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o4d, %r4d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 5. kv_len clamping.
  %out_of_range = arith.constant dense<[-3, 100]> : tensor<2xi32>
  %clamped = arith.constant dense<[0, 40]> : tensor<2xi32>
  %o5 = balancekv.weighted_attention %q4s, %k4s, %v4s, %lw kv_len(%out_of_range : tensor<2xi32>) causal
      : tensor<2x4x1x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x4x1x16xf32>
  %r5 = balancekv.weighted_attention %q4s, %k4s, %v4s, %lw kv_len(%clamped : tensor<2xi32>) causal
      : tensor<2x4x1x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x4x1x16xf32>
  %o5d = tensor.cast %o5 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  %r5d = tensor.cast %r5 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o5d, %r5d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()
  %none = tensor.extract_slice %o5d[0, 0, 0, 0] [1, 4, 1, 16] [1, 1, 1, 1] : tensor<?x?x?x?xf32> to tensor<1x4x1x16xf32>
  %zero = arith.constant 0.0 : f32
  %z0 = tensor.empty() : tensor<1x4x1x16xf32>
  %zeros = linalg.fill ins(%zero : f32) outs(%z0 : tensor<1x4x1x16xf32>) -> tensor<1x4x1x16xf32>
  %noned = tensor.cast %none : tensor<1x4x1x16xf32> to tensor<?x?x?x?xf32>
  %zerosd = tensor.cast %zeros : tensor<1x4x1x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%noned, %zerosd) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 7. Ragged heads: kv_len per KV head [B, Hkv], causal, equals masking
  // each head's slots past its length with log-weight -inf (the adaptive
  // layout's padding); the head with length 0 gives zeros both ways.
  %heads = arith.constant dense<[[10, 40], [25, 0]]> : tensor<2x2xi32>
  %o7 = balancekv.weighted_attention %q4s, %k4s, %v4s, %lw kv_len(%heads : tensor<2x2xi32>) causal
      : tensor<2x4x1x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x4x1x16xf32>
  %lw7e = tensor.empty() : tensor<2x2x40xf32>
  %lw7 = linalg.generic {indexing_maps = [#id3, affine_map<(b, h, n) -> (b, h)>, #id3],
                         iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%lw, %heads : tensor<2x2x40xf32>, tensor<2x2xi32>) outs(%lw7e : tensor<2x2x40xf32>) {
  ^bb0(%w: f32, %len: i32, %out: f32):
    %ni = linalg.index 2 : index
    %n32 = arith.index_cast %ni : index to i32
    %valid = arith.cmpi slt, %n32, %len : i32
    %ninf = arith.constant 0xFF800000 : f32
    %sel = arith.select %valid, %w, %ninf : f32
    linalg.yield %sel : f32
  } -> tensor<2x2x40xf32>
  %r7 = balancekv.weighted_attention %q4s, %k4s, %v4s, %lw7
      : tensor<2x4x1x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x4x1x16xf32>
  %o7d = tensor.cast %o7 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  %r7d = tensor.cast %r7 : tensor<2x4x1x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%o7d, %r7d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 6. The output of each step is the next step's query.
  %c0 = arith.constant 0 : index
  %loop = scf.for %i = %c0 to %c3 step %c1 iter_args(%qi = %q2s) -> (tensor<1x4x3x16xf32>) {
    %oi = balancekv.attention %qi, %k1s, %v1s : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x3x16xf32>
    scf.yield %oi : tensor<1x4x3x16xf32>
  }
  %u1 = balancekv.attention %q2s, %k1s, %v1s : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x3x16xf32>
  %u2 = balancekv.attention %u1, %k1s, %v1s : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x3x16xf32>
  %u3 = balancekv.attention %u2, %k1s, %v1s : tensor<1x4x3x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x4x3x16xf32>
  %loopd = tensor.cast %loop : tensor<1x4x3x16xf32> to tensor<?x?x?x?xf32>
  %u3d = tensor.cast %u3 : tensor<1x4x3x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%loopd, %u3d) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()
  return
}

// 3 query heads over 2 KV heads: only the running program can tell.
func.func @bad_groups() {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c40 = arith.constant 40 : index
  %p0 = arith.constant 0.0 : f32
  %q = call @make(%c1, %c3, %c1, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %k = call @make(%c1, %c2, %c40, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %o = call @attention_dynamic(%q, %k, %k) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> tensor<?x?x?x?xf32>
  return
}

// 3 query heads (dynamic) over 2 static KV heads.
func.func @attention_dynamic_q_heads(%q: tensor<1x?x1x16xf32>, %k: tensor<1x2x40x16xf32>, %v: tensor<1x2x40x16xf32>) -> tensor<1x?x1x16xf32> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x?x1x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32> -> tensor<1x?x1x16xf32>
  return %o : tensor<1x?x1x16xf32>
}

func.func @bad_groups_static_kv() {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c16 = arith.constant 16 : index
  %c40 = arith.constant 40 : index
  %p0 = arith.constant 0.0 : f32
  %q = call @make(%c1, %c3, %c1, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %k = call @make(%c1, %c2, %c40, %c16, %p0) : (index, index, index, index, f32) -> tensor<?x?x?x?xf32>
  %qd = tensor.cast %q : tensor<?x?x?x?xf32> to tensor<1x?x1x16xf32>
  %ks = tensor.cast %k : tensor<?x?x?x?xf32> to tensor<1x2x40x16xf32>
  %o = call @attention_dynamic_q_heads(%qd, %ks, %ks) : (tensor<1x?x1x16xf32>, tensor<1x2x40x16xf32>, tensor<1x2x40x16xf32>) -> tensor<1x?x1x16xf32>
  return
}
