// REQUIRES: mlir-runner
// Paged caches through --balancekv-cpu-pipeline, executed: compress and
// weighted_attention over balancekv.gather_pages (NHD and HND pools, pages
// out of order, two sequences) give exactly what they give over the same
// cache built densely (token j of sequence b from page perm_b(j / 16), slot
// j % 16, computed with selects rather than read through the table).
// RUN: balancekv-opt %s --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s

// CHECK: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0
// CHECK-NEXT: 0

func.func private @printF32(f32)
func.func private @printNewline()

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>

// The value of (pool page, slot, head, x): sin(0.37 (16 page + slot) + 1.3 x + h + phase).
func.func @value(%page: index, %slot: index, %h: index, %x: index, %phase: f32) -> f32 {
  %c16 = arith.constant 16 : index
  %p16 = arith.muli %page, %c16 : index
  %n = arith.addi %p16, %slot : index
  %ni = arith.index_cast %n : index to i32
  %hi = arith.index_cast %h : index to i32
  %xi = arith.index_cast %x : index to i32
  %nf = arith.sitofp %ni : i32 to f32
  %hf = arith.sitofp %hi : i32 to f32
  %xf = arith.sitofp %xi : i32 to f32
  %c37 = arith.constant 0.37 : f32
  %c13 = arith.constant 1.3 : f32
  %a = arith.mulf %nf, %c37 : f32
  %b = arith.mulf %xf, %c13 : f32
  %s0 = arith.addf %a, %b : f32
  %s1 = arith.addf %s0, %hf : f32
  %s2 = arith.addf %s1, %phase : f32
  %r = math.sin %s2 : f32
  return %r : f32
}

// An NHD pool [5, 16, 2, 16].
func.func @nhd_pool(%phase: f32) -> tensor<5x16x2x16xf32> {
  %e = tensor.empty() : tensor<5x16x2x16xf32>
  %t = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : tensor<5x16x2x16xf32>) {
  ^bb0(%out: f32):
    %p = linalg.index 0 : index
    %s = linalg.index 1 : index
    %h = linalg.index 2 : index
    %x = linalg.index 3 : index
    %v = func.call @value(%p, %s, %h, %x, %phase) : (index, index, index, index, f32) -> f32
    linalg.yield %v : f32
  } -> tensor<5x16x2x16xf32>
  return %t : tensor<5x16x2x16xf32>
}

// The same pages, HND [5, 2, 16, 16].
func.func @hnd_pool(%phase: f32) -> tensor<5x2x16x16xf32> {
  %e = tensor.empty() : tensor<5x2x16x16xf32>
  %t = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : tensor<5x2x16x16xf32>) {
  ^bb0(%out: f32):
    %p = linalg.index 0 : index
    %h = linalg.index 1 : index
    %s = linalg.index 2 : index
    %x = linalg.index 3 : index
    %v = func.call @value(%p, %s, %h, %x, %phase) : (index, index, index, index, f32) -> f32
    linalg.yield %v : f32
  } -> tensor<5x2x16x16xf32>
  return %t : tensor<5x2x16x16xf32>
}

// Sequence 0 holds pages 4, 1, 3; sequence 1 pages 0, 2, 4 (page 4 shared).
func.func @table() -> tensor<2x3xi32> {
  %t = arith.constant dense<[[4, 1, 3], [0, 2, 4]]> : tensor<2x3xi32>
  return %t : tensor<2x3xi32>
}

// The dense cache [2, 2, 40, 16] of the same tokens.
func.func @dense(%phase: f32) -> tensor<2x2x40x16xf32> {
  %e = tensor.empty() : tensor<2x2x40x16xf32>
  %t = linalg.generic {indexing_maps = [#id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      outs(%e : tensor<2x2x40x16xf32>) {
  ^bb0(%out: f32):
    %b = linalg.index 0 : index
    %h = linalg.index 1 : index
    %j = linalg.index 2 : index
    %x = linalg.index 3 : index
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c16 = arith.constant 16 : index
    %l = arith.divui %j, %c16 : index
    %s = arith.remui %j, %c16 : index
    %first = arith.cmpi eq, %b, %c0 : index
    %l0 = arith.cmpi eq, %l, %c0 : index
    %l1 = arith.cmpi eq, %l, %c1 : index
    %p0a = arith.select %l1, %c1, %c3 : index
    %p0 = arith.select %l0, %c4, %p0a : index
    %p1a = arith.select %l1, %c2, %c4 : index
    %p1 = arith.select %l0, %c0, %p1a : index
    %p = arith.select %first, %p0, %p1 : index
    %v = func.call @value(%p, %s, %h, %x, %phase) : (index, index, index, index, f32) -> f32
    linalg.yield %v : f32
  } -> tensor<2x2x40x16xf32>
  return %t : tensor<2x2x40x16xf32>
}

func.func @maxdiff(%a: tensor<?x?x?x?xf32>, %b: tensor<?x?x?x?xf32>) {
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<f32>
  %i = linalg.fill ins(%z : f32) outs(%e0 : tensor<f32>) -> tensor<f32>
  %m = linalg.generic {indexing_maps = [#id4, #id4, affine_map<(a, b, c, d) -> ()>],
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

func.func @main() {
  %pk = arith.constant 0.0 : f32
  %pv = arith.constant 0.7 : f32
  %pq = arith.constant 1.9 : f32
  %table = call @table() : () -> tensor<2x3xi32>
  %kn = call @nhd_pool(%pk) : (f32) -> tensor<5x16x2x16xf32>
  %vn = call @nhd_pool(%pv) : (f32) -> tensor<5x16x2x16xf32>
  %kh = call @hnd_pool(%pk) : (f32) -> tensor<5x2x16x16xf32>
  %vh = call @hnd_pool(%pv) : (f32) -> tensor<5x2x16x16xf32>
  %kd = call @dense(%pk) : (f32) -> tensor<2x2x40x16xf32>
  %vd = call @dense(%pv) : (f32) -> tensor<2x2x40x16xf32>
  %qd = call @dense(%pq) : (f32) -> tensor<2x2x40x16xf32>
  %q = tensor.extract_slice %qd[0, 0, 0, 0] [2, 2, 2, 16] [1, 1, 1, 1] : tensor<2x2x40x16xf32> to tensor<2x2x2x16xf32>

  // 1: the gathered NHD cache is the dense one.
  %kg = balancekv.gather_pages %kn, %table : tensor<5x16x2x16xf32>, tensor<2x3xi32> -> tensor<2x2x40x16xf32>
  %kgc = tensor.cast %kg : tensor<2x2x40x16xf32> to tensor<?x?x?x?xf32>
  %kdc = tensor.cast %kd : tensor<2x2x40x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%kgc, %kdc) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 2: compress over the pages (a walk of one round over blocks of 8).
  %vg = balancekv.gather_pages %vn, %table : tensor<5x16x2x16xf32>, tensor<2x3xi32> -> tensor<2x2x40x16xf32>
  %ck, %cv, %lw = balancekv.compress %kg, %vg <rounds = 1, block_size = 8, sink = 4, recent = 4, seed = 5>
      : tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>
  %dk, %dv, %dlw = balancekv.compress %kd, %vd <rounds = 1, block_size = 8, sink = 4, recent = 4, seed = 5>
      : tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>
  %ckc = tensor.cast %ck : tensor<2x2x24x16xf32> to tensor<?x?x?x?xf32>
  %dkc = tensor.cast %dk : tensor<2x2x24x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%ckc, %dkc) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 3: weighted attention over HND pages (causal, kv_len 40 and 33).
  %len = arith.constant dense<[40, 33]> : tensor<2xi32>
  %khg = balancekv.gather_pages %kh, %table heads_major : tensor<5x2x16x16xf32>, tensor<2x3xi32> -> tensor<2x2x40x16xf32>
  %vhg = balancekv.gather_pages %vh, %table heads_major : tensor<5x2x16x16xf32>, tensor<2x3xi32> -> tensor<2x2x40x16xf32>
  %zero = arith.constant 0.0 : f32
  %lwe = tensor.empty() : tensor<2x2x40xf32>
  %lw0 = linalg.fill ins(%zero : f32) outs(%lwe : tensor<2x2x40xf32>) -> tensor<2x2x40xf32>
  %op = balancekv.weighted_attention %q, %khg, %vhg, %lw0 kv_len(%len : tensor<2xi32>) causal
      : tensor<2x2x2x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x2x2x16xf32>
  %od = balancekv.weighted_attention %q, %kd, %vd, %lw0 kv_len(%len : tensor<2xi32>) causal
      : tensor<2x2x2x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40x16xf32>, tensor<2x2x40xf32> -> tensor<2x2x2x16xf32>
  %opc = tensor.cast %op : tensor<2x2x2x16xf32> to tensor<?x?x?x?xf32>
  %odc = tensor.cast %od : tensor<2x2x2x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%opc, %odc) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()

  // 4: the compressed values and 5: log-weights agree too.
  %cvc = tensor.cast %cv : tensor<2x2x24x16xf32> to tensor<?x?x?x?xf32>
  %dvc = tensor.cast %dv : tensor<2x2x24x16xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%cvc, %dvc) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()
  %lwx = tensor.expand_shape %lw [[0], [1], [2, 3]] output_shape [2, 2, 24, 1] : tensor<2x2x24xf32> into tensor<2x2x24x1xf32>
  %dlwx = tensor.expand_shape %dlw [[0], [1], [2, 3]] output_shape [2, 2, 24, 1] : tensor<2x2x24xf32> into tensor<2x2x24x1xf32>
  %lwc = tensor.cast %lwx : tensor<2x2x24x1xf32> to tensor<?x?x?x?xf32>
  %dlwc = tensor.cast %dlwx : tensor<2x2x24x1xf32> to tensor<?x?x?x?xf32>
  call @maxdiff(%lwc, %dlwc) : (tensor<?x?x?x?xf32>, tensor<?x?x?x?xf32>) -> ()
  return
}
