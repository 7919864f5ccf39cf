// RUN: balancekv-opt %s --split-input-file --balancekv-triton-weighted-attention=remarks -verify-diagnostics | FileCheck %s

// Pointer tiles (K [D, BN] through offsets), exp2: the log-weights are
// loaded with K's offsets minus the feature term, K's strides replaced by
// twin arguments, under K's mask, scaled by log2(e), and added to the logits
// the running max is subtracted from.
// CHECK-LABEL: tt.func public @pointer_tiles
// CHECK-SAME: %[[SKH:[a-z0-9_]+]]: i32, %[[SKN:[a-z0-9_]+]]: i32, %[[N:[a-z0-9_]+]]: i32, %[[LW:[a-z0-9_]+]]: !tt.ptr<f32>, %[[LSKH:[a-z0-9_]+]]: i32, %[[LSKN:[a-z0-9_]+]]: i32)
// CHECK-SAME: attributes {balancekv.log_weights}
// CHECK: scf.for %[[START:.*]] = %{{.*}} to %[[N]]
// CHECK: %[[KT:.*]] = tt.load %{{.*}}, %[[KMASK:.*]], %{{.*}} : tensor<32x16x!tt.ptr<f16>>
// CHECK: %[[QK:.*]] = tt.dot %{{.*}}, %[[KT]]
// CHECK: %[[S:.*]] = arith.select
// CHECK: %[[LSKNS:.*]] = tt.splat %[[LSKN]] : i32 -> tensor<1x16xi32>
// CHECK: %[[COLS:.*]] = arith.muli %{{.*}}, %[[LSKNS]] : tensor<1x16xi32>
// CHECK: %[[HEAD:.*]] = arith.muli %{{.*}}, %[[LSKH]] : i32
// CHECK: %[[LWH:.*]] = tt.addptr %[[LW]], %[[HEAD]] : !tt.ptr<f32>, i32
// CHECK: %[[LWS:.*]] = tt.splat %[[LWH]] : !tt.ptr<f32> -> tensor<16x!tt.ptr<f32>>
// CHECK: %[[COLS1D:.*]] = tt.reshape %[[COLS]] : tensor<1x16xi32> -> tensor<16xi32>
// CHECK: %[[PTRS:.*]] = tt.addptr %[[LWS]], %[[COLS1D]]
// CHECK: %[[MASK1D:.*]] = tt.reshape %{{.*}} : tensor<1x16xi1> -> tensor<16xi1>
// CHECK: %[[W:.*]] = tt.load %[[PTRS]], %[[MASK1D]], %{{.*}} : tensor<16x!tt.ptr<f32>>
// CHECK: %[[W2:.*]] = arith.mulf %[[W]], %{{.*}} : tensor<16xf32>
// CHECK: %[[WE:.*]] = tt.expand_dims %[[W2]] {axis = 0 : i32} : tensor<16xf32> -> tensor<1x16xf32>
// CHECK: %[[WB:.*]] = tt.broadcast %[[WE]] : tensor<1x16xf32> -> tensor<16x16xf32>
// CHECK: %[[SB:.*]] = arith.addf %[[S]], %[[WB]] : tensor<16x16xf32>
// CHECK: %[[ARG:.*]] = arith.subf %[[SB]], %{{.*}} : tensor<16x16xf32>
// CHECK: math.exp2 %[[ARG]]
tt.func public @pointer_tiles(%Q: !tt.ptr<f16>, %K: !tt.ptr<f16>, %V: !tt.ptr<f16>,
                              %O: !tt.ptr<f32>, %stride_kh: i32, %stride_kn: i32,
                              %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %ninf = arith.constant dense<0xFF800000> : tensor<16x16xf32>
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %zk = arith.constant dense<0.0> : tensor<32x16xf16>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %l0 = arith.constant dense<0.0> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %h = tt.get_program_id y : i32
  %r16 = tt.make_range {end = 16 : i32, start = 0 : i32} : tensor<16xi32>
  %r32 = tt.make_range {end = 32 : i32, start = 0 : i32} : tensor<32xi32>
  %qs = tt.splat %Q : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %q = tt.load %qs : tensor<16x32x!tt.ptr<f16>>
  %vs = tt.splat %V : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %res:3 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %l = %l0, %acc = %acc0)
      -> (tensor<16xf32>, tensor<16xf32>, tensor<16x32xf32>) : i32 {
    %cs = tt.splat %start : i32 -> tensor<16xi32>
    %cols = arith.addi %cs, %r16 : tensor<16xi32>
    %cols2 = tt.expand_dims %cols {axis = 0 : i32} : tensor<16xi32> -> tensor<1x16xi32>
    %ns = tt.splat %N : i32 -> tensor<1x16xi32>
    %valid = arith.cmpi slt, %cols2, %ns : tensor<1x16xi32>
    %hoff = arith.muli %h, %stride_kh : i32
    %kh = tt.addptr %K, %hoff : !tt.ptr<f16>, i32
    %skn = tt.splat %stride_kn : i32 -> tensor<1x16xi32>
    %coff = arith.muli %cols2, %skn : tensor<1x16xi32>
    %kp0 = tt.splat %kh : !tt.ptr<f16> -> tensor<1x16x!tt.ptr<f16>>
    %kp1 = tt.addptr %kp0, %coff : tensor<1x16x!tt.ptr<f16>>, tensor<1x16xi32>
    %d = tt.expand_dims %r32 {axis = 1 : i32} : tensor<32xi32> -> tensor<32x1xi32>
    %kp2 = tt.broadcast %kp1 : tensor<1x16x!tt.ptr<f16>> -> tensor<32x16x!tt.ptr<f16>>
    %db = tt.broadcast %d : tensor<32x1xi32> -> tensor<32x16xi32>
    %kp = tt.addptr %kp2, %db : tensor<32x16x!tt.ptr<f16>>, tensor<32x16xi32>
    %kmask = tt.broadcast %valid : tensor<1x16xi1> -> tensor<32x16xi1>
    %k = tt.load %kp, %kmask, %zk : tensor<32x16x!tt.ptr<f16>>
    %qk = tt.dot %q, %k, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %vmask = tt.broadcast %valid : tensor<1x16xi1> -> tensor<16x16xi1>
    %s = arith.select %vmask, %qk, %ninf : tensor<16x16xi1>, tensor<16x16xf32>
    %mx = "tt.reduce"(%s) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %s, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %da = arith.subf %m, %mn : tensor<16xf32>
    %alpha = math.exp2 %da : tensor<16xf32>
    %ps = "tt.reduce"(%p) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.addf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %la = arith.mulf %l, %alpha : tensor<16xf32>
    %ln = arith.addf %la, %ps : tensor<16xf32>
    %v = tt.load %vs : tensor<16x32x!tt.ptr<f16>>
    %ae = tt.expand_dims %alpha {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %ab = tt.broadcast %ae : tensor<16x1xf32> -> tensor<16x32xf32>
    %accs = arith.mulf %acc, %ab : tensor<16x32xf32>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %accs : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    scf.yield %mn, %ln, %accn : tensor<16xf32>, tensor<16xf32>, tensor<16x32xf32>
  }
  %os = tt.splat %O : !tt.ptr<f32> -> tensor<16x32x!tt.ptr<f32>>
  tt.store %os, %res#2 : tensor<16x32x!tt.ptr<f32>>
  tt.return
}

// -----

// A host tensor descriptor (TMA), keys transposed for the dot: the
// log-weights are the rows of the descriptor, masked by its shape (the i32
// argument after it), no stride arguments.
// CHECK-LABEL: tt.func public @host_descriptor
// CHECK-SAME: %[[KD:[a-z0-9_]+]]: !tt.tensordesc<tensor<16x32xf16>>, %[[ROWS:[a-z0-9_]+]]: i32,
// CHECK-SAME: %[[LW:[a-z0-9_]+]]: !tt.ptr<f32>)
// CHECK-NOT: !tt.ptr<f32>, %{{.*}}: i32)
// CHECK: scf.for {{.*}} iter_args(%{{.*}}, %[[ROW:[a-z0-9_]+]] = %{{.*}})
// CHECK: tt.descriptor_load %[[KD]][%[[ROW]], %{{.*}}]
// CHECK: %[[R0:.*]] = tt.splat %[[ROW]] : i32 -> tensor<16xi32>
// CHECK: %[[R:.*]] = arith.addi %[[R0]], %{{.*}} : tensor<16xi32>
// CHECK: %[[P0:.*]] = tt.splat %[[LW]]
// CHECK: %[[P:.*]] = tt.addptr %[[P0]], %[[R]]
// CHECK: %[[LIM:.*]] = tt.splat %[[ROWS]] : i32 -> tensor<16xi32>
// CHECK: %[[M:.*]] = arith.cmpi slt, %[[R]], %[[LIM]]
// CHECK: tt.load %[[P]], %[[M]]
// CHECK: math.exp2
tt.func public @host_descriptor(%q: tensor<16x32xf16>, %Kd: !tt.tensordesc<tensor<16x32xf16>>,
                                %rows: i32, %cols: i32, %rs: i64, %cs: i64,
                                %V: !tt.ptr<f16>, %N: i32, %off: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %vs = tt.splat %V : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %res:3 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %acc = %acc0, %row = %off)
      -> (tensor<16xf32>, tensor<16x32xf32>, i32) : i32 {
    %k = tt.descriptor_load %Kd[%row, %c0] : !tt.tensordesc<tensor<16x32xf16>> -> tensor<16x32xf16>
    %kt = tt.trans %k {order = array<i32: 1, 0>} : tensor<16x32xf16> -> tensor<32x16xf16>
    %qk = tt.dot %q, %kt, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %mx = "tt.reduce"(%qk) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %qk, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %v = tt.load %vs : tensor<16x32x!tt.ptr<f16>>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %acc : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    %next = arith.addi %row, %c16 : i32
    scf.yield %mn, %accn, %next : tensor<16xf32>, tensor<16x32xf32>, i32
  }
  tt.return
}

// -----

// A block pointer advanced by the loop: its key-dim offset is carried next
// to it, the key stride (i64 from an i32 argument) gets a twin, the base's
// head offset too; boundaryCheck on the key dim masks the log-weights.
// CHECK-LABEL: tt.func public @block_pointer
// CHECK-SAME: %[[LW:[a-z0-9_]+]]: !tt.ptr<f32>, %[[LSKH:[a-z0-9_]+]]: i32, %[[LSKN:[a-z0-9_]+]]: i32)
// CHECK: %[[LHEAD:.*]] = arith.muli %{{.*}}, %[[LSKH]] : i32
// CHECK: %[[LBASE:.*]] = tt.addptr %[[LW]], %[[LHEAD]]
// CHECK: %[[LSTRIDE:.*]] = arith.extsi %[[LSKN]] : i32 to i64
// CHECK: tt.make_tensor_ptr
// CHECK: scf.for {{.*}} iter_args({{.*}}, %[[KOFF:[a-z0-9_]+]] = %{{.*}}) -> ({{.*}}, i32)
// CHECK: %[[R:.*]] = arith.addi %{{.*}}, %{{.*}} : tensor<16xi32>
// CHECK: %[[R64:.*]] = arith.extsi %[[R]] : tensor<16xi32> to tensor<16xi64>
// CHECK: %[[OFF:.*]] = arith.muli %[[R64]], %{{.*}} : tensor<16xi64>
// CHECK: %[[P:.*]] = tt.addptr %{{.*}}, %[[OFF]] : tensor<16x!tt.ptr<f32>>, tensor<16xi64>
// CHECK: %[[M:.*]] = arith.cmpi slt, %[[R64]], %{{.*}} : tensor<16xi64>
// CHECK: tt.load %[[P]], %[[M]]
// CHECK: %[[NEXT:.*]] = arith.addi %[[KOFF]], %{{.*}} : i32
// CHECK: scf.yield {{.*}}, %[[NEXT]] :
tt.func public @block_pointer(%q: tensor<16x32xf16>, %K: !tt.ptr<f16>, %V: !tt.ptr<f16>,
                              %stride_kh: i32, %stride_kn: i32, %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %c0_64 = arith.constant 0 : i64
  %c1_64 = arith.constant 1 : i64
  %c32_64 = arith.constant 32 : i64
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %h = tt.get_program_id y : i32
  %hoff = arith.muli %h, %stride_kh : i32
  %kh = tt.addptr %K, %hoff : !tt.ptr<f16>, i32
  %n64 = arith.extsi %N : i32 to i64
  %skn = arith.extsi %stride_kn : i32 to i64
  %kb0 = tt.make_tensor_ptr %kh, [%c32_64, %n64], [%c1_64, %skn], [%c0, %c0] {order = array<i32: 0, 1>} : <tensor<32x16xf16>>
  %vs = tt.splat %V : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %res:3 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %acc = %acc0, %kb = %kb0)
      -> (tensor<16xf32>, tensor<16x32xf32>, !tt.ptr<tensor<32x16xf16>>) : i32 {
    %k = tt.load %kb {boundaryCheck = array<i32: 1>, padding = 1 : i32} : !tt.ptr<tensor<32x16xf16>>
    %qk = tt.dot %q, %k, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %mx = "tt.reduce"(%qk) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %qk, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %v = tt.load %vs : tensor<16x32x!tt.ptr<f16>>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %acc : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    %kn = tt.advance %kb, [%c0, %c16] : <tensor<32x16xf16>>
    scf.yield %mn, %accn, %kn : tensor<16xf32>, tensor<16x32xf32>, !tt.ptr<tensor<32x16xf16>>
  }
  tt.return
}

// -----

// Decode as a sum of products (1-D logits), natural exp, K [BN, D] with
// constant strides (Inductor): offsets divided by the head dim (32), no
// stride arguments, no log2(e).
// CHECK-LABEL: tt.func public @decode_constant_strides
// CHECK-SAME: %[[LW:[a-z0-9_]+]]: !tt.ptr<f32>)
// CHECK-NOT: i32)
// CHECK: %[[HEAD:.*]] = arith.muli %{{.*}}, %{{.*}} : i32
// CHECK: scf.for
// CHECK: %[[S:.*]] = arith.mulf %{{.*}}, %{{.*}} : tensor<16xf32>
// CHECK: %[[C8192:.*]] = arith.constant 8192 : i32
// CHECK: %[[LH:.*]] = arith.muli %{{.*}}, %[[C8192]] : i32
// CHECK: tt.addptr %[[LW]], %[[LH]]
// CHECK-NOT: arith.muli
// CHECK: tt.reshape %[[COLS:.*]] : tensor<16x1xi32> -> tensor<16xi32>
// CHECK: %[[W:.*]] = tt.load %{{.*}} : tensor<16x!tt.ptr<f32>>
// CHECK-NOT: arith.mulf %[[W]]
// CHECK: %[[SB:.*]] = arith.addf %[[S]], %[[W]] : tensor<16xf32>
// CHECK: arith.subf %[[SB]]
// CHECK: math.exp
tt.func public @decode_constant_strides(%q: tensor<32xf32>, %K: !tt.ptr<f16>,
                                        %V: tensor<16x32xf32>, %O: !tt.ptr<f32>) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %c512 = arith.constant 512 : i32
  %c262144 = arith.constant 262144 : i32
  %s32 = arith.constant dense<32> : tensor<16x1xi32>
  %scale = arith.constant dense<0.125> : tensor<16xf32>
  %m0 = arith.constant 0xFF800000 : f32
  %acc0 = arith.constant dense<0.0> : tensor<32xf32>
  %h = tt.get_program_id y : i32
  %hoff = arith.muli %h, %c262144 : i32
  %kh = tt.addptr %K, %hoff : !tt.ptr<f16>, i32
  %r16 = tt.make_range {end = 16 : i32, start = 0 : i32} : tensor<16xi32>
  %r32 = tt.make_range {end = 32 : i32, start = 0 : i32} : tensor<32xi32>
  %qe = tt.expand_dims %q {axis = 0 : i32} : tensor<32xf32> -> tensor<1x32xf32>
  %qb = tt.broadcast %qe : tensor<1x32xf32> -> tensor<16x32xf32>
  %res:2 = scf.for %start = %c0 to %c512 step %c16 iter_args(%m = %m0, %acc = %acc0)
      -> (f32, tensor<32xf32>) : i32 {
    %cs = tt.splat %start : i32 -> tensor<16xi32>
    %cols = arith.addi %cs, %r16 : tensor<16xi32>
    %c2 = tt.expand_dims %cols {axis = 1 : i32} : tensor<16xi32> -> tensor<16x1xi32>
    %coff = arith.muli %c2, %s32 : tensor<16x1xi32>
    %kp0 = tt.splat %kh : !tt.ptr<f16> -> tensor<16x1x!tt.ptr<f16>>
    %kp1 = tt.addptr %kp0, %coff : tensor<16x1x!tt.ptr<f16>>, tensor<16x1xi32>
    %d = tt.expand_dims %r32 {axis = 0 : i32} : tensor<32xi32> -> tensor<1x32xi32>
    %kp2 = tt.broadcast %kp1 : tensor<16x1x!tt.ptr<f16>> -> tensor<16x32x!tt.ptr<f16>>
    %db = tt.broadcast %d : tensor<1x32xi32> -> tensor<16x32xi32>
    %kp = tt.addptr %kp2, %db : tensor<16x32x!tt.ptr<f16>>, tensor<16x32xi32>
    %k = tt.load %kp : tensor<16x32x!tt.ptr<f16>>
    %kf = arith.extf %k : tensor<16x32xf16> to tensor<16x32xf32>
    %prod = arith.mulf %kf, %qb : tensor<16x32xf32>
    %dotq = "tt.reduce"(%prod) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.addf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x32xf32>) -> tensor<16xf32>
    %s = arith.mulf %dotq, %scale : tensor<16xf32>
    %mx = "tt.reduce"(%s) <{axis = 0 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16xf32>) -> f32
    %mn = arith.maxnumf %m, %mx : f32
    %mb = tt.splat %mn : f32 -> tensor<16xf32>
    %arg = arith.subf %s, %mb : tensor<16xf32>
    %p = math.exp %arg : tensor<16xf32>
    %pe = tt.expand_dims %p {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %pb = tt.broadcast %pe : tensor<16x1xf32> -> tensor<16x32xf32>
    %pv = arith.mulf %pb, %V : tensor<16x32xf32>
    %o = "tt.reduce"(%pv) <{axis = 0 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.addf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x32xf32>) -> tensor<32xf32>
    %accn = arith.addf %acc, %o : tensor<32xf32>
    scf.yield %mn, %accn : f32, tensor<32xf32>
  }
  tt.return
}

// -----

// Key pointers carried by the loop (`K_ptrs += BLOCK_N * stride`): left
// alone, with a remark.
// CHECK-LABEL: tt.func public @carried_key_pointers
// CHECK-SAME: %{{.*}}: i32) {
// expected-remark @+1 {{kernel @carried_key_pointers left as it is: the key pointers are not a kernel argument plus offsets (e.g. pointers carried through the loop)}}
tt.func public @carried_key_pointers(%q: tensor<16x32xf16>, %K: !tt.ptr<f16>,
                                     %v: tensor<16x32xf16>, %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %step = arith.constant dense<16> : tensor<32x16xi32>
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %kp0 = tt.splat %K : !tt.ptr<f16> -> tensor<32x16x!tt.ptr<f16>>
  %res:3 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %acc = %acc0, %kp = %kp0)
      -> (tensor<16xf32>, tensor<16x32xf32>, tensor<32x16x!tt.ptr<f16>>) : i32 {
    %k = tt.load %kp : tensor<32x16x!tt.ptr<f16>>
    %qk = tt.dot %q, %k, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %mx = "tt.reduce"(%qk) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %qk, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %acc : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    %kn = tt.addptr %kp, %step : tensor<32x16x!tt.ptr<f16>>, tensor<32x16xi32>
    scf.yield %mn, %accn, %kn : tensor<16xf32>, tensor<16x32xf32>, tensor<32x16x!tt.ptr<f16>>
  }
  tt.return
}

// -----

// A device function: its callers would need the new arguments.
// CHECK-LABEL: tt.func private @device_function
// CHECK-SAME: (%{{.*}}: !tt.ptr<f16>)
// expected-remark @+1 {{kernel @device_function left as it is: not a public kernel (its callers would need the new arguments)}}
tt.func private @device_function(%K: !tt.ptr<f16>) {
  tt.return
}

// -----

// No attention at all (a plain reduction kernel).
// expected-remark @+1 {{kernel @row_sum left as it is: no loop with a QK product and an exp}}
tt.func public @row_sum(%X: !tt.ptr<f32>, %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %z = arith.constant 0.0 : f32
  %xs = tt.splat %X : !tt.ptr<f32> -> tensor<16x!tt.ptr<f32>>
  %r = scf.for %i = %c0 to %N step %c16 iter_args(%acc = %z) -> (f32) : i32 {
    %x = tt.load %xs : tensor<16x!tt.ptr<f32>>
    %s = "tt.reduce"(%x) <{axis = 0 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %y = arith.addf %a, %b : f32
      tt.reduce.return %y : f32
    }) : (tensor<16xf32>) -> f32
    %n = arith.addf %acc, %s : f32
    scf.yield %n : f32
  }
  tt.store %X, %r : !tt.ptr<f32>
  tt.return
}

// -----

// Constant key stride that is not a multiple of the head dim (32): the
// log-weights' layout cannot be derived.
// expected-remark @+1 {{kernel @odd_constant_stride left as it is: a constant key stride (40) is not a multiple of the head dim}}
tt.func public @odd_constant_stride(%q: tensor<16x32xf16>, %K: !tt.ptr<f16>,
                                    %v: tensor<16x32xf16>, %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %s40 = arith.constant dense<40> : tensor<1x16xi32>
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %r16 = tt.make_range {end = 16 : i32, start = 0 : i32} : tensor<16xi32>
  %r32 = tt.make_range {end = 32 : i32, start = 0 : i32} : tensor<32xi32>
  %res:2 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %acc = %acc0)
      -> (tensor<16xf32>, tensor<16x32xf32>) : i32 {
    %cs = tt.splat %start : i32 -> tensor<16xi32>
    %cols = arith.addi %cs, %r16 : tensor<16xi32>
    %c2 = tt.expand_dims %cols {axis = 0 : i32} : tensor<16xi32> -> tensor<1x16xi32>
    %coff = arith.muli %c2, %s40 : tensor<1x16xi32>
    %kp0 = tt.splat %K : !tt.ptr<f16> -> tensor<1x16x!tt.ptr<f16>>
    %kp1 = tt.addptr %kp0, %coff : tensor<1x16x!tt.ptr<f16>>, tensor<1x16xi32>
    %d = tt.expand_dims %r32 {axis = 1 : i32} : tensor<32xi32> -> tensor<32x1xi32>
    %kp2 = tt.broadcast %kp1 : tensor<1x16x!tt.ptr<f16>> -> tensor<32x16x!tt.ptr<f16>>
    %db = tt.broadcast %d : tensor<32x1xi32> -> tensor<32x16xi32>
    %kp = tt.addptr %kp2, %db : tensor<32x16x!tt.ptr<f16>>, tensor<32x16xi32>
    %k = tt.load %kp : tensor<32x16x!tt.ptr<f16>>
    %qk = tt.dot %q, %k, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %mx = "tt.reduce"(%qk) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %qk, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %acc : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    scf.yield %mn, %accn : tensor<16xf32>, tensor<16x32xf32>
  }
  tt.return
}

// -----

// A kernel the pass rewrote before (marked balancekv.log_weights) is left
// alone: a second run would add the log-weights twice.
// expected-remark @+1 {{kernel @rewritten_before left as it is: already rewritten (it takes log-weights: balancekv.log_weights)}}
tt.func public @rewritten_before(%K: !tt.ptr<f16>, %LW: !tt.ptr<f32>) attributes {balancekv.log_weights} {
  tt.return
}

// -----

// One length for queries and keys (self-attention kernels): the keys get a
// twin `N_kv`; the loop runs to it, the queries' mask keeps N.
// CHECK-LABEL: tt.func public @shared_length
// CHECK-SAME: %[[N:[a-z0-9_]+]]: i32, %[[LW:[a-z0-9_]+]]: !tt.ptr<f32>, %[[NKV:[a-z0-9_]+]]: i32)
// CHECK: %[[NQ:.*]] = tt.splat %[[N]] : i32 -> tensor<16xi32>
// CHECK: arith.cmpi slt, %{{.*}}, %[[NQ]] : tensor<16xi32>
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[NKV]] step
tt.func public @shared_length(%Q: !tt.ptr<f16>, %Kd: !tt.tensordesc<tensor<16x32xf16>>,
                              %rows: i32, %cols: i32, %rs: i64, %cs: i64,
                              %V: !tt.ptr<f16>, %N: i32) {
  %c0 = arith.constant 0 : i32
  %c16 = arith.constant 16 : i32
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %zq = arith.constant dense<0.0> : tensor<16x32xf16>
  %m0 = arith.constant dense<0xFF800000> : tensor<16xf32>
  %acc0 = arith.constant dense<0.0> : tensor<16x32xf32>
  %r16 = tt.make_range {end = 16 : i32, start = 0 : i32} : tensor<16xi32>
  %nq = tt.splat %N : i32 -> tensor<16xi32>
  %qvalid = arith.cmpi slt, %r16, %nq : tensor<16xi32>
  %qv2 = tt.expand_dims %qvalid {axis = 1 : i32} : tensor<16xi1> -> tensor<16x1xi1>
  %qmask = tt.broadcast %qv2 : tensor<16x1xi1> -> tensor<16x32xi1>
  %qs = tt.splat %Q : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %q = tt.load %qs, %qmask, %zq : tensor<16x32x!tt.ptr<f16>>
  %vs = tt.splat %V : !tt.ptr<f16> -> tensor<16x32x!tt.ptr<f16>>
  %res:3 = scf.for %start = %c0 to %N step %c16 iter_args(%m = %m0, %acc = %acc0, %row = %c0)
      -> (tensor<16xf32>, tensor<16x32xf32>, i32) : i32 {
    %k = tt.descriptor_load %Kd[%row, %c0] : !tt.tensordesc<tensor<16x32xf16>> -> tensor<16x32xf16>
    %kt = tt.trans %k {order = array<i32: 1, 0>} : tensor<16x32xf16> -> tensor<32x16xf16>
    %qk = tt.dot %q, %kt, %zero : tensor<16x32xf16> * tensor<32x16xf16> -> tensor<16x16xf32>
    %mx = "tt.reduce"(%qk) <{axis = 1 : i32}> ({
    ^bb0(%a: f32, %b: f32):
      %x = arith.maxnumf %a, %b : f32
      tt.reduce.return %x : f32
    }) : (tensor<16x16xf32>) -> tensor<16xf32>
    %mn = arith.maxnumf %m, %mx : tensor<16xf32>
    %me = tt.expand_dims %mn {axis = 1 : i32} : tensor<16xf32> -> tensor<16x1xf32>
    %mb = tt.broadcast %me : tensor<16x1xf32> -> tensor<16x16xf32>
    %arg = arith.subf %qk, %mb : tensor<16x16xf32>
    %p = math.exp2 %arg : tensor<16x16xf32>
    %v = tt.load %vs : tensor<16x32x!tt.ptr<f16>>
    %p16 = arith.truncf %p : tensor<16x16xf32> to tensor<16x16xf16>
    %accn = tt.dot %p16, %v, %acc : tensor<16x16xf16> * tensor<16x32xf16> -> tensor<16x32xf32>
    %next = arith.addi %row, %c16 : i32
    scf.yield %mn, %accn, %next : tensor<16xf32>, tensor<16x32xf32>, i32
  }
  tt.return
}
