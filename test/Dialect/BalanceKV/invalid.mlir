// RUN: balancekv-opt %s --split-input-file --verify-diagnostics

func.func @f(%q: tensor<4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects query of rank 4, got rank 3}}
  %o = balancekv.attention %q, %k, %v : tensor<4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf16>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects query, key, value and result to share one element type, got 'f32', 'f16', 'f32', 'f32'}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf16>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<2x2x16x64xf32>, %v: tensor<2x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op batch size mismatch: query has 1, key has 2}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<2x2x16x64xf32>, tensor<2x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<3x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op batch size mismatch: key has 1, value has 3}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<3x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x1x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op KV head count mismatch: key has 2, value has 1}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x1x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x5x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x5x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects the query head count (5) to be a multiple of the KV head count (2)}}
  %o = balancekv.attention %q, %k, %v : tensor<1x5x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x5x1x32xf32>
  return %o : tensor<1x5x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x32xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op head dim mismatch: query has 64, key has 32}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x17x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op cache length mismatch: key has 16, value has 17}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x17x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<2x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op batch size mismatch: result has 2, query has 1}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<2x4x1x32xf32>
  return %o : tensor<2x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x2x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op head count mismatch: result has 2, query has 4}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x2x1x32xf32>
  return %o : tensor<1x2x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x3x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op query length mismatch: result has 3, query has 1}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x3x32xf32>
  return %o : tensor<1x4x3x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x64xf32> {
  // expected-error @+1 {{'balancekv.attention' op value dim mismatch: result has 64, value has 32}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects result of rank 4, got rank 3}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1xf32>
  return %o : tensor<1x4x1xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %l: tensor<1x2x1xi32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects kv_len of rank 1 ([B]) or 2 ([B, Hkv]), got rank 3}}
  %o = balancekv.attention %q, %k, %v kv_len(%l : tensor<1x2x1xi32>) : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %lw: tensor<1x2x16xf32>, %l: tensor<1x4xi32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op KV head count mismatch: kv_len has 4, key has 2}}
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%l : tensor<1x4xi32>) : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %l: tensor<2xi32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op batch size mismatch: kv_len has 2, query has 1}}
  %o = balancekv.attention %q, %k, %v kv_len(%l : tensor<2xi32>) : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects a finite, positive scale, got 0}}
  %o = balancekv.attention %q, %k, %v scale(0.0) : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op expects a finite, positive scale, got -1}}
  %o = balancekv.attention %q, %k, %v scale(-1.0) : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x?xf32>, %k: tensor<1x2x16x?xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.attention' op needs an explicit scale when the head dim is dynamic}}
  %o = balancekv.attention %q, %k, %v : tensor<1x4x1x?xf32>, tensor<1x2x16x?xf32>, tensor<1x2x16x32xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xi32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{operand #0 must be ranked tensor of 16-bit float or bfloat16 type or 32-bit float values}}
  %o = "balancekv.attention"(%q, %k, %v) : (tensor<1x4x1x64xi32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>) -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %l: tensor<1xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{operand #3 must be ranked tensor of 32-bit signless integer or 64-bit signless integer or index values}}
  %o = "balancekv.attention"(%q, %k, %v, %l) : (tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1xf32>) -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<1x2x16x1xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op expects log_weights of rank 3, got rank 4}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x1xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<2x2x16xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op batch size mismatch: log_weights has 2, key has 1}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<2x2x16xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<1x4x16xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op KV head count mismatch: log_weights has 4, key has 2}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x4x16xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<1x2x15xf32>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op cache length mismatch: log_weights has 15, key has 16}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x15xf32> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<1x2x16xf16>) -> tensor<1x4x1x32xf32> {
  // expected-error @+1 {{operand #3 must be ranked tensor of 32-bit float values}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16xf16> -> tensor<1x4x1x32xf32>
  return %o : tensor<1x4x1x32xf32>
}

// -----

func.func @f(%q: tensor<1x4x1x64xf32>, %k: tensor<1x2x16x64xf32>, %v: tensor<1x2x16x32xf32>, %w: tensor<1x2x16xf32>) -> tensor<1x4x1x64xf32> {
  // expected-error @+1 {{'balancekv.weighted_attention' op value dim mismatch: result has 64, value has 32}}
  %o = balancekv.weighted_attention %q, %k, %v, %w : tensor<1x4x1x64xf32>, tensor<1x2x16x64xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16xf32> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}

// -----

func.func @f(%k: tensor<2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op expects key and value of rank 4, got ranks 3 and 4}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xbf16>) {
  // expected-error @+1 {{'balancekv.compress' op expects key and value to share one element type, got 'f32' and 'bf16'}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x2x256x64xf32>, tensor<1x2x256x32xbf16>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<2x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op batch size mismatch: key has 1, value has 2}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x2x256x64xf32>, tensor<2x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x3x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op KV head count mismatch: key has 2, value has 3}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x2x256x64xf32>, tensor<1x3x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x255x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op cache length mismatch: key has 256, value has 255}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x2x256x64xf32>, tensor<1x2x255x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op rounds must be in [0, 16], got 17}}
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 17> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op rounds must be in [0, 16], got -1}}
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = -1> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op block_size must be even and >= 2, got 7}}
  %ck, %cv, %lw = balancekv.compress %k, %v <block_size = 7> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op block_size must be even and >= 2, got 0}}
  %ck, %cv, %lw = balancekv.compress %k, %v <block_size = 0> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op sink must be >= 0, got -1}}
  %ck, %cv, %lw = balancekv.compress %k, %v <sink = -1> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op recent must be >= 0, got -3}}
  %ck, %cv, %lw = balancekv.compress %k, %v <recent = -3> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op gamma must be finite and >= 0, got -1}}
  %ck, %cv, %lw = balancekv.compress %k, %v <gamma = -1.0> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op temperature must be finite and > 0, got 0}}
  %ck, %cv, %lw = balancekv.compress %k, %v <temperature = 0.0> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op c0 must be finite and >= 0, got -0.5}}
  %ck, %cv, %lw = balancekv.compress %k, %v <c0 = -0.5> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op gamma must be finite and >= 0, got inf}}
  %ck, %cv, %lw = balancekv.compress %k, %v <gamma = 0x7FF0000000000000> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op temperature must be finite and > 0, got inf}}
  %ck, %cv, %lw = balancekv.compress %k, %v <temperature = 0x7FF0000000000000> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op c0 must be finite and >= 0, got inf}}
  %ck, %cv, %lw = balancekv.compress %k, %v <c0 = 0x7FF0000000000000> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op expects a finite, positive scale, got -2}}
  %ck, %cv, %lw = balancekv.compress %k, %v <scale = -2.0> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x?xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op needs an explicit scale when the head dim is dynamic}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x2x256x?xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op method 'snapkv' needs the observation queries (`observe`)}}
  %ck, %cv, %lw = balancekv.compress %k, %v <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<1x4x8x64xf32>) {
  // expected-error @+1 {{'balancekv.compress' op takes observation queries only with methods 'snapkv' and 'adaptive', not 'knorm'}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<1x4x8x64xf32>) <method = knorm> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<4x8x64xf32>) {
  // expected-error @+1 {{'balancekv.compress' op expects observation of rank 4, got rank 3}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<4x8x64xf32>) <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<1x4x8x64xf16>) {
  // expected-error @+1 {{'balancekv.compress' op expects observation and key to share one element type, got 'f16' and 'f32'}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<1x4x8x64xf16>) <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<2x4x8x64xf32>) {
  // expected-error @+1 {{'balancekv.compress' op batch size mismatch: observation has 2, key has 1}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<2x4x8x64xf32>) <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<1x3x8x64xf32>) {
  // expected-error @+1 {{'balancekv.compress' op expects the query head count (3) to be a multiple of the KV head count (2)}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<1x3x8x64xf32>) <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %o: tensor<1x4x8x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op head dim mismatch: observation has 32, key has 64}}
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%o : tensor<1x4x8x32xf32>) <method = snapkv> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{unknown method 'random' (expected balance, uniform, streaming, snapkv, knorm or adaptive)}}
  %ck, %cv, %lw = balancekv.compress %k, %v <method = random> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @compress_param_in_attr_dict(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op 'rounds' is a compression parameter: write it in the op's <...> list (#balancekv.compress_params)}}
  %ck, %cv, %lw = balancekv.compress %k, %v {rounds = 3 : i64} : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @compress_unknown_param(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{unknown compression parameter 'round'}}
  %ck, %cv, %lw = balancekv.compress %k, %v <round = 3> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @compress_param_twice(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'seed' given twice}}
  %ck, %cv, %lw = balancekv.compress %k, %v <seed = 3, seed = 4> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @compress_param_type(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{expected integer value}}
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2.5> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+2 {{'balancekv.compress' op failed to infer returned types}}
  // expected-error @+1 {{'balancekv.compress' op inferred type(s) 'tensor<1x2x112x64xf32>', 'tensor<1x2x112x32xf32>', 'tensor<1x2x112xf32>' are incompatible with return type(s) of operation 'tensor<1x2x100x64xf32>', 'tensor<1x2x100x32xf32>', 'tensor<1x2x100xf32>'}}
  %r:3 = "balancekv.compress"(%k, %v) : (tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>) -> (tensor<1x2x100x64xf32>, tensor<1x2x100x32xf32>, tensor<1x2x100xf32>)
  return
}

// -----

func.func @walk_state_length(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>,
                             %t: tensor<1x2x100xi32>, %r: index) {
  // expected-error @+1 {{'balancekv.balance_walk' op expects tokens to hold the 192 middle tokens of the cache (L_0), got 100}}
  %s = balancekv.balance_walk %k, %v, %t, %t, %r : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>, tensor<1x2x100xi32>
  return
}

// -----

func.func @walk_state_heads(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>,
                            %t: tensor<1x3x192xi32>, %r: index) {
  // expected-error @+1 {{'balancekv.balance_walk' op KV head count mismatch: key has 2, tokens has 3}}
  %s = balancekv.balance_walk %k, %v, %t, %t, %r : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>, tensor<1x3x192xi32>
  return
}

// -----

func.func @walk_bad_params(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>,
                           %t: tensor<1x2x192xi32>, %r: index) {
  // expected-error @+1 {{'balancekv.balance_walk' op block_size must be even and >= 2, got 3}}
  %s = balancekv.balance_walk %k, %v, %t, %t, %r <block_size = 3> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>, tensor<1x2x192xi32>
  return
}

// -----

func.func @halve_signs_shape(%s: tensor<1x2x100xi8>, %t: tensor<1x2x192xi32>, %r: index) {
  // expected-error @+1 {{'balancekv.balance_halve' op expects tokens and signs of one shape, got 'tensor<1x2x192xi32>' and 'tensor<1x2x100xi8>'}}
  %t1, %d1 = balancekv.balance_halve %s, %t, %t, %r : tensor<1x2x100xi8>, tensor<1x2x192xi32>
  return
}

// -----

func.func @gather_state_rank(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>, %t: tensor<2x192xi32>) {
  // expected-error @+1 {{'balancekv.gather_kept' op expects tokens of rank 3, got rank 2}}
  %ck, %cv, %lw = balancekv.gather_kept %k, %v, %t, %t : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>, tensor<2x192xi32>
  return
}

// -----

func.func @init_param_in_attr_dict(%k: tensor<1x2x256x64xf32>) {
  // expected-error @+1 {{'balancekv.balance_init' op 'seed' is a compression parameter: write it in the op's <...> list (#balancekv.compress_params)}}
  %t, %d = balancekv.balance_init %k {seed = 3 : i64} : tensor<1x2x256x64xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op method 'adaptive' needs the observation queries (`observe`)}}
  %ck, %cv, %lw = balancekv.compress %k, %v <method = adaptive> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @f(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>) {
  // expected-error @+1 {{'balancekv.compress' op budget is a parameter of method 'adaptive', not 'balance'}}
  %ck, %cv, %lw = balancekv.compress %k, %v <budget = 100> : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>
  return
}

// -----

func.func @pages_too_few(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects at most max_pages * page size = 16 * 16 tokens a sequence, got 257}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x257x128xbf16>
  return
}

// -----

func.func @pages_dynamic_page_size(%pool: tensor<64x?x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects a static page size (pool dim 1), got ?}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x?x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x256x128xbf16>
  return
}

// -----

func.func @pages_heads(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op KV head count mismatch: pool has 16, result has 8}}
  %k = balancekv.gather_pages %pool, %table heads_major : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x64x128xbf16>
  return
}

// -----

func.func @pages_batch(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op batch size mismatch: block_table has 4, result has 2}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<2x8x256x128xbf16>
  return
}

// -----

func.func @pages_table_type(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi64>) {
  // expected-error @+1 {{'balancekv.gather_pages' op operand #1 must be ranked tensor of 32-bit signless integer values}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi64> -> tensor<4x8x256x128xbf16>
  return
}

// -----

func.func @pages_elem(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects the result to have the pool's element type, got 'f16' and 'bf16'}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x256x128xf16>
  return
}

// -----

func.func @pages_pool_rank(%pool: tensor<64x16x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects pool of rank 4, got rank 3}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x128xbf16>, tensor<4x16xi32> -> tensor<4x8x256x128xbf16>
  return
}

// -----

func.func @pages_table_rank(%pool: tensor<64x16x8x128xbf16>, %table: tensor<64xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects block_table of rank 2, got rank 1}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<64xi32> -> tensor<4x8x256x128xbf16>
  return
}

// -----

func.func @pages_result_rank(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op expects result of rank 4, got rank 3}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x256x128xbf16>
  return
}

// -----

func.func @pages_head_dim(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>) {
  // expected-error @+1 {{'balancekv.gather_pages' op head dim mismatch: pool has 128, result has 64}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x256x64xbf16>
  return
}
