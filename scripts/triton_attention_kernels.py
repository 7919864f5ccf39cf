"""The attention kernels written in Triton for the TritonCompat fixtures: a
flash-attention forward and a split-K decode over a KV cache with
log-weights (GQA). Imported by scripts/dump_triton_fixtures.py (TTIR on a GPU
machine) and scripts/make_triton_op_fixtures.py (TTGIR, no GPU)."""
import triton
import triton.language as tl


@triton.jit
def flash_fwd(Q, K, V, O, sm_scale, N_CTX,
              stride_qh, stride_qm, stride_kh, stride_kn, stride_vh, stride_vn,
              stride_oh, stride_om, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr,
              BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    start_m = tl.program_id(0)
    off_h = tl.program_id(1)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
                mask=offs_m[:, None] < N_CTX, other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    qk_scale = sm_scale * 1.44269504
    hi = tl.minimum((start_m + 1) * BLOCK_M, N_CTX) if CAUSAL else N_CTX
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        k = tl.load(K + off_h * stride_kh + cols[None, :] * stride_kn + offs_d[:, None],
                    mask=cols[None, :] < N_CTX, other=0.0)
        qk = tl.dot(q, k) * qk_scale
        valid = cols[None, :] < N_CTX
        if CAUSAL:
            valid = valid & (offs_m[:, None] >= cols[None, :])
        qk = tl.where(valid, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(V + off_h * stride_vh + cols[:, None] * stride_vn + offs_d[None, :],
                    mask=cols[:, None] < N_CTX, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    acc = acc / l_i[:, None]
    tl.store(O + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :],
             acc.to(O.dtype.element_ty), mask=offs_m[:, None] < N_CTX)


@triton.jit
def split_k_decode(Q, K, V, LW, Mid, Lse, sm_scale, kv_len, n_splits,
                   stride_qh, stride_kh, stride_kn, stride_vh, stride_vn,
                   GROUP: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                   SPLIT_SIZE: tl.constexpr):
    """One program per (query head, split) of a weighted decode step."""
    hq = tl.program_id(0)
    split = tl.program_id(1)
    hkv = hq // GROUP
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + hq * stride_qh + offs_d).to(tl.float32)
    m_i = float("-inf")
    l_i = 0.0
    acc = tl.zeros([HEAD_DIM], tl.float32)
    lo = split * SPLIT_SIZE
    for start in range(lo, lo + SPLIT_SIZE, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        valid = cols < kv_len
        k = tl.load(K + hkv * stride_kh + cols[:, None] * stride_kn + offs_d[None, :],
                    mask=valid[:, None], other=0.0).to(tl.float32)
        lw = tl.load(LW + hkv * kv_len + cols, mask=valid, other=0.0)
        s = tl.sum(k * q[None, :], 1) * sm_scale + lw
        s = tl.where(valid, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 0))
        p = tl.exp(s - m_new)
        alpha = tl.exp(m_i - m_new)
        v = tl.load(V + hkv * stride_vh + cols[:, None] * stride_vn + offs_d[None, :],
                    mask=valid[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, 0)
        l_i = l_i * alpha + tl.sum(p, 0)
        m_i = m_new
    tl.store(Mid + (hq * n_splits + split) * HEAD_DIM + offs_d, acc / l_i)
    tl.store(Lse + hq * n_splits + split, m_i + tl.log(l_i))
