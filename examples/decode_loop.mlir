// A decode loop over a prefilled KV cache, as a front end would hand it over.
//
//  * @prefill builds a cache of N = 2048 tokens (2 KV heads, d = 64) with
//    rotary-like structure, and the next 32 decode queries (4 query heads,
//    GQA group 2).
//  * @main decodes: one `balancekv.attention` per step over the same cache
//    (the cache is loop-invariant), then computes the exact attention of
//    all 32 queries in one batch and prints the relative error
//    ||O_decode - O_exact|| / ||O_exact||.
//
// Run as is, the decode steps are exact and the error is ~0. With
//   balancekv-opt --balancekv-compress-kv-cache --loop-invariant-code-motion
// each decode step's attention becomes compress + weighted_attention, the
// compression is hoisted out of the loop (done once), and the decode steps
// read 1/4 of the cache. The batched check (L = 32 queries) is not
// decode-shaped (max-query-len = 16), so it stays exact. See
// scripts/run-example.sh.

func.func private @printF32(f32)
func.func private @printNewline()

#id4 = affine_map<(b, h, n, d) -> (b, h, n, d)>

func.func @prefill() -> (tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32>,
                         tensor<1x4x32x64xf32>) {
  %k0 = tensor.empty() : tensor<1x2x2048x64xf32>
  %k = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%k0 : tensor<1x2x2048x64xf32>) {
  ^bb0(%out: f32):
    %h = linalg.index 1 : index
    %n = linalg.index 2 : index
    %d = linalg.index 3 : index
    %hf = arith.index_cast %h : index to i32
    %nf = arith.index_cast %n : index to i32
    %df = arith.index_cast %d : index to i32
    %hx = arith.sitofp %hf : i32 to f32
    %nx = arith.sitofp %nf : i32 to f32
    %dx = arith.sitofp %df : i32 to f32
    // rotary-like: frequency falls with d; a per-head phase; plus a token hash.
    %c1 = arith.constant 1.0 : f32
    %c01 = arith.constant 0.1 : f32
    %c37 = arith.constant 0.37 : f32
    %c13 = arith.constant 1.3 : f32
    %d1 = arith.addf %dx, %c1 : f32
    %freq = arith.divf %c01, %d1 : f32
    %ang = arith.mulf %nx, %freq : f32
    %ph = arith.addf %ang, %hx : f32
    %s = math.sin %ph : f32
    %t0 = arith.mulf %nx, %c37 : f32
    %t1 = arith.mulf %dx, %c13 : f32
    %t2 = arith.addf %t0, %t1 : f32
    %t3 = arith.mulf %t2, %t2 : f32
    %c = math.cos %t3 : f32
    %r = arith.addf %s, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2048x64xf32>
  %v0 = tensor.empty() : tensor<1x2x2048x64xf32>
  %v = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%v0 : tensor<1x2x2048x64xf32>) {
  ^bb0(%out: f32):
    %h = linalg.index 1 : index
    %n = linalg.index 2 : index
    %d = linalg.index 3 : index
    %hf = arith.index_cast %h : index to i32
    %nf = arith.index_cast %n : index to i32
    %df = arith.index_cast %d : index to i32
    %hx = arith.sitofp %hf : i32 to f32
    %nx = arith.sitofp %nf : i32 to f32
    %dx = arith.sitofp %df : i32 to f32
    %c005 = arith.constant 0.013 : f32
    %c1 = arith.constant 1.0 : f32
    %d1 = arith.addf %dx, %c1 : f32
    %a = arith.mulf %nx, %c005 : f32
    %b = arith.mulf %a, %d1 : f32
    %p = arith.addf %b, %hx : f32
    %cosp = math.cos %p : f32
    // Value vectors share a mean direction, as real ones do.
    %mean = arith.constant 0.5 : f32
    %r = arith.addf %cosp, %mean : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2048x64xf32>
  // Decode queries recall older context: query t of head h resembles the
  // key of KV head h / 2 at the scattered position (613 t + 97) mod 2048,
  // so the attention mass lies all over the cache, not only near its end.
  %c0_idx = arith.constant 0 : index
  %q0 = tensor.empty() : tensor<1x4x32x64xf32>
  %q = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%q0 : tensor<1x4x32x64xf32>) {
  ^bb0(%out: f32):
    %h = linalg.index 1 : index
    %t = linalg.index 2 : index
    %d = linalg.index 3 : index
    %c2 = arith.constant 2 : index
    %c613 = arith.constant 613 : index
    %c97 = arith.constant 97 : index
    %c2048 = arith.constant 2048 : index
    %hk = arith.divui %h, %c2 : index
    %tn = arith.muli %t, %c613 : index
    %tn1 = arith.addi %tn, %c97 : index
    %n = arith.remui %tn1, %c2048 : index
    %kx = tensor.extract %k[%c0_idx, %hk, %n, %d] : tensor<1x2x2048x64xf32>
    %sc = arith.constant 0.5 : f32
    %r = arith.mulf %kx, %sc : f32
    linalg.yield %r : f32
  } -> tensor<1x4x32x64xf32>
  return %k, %v, %q : tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32>, tensor<1x4x32x64xf32>
}

func.func @main() {
  %k, %v, %qs = call @prefill() : () -> (tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32>, tensor<1x4x32x64xf32>)
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %steps = arith.constant 32 : index
  %o0 = tensor.empty() : tensor<1x4x32x64xf32>
  // The decode loop: one query per step, same cache every step.
  %decoded = scf.for %t = %c0 to %steps step %c1 iter_args(%acc = %o0) -> (tensor<1x4x32x64xf32>) {
    %q = tensor.extract_slice %qs[0, 0, %t, 0] [1, 4, 1, 64] [1, 1, 1, 1]
        : tensor<1x4x32x64xf32> to tensor<1x4x1x64xf32>
    %o = balancekv.attention %q, %k, %v
        : tensor<1x4x1x64xf32>, tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32>
        -> tensor<1x4x1x64xf32>
    %next = tensor.insert_slice %o into %acc[0, 0, %t, 0] [1, 4, 1, 64] [1, 1, 1, 1]
        : tensor<1x4x1x64xf32> into tensor<1x4x32x64xf32>
    scf.yield %next : tensor<1x4x32x64xf32>
  }
  // The check: exact attention of all steps' queries at once.
  %exact = balancekv.attention %qs, %k, %v
      : tensor<1x4x32x64xf32>, tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32>
      -> tensor<1x4x32x64xf32>
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<f32>
  %num0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<f32>) -> tensor<f32>
  %sums:2 = linalg.generic {indexing_maps = [#id4, #id4, affine_map<(b, h, n, d) -> ()>, affine_map<(b, h, n, d) -> ()>],
                            iterator_types = ["reduction", "reduction", "reduction", "reduction"]}
      ins(%decoded, %exact : tensor<1x4x32x64xf32>, tensor<1x4x32x64xf32>)
      outs(%num0, %num0 : tensor<f32>, tensor<f32>) {
  ^bb0(%a: f32, %e: f32, %n: f32, %dd: f32):
    %diff = arith.subf %a, %e : f32
    %sq = arith.mulf %diff, %diff : f32
    %n2 = arith.addf %n, %sq : f32
    %esq = arith.mulf %e, %e : f32
    %d2 = arith.addf %dd, %esq : f32
    linalg.yield %n2, %d2 : f32, f32
  } -> (tensor<f32>, tensor<f32>)
  %num = tensor.extract %sums#0[] : tensor<f32>
  %den = tensor.extract %sums#1[] : tensor<f32>
  %ratio = arith.divf %num, %den : f32
  %rel = math.sqrt %ratio : f32
  call @printF32(%rel) : (f32) -> ()
  call @printNewline() : () -> ()
  return
}
