// Every option is checked by CompressParams::validate(), the op verifier's
// check, before any rewrite: the messages are the verifier's.
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="method=random" 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="rounds=17" 2>&1 | FileCheck %s --check-prefix=ROUNDS
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="block-size=7" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="sink=-1" 2>&1 | FileCheck %s --check-prefix=SINK
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="recent=-1" 2>&1 | FileCheck %s --check-prefix=RECENT
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="gamma=-1.0" 2>&1 | FileCheck %s --check-prefix=GAMMA
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="gamma=inf" 2>&1 | FileCheck %s --check-prefix=GAMMA-INF
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="temperature=0.0" 2>&1 | FileCheck %s --check-prefix=TEMP
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="temperature=inf" 2>&1 | FileCheck %s --check-prefix=TEMP-INF
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="c0=-0.1" 2>&1 | FileCheck %s --check-prefix=C0
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="c0=inf" 2>&1 | FileCheck %s --check-prefix=C0-INF
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="max-query-len=-2" 2>&1 | FileCheck %s --check-prefix=QLEN
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="min-kv-len=-1" 2>&1 | FileCheck %s --check-prefix=QLEN

// METHOD: error: balancekv-compress-kv-cache: unknown method 'random' (expected balance, uniform, streaming, snapkv, knorm or adaptive)
// ROUNDS: error: balancekv-compress-kv-cache: rounds must be in [0, 16], got 17
// BLOCK: error: balancekv-compress-kv-cache: block_size must be even and >= 2, got 7
// SINK: error: balancekv-compress-kv-cache: sink must be >= 0, got -1
// RECENT: error: balancekv-compress-kv-cache: recent must be >= 0, got -1
// GAMMA: error: balancekv-compress-kv-cache: gamma must be finite and >= 0, got -1
// GAMMA-INF: error: balancekv-compress-kv-cache: gamma must be finite and >= 0, got inf
// TEMP: error: balancekv-compress-kv-cache: temperature must be finite and > 0, got 0
// TEMP-INF: error: balancekv-compress-kv-cache: temperature must be finite and > 0, got inf
// C0: error: balancekv-compress-kv-cache: c0 must be finite and >= 0, got -0.1
// C0-INF: error: balancekv-compress-kv-cache: c0 must be finite and >= 0, got inf
// QLEN: error: balancekv-compress-kv-cache: max-query-len and min-kv-len must be >= 0
func.func @f() {
  return
}
