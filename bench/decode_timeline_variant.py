#!/usr/bin/env python3
"""Writes a copy of kernels/cuda/WeightedDecode.cu whose tensor-core split
kernel and combine kernel stamp %globaltimer and %smid per CTA into a device
array, read back by balancekv_debug_timeline (for bench/decode_timeline.py):

  python3 bench/decode_timeline_variant.py kernels/cuda/WeightedDecode.cu /tmp/WDtl.cu
  scripts/ab-build.sh timeline kernels/cuda/WeightedDecode.cu=/tmp/WDtl.cu

Split CTAs: [smid | tiles << 16, start, first tile used, end]; combine CTAs
(from index 8192): [smid, start, released by the split grid, end]. The
kernel source stays free of instrumentation; a pattern that no longer
matches stops this script with the text it looked for.
"""
import sys

s = open(sys.argv[1]).read()


def rep(old, new):
    global s
    if old not in s:
        sys.exit("pattern not found in " + sys.argv[1] + ":\n" + old)
    s = s.replace(old, new, 1)


rep('''struct DecodeParams {''','''} // namespace
__device__ unsigned long long decodeTimeline[16384][4];
namespace {
__device__ __forceinline__ unsigned long long globalTimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ unsigned smId() {
  unsigned s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}
struct DecodeParams {''')
rep('''  const int ctaRows = min(kMmaRows, p.rows - row0);
''','''  const int ctaRows = min(kMmaRows, p.rows - row0);
  const unsigned long long tStart = globalTimer();
  unsigned long long tFirst = 0, nTiles = 0;
  const unsigned ctaId = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
''')
rep('''    const int64_t key0 = t0 + warp * 16;
''','''    const int64_t key0 = t0 + warp * 16;
    ++nTiles;
    if (t0 == begin)
      tFirst = globalTimer();
''')
rep('''      out[x] = fromFloat<T>(sum > 0.0f ? v / sum : 0.0f);
    }
    return;''', '''      out[x] = fromFloat<T>(sum > 0.0f ? v / sum : 0.0f);
    }
    __syncthreads(); // the direct output (one split a head) returns here
    if (tid == 0 && ctaId < 8192) {
      decodeTimeline[ctaId][0] = smId() | (nTiles << 16);
      decodeTimeline[ctaId][1] = tStart;
      decodeTimeline[ctaId][2] = tFirst ? tFirst : tStart;
      decodeTimeline[ctaId][3] = globalTimer();
    }
    return;''')
rep('''    p.partial[(rowId * p.splits + split) * (DV + 2) + x] = v;
  }
}''','''    p.partial[(rowId * p.splits + split) * (DV + 2) + x] = v;
  }
  __syncthreads();
  if (tid == 0 && ctaId < 8192) {
    decodeTimeline[ctaId][0] = smId() | (nTiles << 16);
    decodeTimeline[ctaId][1] = tStart;
    decodeTimeline[ctaId][2] = tFirst ? tFirst : tStart;
    decodeTimeline[ctaId][3] = globalTimer();
  }
}''')
rep('''  waitForPrerequisiteGrid(); // the partial results are complete
''','''  const unsigned long long tLaunch = globalTimer();
  waitForPrerequisiteGrid(); // the partial results are complete
  const unsigned long long tWait = globalTimer();
''')
rep('''    out[tid] = fromFloat<T>(den > 0.0f ? num / den : 0.0f);
  }
}''','''    out[tid] = fromFloat<T>(den > 0.0f ? num / den : 0.0f);
  }
  if (tid == 0 && row < 8192) {
    decodeTimeline[8192 + row][0] = smId();
    decodeTimeline[8192 + row][1] = tLaunch;
    decodeTimeline[8192 + row][2] = tWait;
    decodeTimeline[8192 + row][3] = globalTimer();
  }
}''')
rep('''} // namespace balancekv::cuda''','''} // namespace balancekv::cuda

extern "C" int balancekv_debug_timeline(void *dst, int reset) {
  if (reset) {
    static unsigned long long zeros[16384][4];
    return int(cudaMemcpyToSymbol(balancekv::cuda::decodeTimeline, zeros, sizeof(zeros)));
  }
  return int(cudaMemcpyFromSymbol(dst, balancekv::cuda::decodeTimeline,
                                  sizeof(unsigned long long) * 16384 * 4));
}''')
open(sys.argv[2],'w').write(s)
