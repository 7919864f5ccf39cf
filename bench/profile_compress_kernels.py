import sys, torch
sys.path.insert(0, 'bench')
from bench_kernels import Lib
from torch.profiler import profile, ProfilerActivity
lib = Lib(sys.argv[1])
k = torch.randn(1, 32, 32768, 128, device='cuda', dtype=torch.bfloat16); v = torch.randn_like(k)
p = lib.params(rounds=2); o = lib.compress_prepare(k, v, p)
for _ in range(3): lib.compress(k, v, p, o, indices=False)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(10): lib.compress(k, v, p, o, indices=False)
    torch.cuda.synchronize()
for e in prof.key_averages():
    if e.device_time_total > 0:
        print(f"{e.key[:60]:60s} calls {e.count:4d} avg {e.device_time_total / e.count:8.1f} us  per compress {e.device_time_total / 10:8.1f} us")
