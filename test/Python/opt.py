import sys

import balancekv

ir = open(sys.argv[1]).read()
print(balancekv.opt(ir, "builtin.module(balancekv-compress-kv-cache{seed=5})"))
for text, pipeline in [(ir, "builtin.module(balancekv-compress-kv-cache{rounds=17})"),
                       ("not mlir", "builtin.module(canonicalize)"),
                       (ir, "builtin.module(no-such-pass)")]:
    try:
        balancekv.opt(text, pipeline)
    except balancekv.BalanceKVError as e:
        print("BalanceKVError:", str(e).replace("\n", " "))
