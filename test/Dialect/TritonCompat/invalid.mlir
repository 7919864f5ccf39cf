// RUN: balancekv-opt %s --split-input-file --verify-diagnostics

tt.func @f() {
  // expected-error @+1 {{'tt.make_range' op start must be less than end}}
  %r = tt.make_range {end = 0 : i32, start = 4 : i32} : tensor<4xi32>
  tt.return
}

// -----

tt.func @f() {
  // expected-error @+1 {{'tt.make_range' op result must be a 1-D tensor of end - start elements}}
  %r = tt.make_range {end = 8 : i32, start = 0 : i32} : tensor<4xi32>
  tt.return
}

// -----

tt.func @f(%t: tensor<2x4xf32>) {
  // expected-error @+1 {{'tt.broadcast' op can only broadcast dims of size 1, got 2 -> 8}}
  %b = tt.broadcast %t : tensor<2x4xf32> -> tensor<8x4xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<4xf32>) {
  // expected-error @+1 {{'tt.expand_dims' op result shape must be the source shape with a 1 at axis 0}}
  %e = tt.expand_dims %t {axis = 0 : i32} : tensor<4xf32> -> tensor<4x1xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<4xf32>) {
  // expected-error @+1 {{'tt.reshape' op source and result must have the same number of elements}}
  %r = tt.reshape %t : tensor<4xf32> -> tensor<2x4xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<2x4xf32>) {
  // expected-error @+1 {{'tt.trans' op order must be a permutation}}
  %r = tt.trans %t {order = array<i32: 0, 0>} : tensor<2x4xf32> -> tensor<2x4xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<2x4xf32>) {
  // expected-error @+1 {{'tt.trans' op result dim 0 must be source dim 1}}
  %r = tt.trans %t {order = array<i32: 1, 0>} : tensor<2x4xf32> -> tensor<2x4xf32>
  tt.return
}

// -----

tt.func @f(%a: tensor<16x8xf16>, %b: tensor<16x8xf16>, %c: tensor<16x8xf32>) {
  // expected-error @+1 {{'tt.dot' op shapes do not form a matrix product}}
  %d = tt.dot %a, %b, %c : tensor<16x8xf16> * tensor<16x8xf16> -> tensor<16x8xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<4xf32>) {
  // expected-error @+1 {{'tt.reduce' op axis 1 out of range for rank 1}}
  %r = "tt.reduce"(%t) <{axis = 1 : i32}> ({
  ^bb0(%a: f32, %b: f32):
    %s = arith.addf %a, %b : f32
    tt.reduce.return %s : f32
  }) : (tensor<4xf32>) -> f32
  tt.return
}

// -----

tt.func @f(%x: f32) -> i32 {
  // expected-error @+1 {{'tt.return' op type of return operand ('f32') does not match the function result type ('i32')}}
  tt.return %x : f32
}

// -----

tt.func @f(%x: f32) {
  // expected-error @+1 {{'tt.call' op 'missing' does not reference a valid tt.func}}
  %y = tt.call @missing(%x) : (f32) -> f32
  tt.return
}

// -----

tt.func @f(%p: tensor<4x!tt.ptr<f32>>, %v: tensor<4xf16>) {
  // expected-error @+1 {{'tt.store' op failed to verify that value type matches ptr type}}
  "tt.store"(%p, %v) <{boundaryCheck = array<i32>, cache = 1 : i32, evict = 1 : i32}> : (tensor<4x!tt.ptr<f32>>, tensor<4xf16>) -> ()
  tt.return
}

// -----

tt.func @f(%p: tensor<4x!tt.ptr<f32>>, %m: tensor<8xi1>) {
  // expected-error @+1 {{'tt.load' op failed to verify that mask type matches ptr type}}
  %l = "tt.load"(%p, %m) <{boundaryCheck = array<i32>, cache = 1 : i32, evict = 1 : i32, isVolatile = false, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<4x!tt.ptr<f32>>, tensor<8xi1>) -> tensor<4xf32>
  tt.return
}

// -----

tt.func @f(%p: !tt.ptr<f32>) {
  // expected-error @+1 {{invalid properties {axis = 3 : i32} for op tt.get_program_id: Invalid attribute `axis` in property conversion: 3 : i32}}
  %i = "tt.get_program_id"() <{axis = 3 : i32}> : () -> i32
  tt.return
}

// -----

tt.func @f(%p: !tt.ptr<f16>, %n: i64, %o: i32) {
  // expected-error @+1 {{'tt.make_tensor_ptr' op needs one shape, stride, offset and order entry per block dim (2)}}
  %b = tt.make_tensor_ptr %p, [%n], [%n], [%o] {order = array<i32: 0>} : <tensor<64x64xf16>>
  tt.return
}

// -----

tt.func @f(%x: f32) -> (f32, f32) {
  // expected-error @+1 {{'tt.return' op has 1 operands, but the enclosing function (f) returns 2}}
  tt.return %x : f32
}

// -----

tt.func private @g(%x: i32) -> i32

tt.func @f(%x: f32) {
  // expected-error @+1 {{'tt.call' op operand or result types do not match the callee}}
  %y = tt.call @g(%x) : (f32) -> f32
  tt.return
}

// -----

tt.func @f(%t: tensor<4xf32>) {
  // expected-error @+1 {{'tt.expand_dims' op axis 2 out of range}}
  %e = tt.expand_dims %t {axis = 2 : i32} : tensor<4xf32> -> tensor<4x1xf32>
  tt.return
}

// -----

tt.func @f(%t: tensor<1x4xf32>) {
  // expected-error @+1 {{'tt.broadcast' op source rank 2 differs from result rank 3}}
  %b = tt.broadcast %t : tensor<1x4xf32> -> tensor<2x1x4xf32>
  tt.return
}

// -----

tt.func @f(%p: !tt.ptr<f16>, %n: i64, %o: i32) {
  // expected-error @+1 {{'tt.make_tensor_ptr' op result must point to a tensor (a block pointer)}}
  %b = tt.make_tensor_ptr %p, [%n], [%n], [%o] {order = array<i32: 0>} : <f16>
  tt.return
}

// -----

tt.func @f(%t: tensor<4xf32>) {
  // expected-error @+1 {{'tt.reduce' op needs one result per operand}}
  %r:2 = "tt.reduce"(%t) <{axis = 0 : i32}> ({
  ^bb0(%a: f32, %b: f32):
    %s = arith.addf %a, %b : f32
    tt.reduce.return %s : f32
  }) : (tensor<4xf32>) -> (f32, f32)
  tt.return
}

// -----

// The function interface checks the entry block against the signature.
// expected-error @+1 {{'tt.func' op type of entry block argument #0('f32') must match the type of the corresponding argument in function signature('i32')}}
"tt.func"() <{function_type = (i32) -> (), sym_name = "f"}> ({
^bb0(%a: f32):
  tt.return
}) : () -> ()

// -----

tt.func @f(%x: tensor<8xf32>, %lo: tensor<8xf16>) {
  // expected-error @+1 {{'tt.clampf' op requires the same type for all operands and results}}
  %r = "tt.clampf"(%x, %lo, %x) <{propagateNan = 0 : i32}> : (tensor<8xf32>, tensor<8xf16>, tensor<8xf32>) -> tensor<8xf32>
  tt.return
}

// -----

tt.func @f(%x: tensor<8xf32>) {
  // expected-error @+1 {{invalid properties {propagateNan = 7 : i32} for op tt.clampf: Invalid attribute `propagateNan` in property conversion: 7 : i32}}
  %r = "tt.clampf"(%x, %x, %x) <{propagateNan = 7 : i32}> : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  tt.return
}

// -----

tt.func @f(%d: !tt.tensordesc<tensor<64x64xf16>>, %x: tensor<64x64xf16>, %i: i32) {
  // expected-error @+1 {{invalid properties {kind = 12 : i32} for op tt.descriptor_reduce: Invalid attribute `kind` in property conversion: 12 : i32}}
  "tt.descriptor_reduce"(%d, %x, %i, %i) <{kind = 12 : i32}> : (!tt.tensordesc<tensor<64x64xf16>>, tensor<64x64xf16>, i32, i32) -> ()
  tt.return
}

// -----

tt.func @f(%x: tensor<64xf32, #ttg.blocked<{sizePerThread = [1], threadsPerWarp = [32], warpsPerCTA = [4], order = [0]}>>) {
  // expected-error @+1 {{'ttg.convert_layout' op requires the same shape for all operands and results}}
  %y = ttg.convert_layout %x : tensor<64xf32, #ttg.blocked<{sizePerThread = [1], threadsPerWarp = [32], warpsPerCTA = [4], order = [0]}>> -> tensor<32xf32>
  tt.return
}

// -----

// expected-error @+1 {{expected static shape}}
tt.func @f(%m: !ttg.memdesc<64x?xf16, #ttg.shared_memory, #ttg.shared_memory>) {
  tt.return
}

// -----

tt.func @f(%x: tensor<2xf32>) {
  // expected-error @+1 {{'tt.unsplat' op failed to verify that result is the element of the one-element source}}
  %y = "tt.unsplat"(%x) : (tensor<2xf32>) -> f16
  tt.return
}

// -----

tt.func @f(%a: tensor<64x64xf16>, %b: !ttg.memdesc<64x64xf16, #ttg.shared_memory, #ttg.shared_memory>, %c: tensor<64x64xf32>) {
  // expected-error @+1 {{'ttng.warp_group_dot' op failed to verify that accumulator type matches result type}}
  %d = "ttng.warp_group_dot"(%a, %b, %c) : (tensor<64x64xf16>, !ttg.memdesc<64x64xf16, #ttg.shared_memory, #ttg.shared_memory>, tensor<64x64xf32>) -> tensor<64x64xf16>
  tt.return
}

// -----

tt.func @f(%c: tensor<64x64xf32>) {
  // expected-error @+1 {{'ttng.warp_group_dot_wait' op failed to verify that all of {inputs, outputs} have same type}}
  %d = "ttng.warp_group_dot_wait"(%c) <{pendings = 0 : i32}> : (tensor<64x64xf32>) -> tensor<64x64xf16>
  tt.return
}

// -----

tt.func @f(%p: tensor<64x!tt.ptr<f16>>, %m: !ttg.memdesc<64xf16, #ttg.shared_memory, #ttg.shared_memory, mutable>, %mask: tensor<32xi1>) {
  // expected-error @+1 {{'ttg.async_copy_global_to_local' op failed to verify that mask type matches src type}}
  %t = "ttg.async_copy_global_to_local"(%p, %m, %mask) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<64x!tt.ptr<f16>>, !ttg.memdesc<64xf16, #ttg.shared_memory, #ttg.shared_memory, mutable>, tensor<32xi1>) -> !ttg.async.token
  tt.return
}

// -----

tt.func @f(%b: !ttg.memdesc<1xi64, #ttg.shared_memory, #ttg.shared_memory, mutable>, %phase: i32) {
  %x = arith.extsi %phase : i32 to i64
  // expected-error @+1 {{'ttng.wait_barrier' op operand #1 must be 32-bit signless integer, but got 'i64'}}
  "ttng.wait_barrier"(%b, %x) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (!ttg.memdesc<1xi64, #ttg.shared_memory, #ttg.shared_memory, mutable>, i64) -> ()
  tt.return
}

// -----

tt.func @f(%a: tensor<64x64xf8E4M3FN>, %b: tensor<64x64xf8E5M2>, %c: tensor<64x64xf32>) {
  // expected-error @+1 {{'tt.dot_scaled' op failed to verify that accumulator type matches result type}}
  %d = "tt.dot_scaled"(%a, %b, %c) <{a_elem_type = 0 : i32, b_elem_type = 1 : i32, fastMath = false, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>}> : (tensor<64x64xf8E4M3FN>, tensor<64x64xf8E5M2>, tensor<64x64xf32>) -> tensor<64x64xf16>
  tt.return
}
