// RUN: balancekv-opt %s --balancekv-lower-to-gpu --split-input-file | FileCheck %s

// bf16 compress, N = 600: S' = W' = 32, L_0 = 536, two rounds (536 -> 268
// -> 134), M = 198. The stages of decomposeCompress with the rounds
// unrolled, one pattern each: balance_init (one thread per token), per round
// balance_walk (ceil(L / 128) blocks) and balance_halve (the select kernel,
// into the other state buffers), then gather_kept (M rows, 8 per block). A
// stage buffer whose last launch has passed is reused by the next stage
// allocation of its type (two state buffer pairs ping-pong, one signs
// buffer), and freed after its last launch.
// CHECK-LABEL: func.func @compress_bf16
// CHECK-SAME: (%[[K:.*]]: tensor<1x2x600x64xbf16>, %[[V:.*]]: tensor<1x2x600x64xbf16>)
// CHECK: %[[CUR0:.*]] = gpu.alloc () : memref<1x2x536xi32>
// CHECK: %[[R0:.*]] = gpu.alloc () : memref<1x2x536xi32>
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_init_tokens blocks in (%c3{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c256{{.*}}, {{.*}}) args(%[[CUR0]] : {{.*}}, %[[R0]] : {{.*}})
// CHECK: %[[SIG:.*]] = gpu.alloc () : memref<1x2x536xi8>
// CHECK: %[[KB:.*]] = bufferization.to_buffer %[[K]] read_only : tensor<1x2x600x64xbf16> to memref<1x2x600x64xbf16>
// CHECK: %[[VB:.*]] = bufferization.to_buffer %[[V]] read_only
// The kernels take the buffers' 16-byte alignment as an i32 argument (the
// launches stay one async chain; no host-side branch).
// CHECK: %[[PK:.*]] = memref.extract_aligned_pointer_as_index %[[KB]]
// CHECK: %[[PV:.*]] = memref.extract_aligned_pointer_as_index %[[VB]]
// CHECK: %[[OR:.*]] = arith.ori %[[PK]], %[[PV]]
// CHECK: %[[REM:.*]] = arith.remui %[[OR]], %c16
// CHECK: %[[EQ:.*]] = arith.cmpi eq, %[[REM]]
// CHECK: %[[AL:.*]] = arith.extui %[[EQ]] : i1 to i32
// CHECK-NOT: scf.if
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks in (%c5{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c256{{.*}}, {{.*}}) dynamic_shared_memory_size %c52224_i32 args(%[[KB]] : {{.*}}, %[[VB]] : {{.*}}, %[[CUR0]] : {{.*}}, %[[R0]] : {{.*}}, %[[SIG]] : {{.*}}, %c536{{.*}} : index, %c0{{.*}} : index, %[[AL]] : i32)
// CHECK: %[[CUR1:.*]] = gpu.alloc () : memref<1x2x536xi32>
// CHECK: %[[R1:.*]] = gpu.alloc () : memref<1x2x536xi32>
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_select blocks in (%c1{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c1024{{.*}}, {{.*}}) args(%[[SIG]] : {{.*}}, %[[CUR0]] : {{.*}}, %[[R0]] : {{.*}}, %[[CUR1]] : {{.*}}, %[[R1]] : {{.*}}, %c536{{.*}} : index)
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks in (%c3{{.*}}, %c2{{.*}}, %c1{{.*}}) {{.*}} args({{.*}}, %[[CUR1]] : {{.*}}, %[[R1]] : {{.*}}, %[[SIG]] : {{.*}}, %c268{{.*}} : index, %c1{{.*}} : index, %{{.*}} : i32)
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_select {{.*}} args(%[[SIG]] : {{.*}}, %[[CUR1]] : {{.*}}, %[[R1]] : {{.*}}, %[[CUR2:.*]] : {{.*}}, %[[R2:.*]] : {{.*}}, %c268{{.*}} : index)
// CHECK-DAG: gpu.dealloc %[[SIG]] :
// CHECK-DAG: gpu.dealloc %[[CUR1]] :
// CHECK-DAG: gpu.dealloc %[[R1]] :
// CHECK: %[[CK:.*]] = gpu.alloc () : memref<1x2x198x64xbf16>
// CHECK: %[[CV:.*]] = gpu.alloc () : memref<1x2x198x64xbf16>
// CHECK: %[[LW:.*]] = gpu.alloc () : memref<1x2x198xf32>
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_gather blocks in (%c25{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c256{{.*}}, {{.*}}) args(%{{.*}} : {{.*}}, %{{.*}} : {{.*}}, %[[CUR2]] : {{.*}}, %[[R2]] : {{.*}}, %[[CK]] : {{.*}}, %[[CV]] : {{.*}}, %[[LW]] : {{.*}}, %{{.*}} : i32)
// CHECK-DAG: gpu.dealloc %[[CUR2]] :
// CHECK-DAG: gpu.dealloc %[[R2]] :
// CHECK-NOT: gpu.dealloc
// CHECK: %[[CKT:.*]] = bufferization.to_tensor %[[CK]] restrict writable
// CHECK: %[[CVT:.*]] = bufferization.to_tensor %[[CV]] restrict writable
// CHECK: %[[LWT:.*]] = bufferization.to_tensor %[[LW]] restrict writable
// CHECK: return %[[CKT]], %[[CVT]], %[[LWT]]
// The same configuration again shares the kernels.
// CHECK-LABEL: func.func @compress_again
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks
// CHECK-NOT: @balancekv_walk_1
// The kernels: the walk stages raw 16-bit rows in dynamic workgroup memory,
// runs the Gram on tensor cores and the walk in warp 0 (shuffles, no
// barriers).
// CHECK: gpu.module @balancekv_kernels
// CHECK: gpu.func @balancekv_init_tokens({{.*}}) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: gpu.func @balancekv_walk(%{{.*}}: memref<1x2x600x64xbf16>, %{{.*}}: memref<1x2x600x64xbf16>, %{{.*}}: memref<1x2x536xi32>, %{{.*}}: memref<1x2x536xi32>, %{{.*}}: memref<1x2x536xi8>, %{{.*}}: index, %{{.*}}: index, %[[FLAG:.*]]: i32) kernel
// CHECK: gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// G as its strict upper triangle: 128 * 127 / 2 floats.
// CHECK: memref.view {{.*}} to memref<8128xf32, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.*}} to memref<9216xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.*}} to memref<4608xi32, #gpu.address_space<workgroup>>
// Staging: 16-byte loads when the flag is set, else element by element.
// CHECK: %[[SET:.*]] = arith.cmpi ne, %[[FLAG]], %c0_i32
// CHECK: scf.if %[[SET]] {
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<1x2x600x64xbf16>, vector<8xbf16>
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<9216xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: } else {
// CHECK: memref.load %{{.*}} : memref<1x2x600x64xbf16>
// CHECK: }
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// CHECK: math.exp
// Philox-4x32-10 for u of each owned row (128 rows: 4 per lane), then the
// walk over the block four steps at a time: the chunk's S_i and u_i fetched
// from their owner lanes (8 independent shuffles), four decisions in every
// lane with the chunk's own G entries (1 + 2 + 3 FMAs), then four updates
// of each of the lane's 4 rows.
// CHECK: arith.mului_extended
// CHECK: %[[FOUR:.*]] = arith.constant 4 : index
// CHECK-NEXT: scf.for {{.*}} step %[[FOUR]] iter_args({{.*}}) -> (f32, f32, f32, f32)
// CHECK-COUNT-8: gpu.shuffle idx
// CHECK-NOT: gpu.shuffle
// CHECK: arith.cmpf olt
// CHECK: math.fma
// CHECK: arith.cmpf olt
// CHECK-COUNT-2: math.fma
// CHECK: arith.cmpf olt
// CHECK-COUNT-3: math.fma
// CHECK: arith.cmpf olt
// CHECK-NOT: gpu.barrier
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-16: math.fma
// CHECK-NOT: math.fma
// CHECK: scf.yield
// Workgroup buffers carry an explicit 16-byte alignment (LLVM otherwise
// vectorises their loads on an alignment the PTX does not declare).
// CHECK: gpu.func @balancekv_select({{.*}}) workgroup(%{{.*}} : memref<1024xi32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<2xi32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel attributes {known_block_size = array<i32: 1024, 1, 1>}
// CHECK: gpu.func @balancekv_gather(
// CHECK: vector.load
// CHECK-NOT: gpu.func @balancekv_walk
func.func @compress_bf16(%k: tensor<1x2x600x64xbf16>, %v: tensor<1x2x600x64xbf16>)
    -> (tensor<1x2x198x64xbf16>, tensor<1x2x198x64xbf16>, tensor<1x2x198xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2, seed = 7>
      : tensor<1x2x600x64xbf16>, tensor<1x2x600x64xbf16>
  return %ck, %cv, %lw : tensor<1x2x198x64xbf16>, tensor<1x2x198x64xbf16>, tensor<1x2x198xf32>
}
func.func @compress_again(%k: tensor<1x2x600x64xbf16>, %v: tensor<1x2x600x64xbf16>)
    -> tensor<1x2x198xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2, seed = 7>
      : tensor<1x2x600x64xbf16>, tensor<1x2x600x64xbf16>
  return %lw : tensor<1x2x198xf32>
}

// -----

// f32 (no tensor cores): the Gram by 4x4 FFMA register tiles over centred
// f32 rows; block 64 => blocks of 64 rows.
// CHECK-LABEL: func.func @compress_f32
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks in (%c3{{.*}}, %c1{{.*}}, %c2{{.*}}) {{.*}}, %c0{{.*}} : index)
// CHECK: gpu.func @balancekv_walk
// CHECK-NOT: nvvm.mma.sync
// CHECK: math.fma
// CHECK: gpu.func @balancekv_select
func.func @compress_f32(%k: tensor<2x1x256x32xf32>, %v: tensor<2x1x256x16xf32>)
    -> tensor<2x1x160xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 1, block_size = 64>
      : tensor<2x1x256x32xf32>, tensor<2x1x256x16xf32>
  return %lw : tensor<2x1x160xf32>
}

// -----

// rounds = 0 keeps everything: no walk, no select; init + gather only.
// CHECK-LABEL: func.func @compress_no_rounds
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_init_tokens
// CHECK-NOT: @balancekv_walk
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_gather
func.func @compress_no_rounds(%k: tensor<1x1x100x16xf16>, %v: tensor<1x1x100x16xf16>)
    -> tensor<1x1x100xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 0>
      : tensor<1x1x100x16xf16>, tensor<1x1x100x16xf16>
  return %lw : tensor<1x1x100xf32>
}

// -----

// Decode with GQA (8 query heads, 2 KV heads: one workgroup per KV head takes
// its 4 query heads), causal, log-weights: split-K over the 576 keys, then
// the combine; 16-byte loads when the key/value buffers are 16-byte aligned.
// CHECK-LABEL: func.func @decode
// CHECK: %[[Q:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<2x8x1x128xbf16> to memref<2x8x1x128xbf16>
// CHECK: %[[K:.*]] = bufferization.to_buffer %{{.*}} read_only
// CHECK: %[[V:.*]] = bufferization.to_buffer %{{.*}} read_only
// CHECK: %[[LW:.*]] = bufferization.to_buffer %{{.*}} read_only
// CHECK: %[[PO:.*]] = gpu.alloc () : memref<2x8x[[S:[0-9]+]]x1x128xf32>
// CHECK: %[[PS:.*]] = gpu.alloc () : memref<2x8x[[S]]x1x2xf32>
// CHECK: %[[OUT:.*]] = gpu.alloc () : memref<2x8x1x128xbf16>
// CHECK: %[[PK:.*]] = memref.extract_aligned_pointer_as_index %[[K]]
// CHECK: %[[PV:.*]] = memref.extract_aligned_pointer_as_index %[[V]]
// CHECK: %[[OR:.*]] = arith.ori %[[PK]], %[[PV]]
// CHECK: %[[REM:.*]] = arith.remui %[[OR]], %c16
// CHECK: %[[EQ:.*]] = arith.cmpi eq, %[[REM]]
// CHECK: %[[AL:.*]] = arith.extui %[[EQ]] : i1 to i32
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_split blocks in (%c[[S]]{{.*}}, %c2{{.*}}, %c2{{.*}}) threads in (%c128{{.*}}, {{.*}}) args(%[[Q]] : {{.*}}, %[[K]] : {{.*}}, %[[V]] : {{.*}}, %[[LW]] : {{.*}}, %[[PO]] : {{.*}}, %[[PS]] : {{.*}}, %[[AL]] : i32)
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_combine blocks in (%c8{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c128{{.*}}, {{.*}}) args(%[[PO]] : {{.*}}, %[[PS]] : {{.*}}, %[[OUT]] : {{.*}})
// CHECK: gpu.dealloc %[[PO]]
// CHECK: gpu.dealloc %[[PS]]
// CHECK: bufferization.to_tensor %[[OUT]] restrict writable
// One split kernel, both paths: vector<8xbf16> loads and a 16-lane shuffle
// reduction when the flag is set, scalar loads and a warp-wide one else.
// CHECK: gpu.func @balancekv_decode_split({{.*}}, %[[FLAG:.*]]: i32) workgroup
// CHECK: %[[SET:.*]] = arith.cmpi ne, %[[FLAG]], %c0_i32
// CHECK: scf.if %[[SET]] {
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<2x2x576x128xbf16>, vector<8xbf16>
// CHECK: gpu.shuffle xor %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK: math.exp
// CHECK: } else {
// CHECK: memref.load %{{.*}} : memref<2x2x576x128xbf16>
// CHECK: gpu.shuffle xor
// CHECK: gpu.func @balancekv_decode_combine
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @decode(%q: tensor<2x8x1x128xbf16>, %ck: tensor<2x2x576x128xbf16>,
                  %cv: tensor<2x2x576x128xbf16>, %lw: tensor<2x2x576xf32>)
    -> tensor<2x8x1x128xbf16> {
  %o = balancekv.weighted_attention %q, %ck, %cv, %lw causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x576x128xbf16>,
        tensor<2x2x576x128xbf16>, tensor<2x2x576xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}

// -----

// Plain attention (no log-weights) with kv_len, and a value dim that the
// 16-byte path does not take (Dv = 20): the split kernel has no flag.
// CHECK-LABEL: func.func @attention_kv_len
// CHECK: %[[LEN:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<3xi64> to memref<3xi64>
// CHECK-NOT: extract_aligned_pointer
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_split blocks in {{.*}} args(%{{.*}} : memref<3x4x2x32xf16>, %{{.*}} : memref<3x4x300x32xf16>, %{{.*}} : memref<3x4x300x20xf16>, %[[LEN]] : memref<3xi64>, %{{.*}} : memref<3x4x{{[0-9]+}}x2x20xf32>, %{{.*}} : memref<3x4x{{[0-9]+}}x2x2xf32>)
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_combine
// CHECK: gpu.func @balancekv_decode_split
// CHECK: memref.load %{{.*}} : memref<3xi64>
// CHECK: arith.maxsi
// CHECK: arith.minsi
func.func @attention_kv_len(%q: tensor<3x4x2x32xf16>, %k: tensor<3x4x300x32xf16>,
                            %v: tensor<3x4x300x20xf16>, %len: tensor<3xi64>)
    -> tensor<3x4x2x20xf16> {
  %o = balancekv.attention %q, %k, %v kv_len(%len : tensor<3xi64>)
      : tensor<3x4x2x32xf16>, tensor<3x4x300x32xf16>, tensor<3x4x300x20xf16>
        -> tensor<3x4x2x20xf16>
  return %o : tensor<3x4x2x20xf16>
}

// -----

// A block of 100 rows on tensor cores is padded to whole 16-row tiles: G is
// the upper triangle of 112 x 112 and the mma loop covers 7 x 14 tiles.
// CHECK-LABEL: func.func @compress_block_100
// CHECK: gpu.func @balancekv_walk
// CHECK: memref.view {{.*}} to memref<6216xf32, #gpu.address_space<workgroup>>
// CHECK: %[[TILES:.*]] = arith.constant 98 : index
// CHECK: nvvm.mma.sync
func.func @compress_block_100(%k: tensor<1x1x1000x64xbf16>, %v: tensor<1x1x1000x64xbf16>)
    -> tensor<1x1x298xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <block_size = 100>
      : tensor<1x1x1000x64xbf16>, tensor<1x1x1000x64xbf16>
  return %lw : tensor<1x1x298xf32>
}

// -----

// Ops in a nested module get their kernels in that module (the closest
// module of a gpu.launch_func must be a gpu.container_module holding them).
// CHECK-LABEL: module @inner attributes {gpu.container_module}
// CHECK: func.func @nested
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_init_tokens
// CHECK: gpu.module @balancekv_kernels
module @inner {
  func.func @nested(%k: tensor<1x1x100x16xf16>, %v: tensor<1x1x100x16xf16>) -> tensor<1x1x82xf32> {
    %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 1>
        : tensor<1x1x100x16xf16>, tensor<1x1x100x16xf16>
    return %lw : tensor<1x1x82xf32>
  }
}

// -----

// Zero-sized outputs (value dim, queries or batch of 0) launch nothing: the
// result is an empty tensor (the launch shapes used to divide by zero).
// CHECK-LABEL: func.func @empty_value_dim
// CHECK-NOT: gpu.launch_func
// CHECK: %[[E:.*]] = tensor.empty() : tensor<1x4x1x0xf32>
// CHECK: return %[[E]]
func.func @empty_value_dim(%q: tensor<1x4x1x16xf32>, %k: tensor<1x2x10x16xf32>, %v: tensor<1x2x10x0xf32>) -> tensor<1x4x1x0xf32> {
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x16xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x0xf32> -> tensor<1x4x1x0xf32>
  return %o : tensor<1x4x1x0xf32>
}

// CHECK-LABEL: func.func @empty_queries
// CHECK-NOT: gpu.launch_func
// CHECK: tensor.empty() : tensor<1x4x0x16xf32>
func.func @empty_queries(%q: tensor<1x4x0x16xf32>, %k: tensor<1x2x10x16xf32>, %v: tensor<1x2x10x16xf32>, %lw: tensor<1x2x10xf32>) -> tensor<1x4x0x16xf32> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw : tensor<1x4x0x16xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10xf32> -> tensor<1x4x0x16xf32>
  return %o : tensor<1x4x0x16xf32>
}

// CHECK-LABEL: func.func @empty_batch
// CHECK-NOT: gpu.launch_func
// CHECK: tensor.empty() : tensor<0x4x1x16xf32>
func.func @empty_batch(%q: tensor<0x4x1x16xf32>, %k: tensor<0x2x10x16xf32>, %v: tensor<0x2x10x16xf32>) -> tensor<0x4x1x16xf32> {
  %o = balancekv.attention %q, %k, %v : tensor<0x4x1x16xf32>, tensor<0x2x10x16xf32>, tensor<0x2x10x16xf32> -> tensor<0x4x1x16xf32>
  return %o : tensor<0x4x1x16xf32>
}
