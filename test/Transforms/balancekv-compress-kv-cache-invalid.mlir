// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="method=random" 2>&1 | FileCheck %s --check-prefix=METHOD
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="rounds=17" 2>&1 | FileCheck %s --check-prefix=ROUNDS
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="block-size=7" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="sink=-1" 2>&1 | FileCheck %s --check-prefix=SINK
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="gamma=-1.0" 2>&1 | FileCheck %s --check-prefix=GAMMA
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="max-query-len=-2" 2>&1 | FileCheck %s --check-prefix=QLEN
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="recent=-1" 2>&1 | FileCheck %s --check-prefix=SINK
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="temperature=0.0" 2>&1 | FileCheck %s --check-prefix=GAMMA
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="c0=-0.1" 2>&1 | FileCheck %s --check-prefix=GAMMA
// RUN: not balancekv-opt %s --balancekv-compress-kv-cache="min-kv-len=-1" 2>&1 | FileCheck %s --check-prefix=QLEN

// METHOD: error: balancekv-compress-kv-cache: unknown method 'random' (expected balance, uniform, streaming, snapkv or knorm)
// ROUNDS: error: balancekv-compress-kv-cache: rounds must be in [0, 16]
// BLOCK: error: balancekv-compress-kv-cache: block-size must be even and >= 2
// SINK: error: balancekv-compress-kv-cache: sink and recent must be >= 0
// GAMMA: error: balancekv-compress-kv-cache: gamma and c0 must be >= 0 and temperature > 0
// QLEN: error: balancekv-compress-kv-cache: max-query-len and min-kv-len must be >= 0
func.func @f() {
  return
}
