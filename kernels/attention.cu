// Scaled dot-product attention, float32 and float16 (float32 math inside), fused:
// out = softmax(q k^T * scale [+ causal mask]) v
// without a scores matrix in memory. Reference: gnn/backend/fused/attention.py.
//
//   attention_forward_*          one warp per query row: online softmax over key tiles of 32 (one
//                                key per lane), the running output in registers (lane owns dims
//                                lane, lane + 32, ...); writes out and the row's logsumexp.
//   attention_backward_dq_*      one warp per query row: delta = rowsum(dout * out) (saved for the
//                                next kernel), then dq = scale * sum_j p (dp - delta) k_j with p
//                                recomputed from the saved logsumexp.
//   attention_backward_dkdv_*    one warp per key row: dv = sum_i p dout_i and
//                                dk = scale * sum_i p (dp - delta_i) q_i over query tiles of 32.
// Deterministic: every output element is summed by one warp in a fixed order (no atomics).
//
// Operands are (batch, head, row, dim) views with unit dim stride: element (b, h, r, d) of a view
// lives at p[off + b * sb + h * sh + r * sr + d], so q, k and v may be slices of one packed
// projection and the gradients may be written into one packed buffer (gnn/ops/attention.py). The
// logsumexp and delta arrays are contiguous float32 (batch * heads, len_q).
// Launch (gnn/backend/fused/attention.py): blockDim a multiple of 32 up to 256; a block owns
// blockDim / 32 consecutive rows of one (batch, head) and strides over such tiles, so any grid is
// correct. dim <= 128; len_k >= 1. Loaded with cupy.RawModule (NVRTC); ci/check_kernels.sh
// compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

// -inf from its bits: NVRTC (what cupy.RawModule compiles with) has no INFINITY macro
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

namespace {

using gnn::store_float;
using gnn::to_float;

constexpr unsigned int kFullMask = 0xffffffffu;
constexpr int kTile = 32;     // keys (forward, dq) or queries (dkdv) per shared tile: one per lane
constexpr int kMaxDim = 128;  // head dim limit: four dims per lane
constexpr int kPerLane = kMaxDim / 32;
constexpr int kMaxWarps = 8;
constexpr int kPad = kMaxDim + 1;  // row pitch of tiles read one row per lane: distinct banks

template <typename T>
struct View {
    T* p;
    long long off, sb, sh, sr;
    __device__ __forceinline__ T* row(long long b, long long h, long long r) const {
        return p + off + b * sb + h * sh + r * sr;
    }
};

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
    return x;
}

// Rows r0 .. r0 + 31 of a view into a shared tile of pitch kPad (rows past `rows` are zeros), the
// whole block cooperating: consecutive threads read consecutive dims.
template <typename T>
__device__ __forceinline__ void load_tile(float (*tile)[kPad], View<const T> x, long long b,
                                          long long h, long long r0, long long rows, int dim,
                                          float factor) {
    for (int e = threadIdx.x; e < kTile * dim; e += blockDim.x) {
        const int rr = e / dim;
        const int d = e - rr * dim;
        const long long r = r0 + rr;
        tile[rr][d] = r < rows ? to_float(x.row(b, h, r)[d]) * factor : 0.0f;
    }
}

__device__ __forceinline__ float dot(const float* a, const float* b, int dim) {
    float s = 0.0f;
    for (int d = 0; d < dim; ++d) s += a[d] * b[d];
    return s;
}

template <typename T>
__device__ __forceinline__ void attention_forward(
    const T* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const T* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const T* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    T* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    float* __restrict__ lse, long long heads, long long batch_heads, long long len_q,
    long long len_k, int dim, float scale, int causal) {
    __shared__ float sk[kTile][kPad];
    __shared__ float sv[kTile][kPad];
    __shared__ float sq[kMaxWarps][kMaxDim];
    __shared__ float ss[kMaxWarps][kTile];  // each warp's scores of the tile, for all its lanes
    __shared__ float sp[kMaxWarps][kTile];  // and their weights
    const View<const T> qv{q, q_off, q_sb, q_sh, q_sr};
    const View<const T> kv{k, k_off, k_sb, k_sh, k_sr};
    const View<const T> vv{v, v_off, v_sb, v_sh, v_sr};
    const View<T> ov{out, o_off, o_sb, o_sh, o_sr};
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const long long tiles = (len_q + warps - 1) / warps;
    for (long long t = blockIdx.x; t < batch_heads * tiles; t += gridDim.x) {
        const long long bh = t / tiles;
        const long long b = bh / heads;
        const long long h = bh - b * heads;
        const long long row0 = (t - bh * tiles) * warps;
        const long long i = row0 + warp;  // this warp's query row
        const bool active = i < len_q;    // uniform over the warp
        const long long last = row0 + warps < len_q ? row0 + warps : len_q;
        const long long keys = causal && last < len_k ? last : len_k;  // keys the block needs
        __syncthreads();  // the previous tile's reads of sq are finished
        if (active) {
            for (int d = lane; d < dim; d += 32) sq[warp][d] = to_float(qv.row(b, h, i)[d]) * scale;
        }
        float m = neg_inf();  // running max of the scores
        float l = 0.0f;       // running sum of exp(score - m)
        float acc[kPerLane] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (long long j0 = 0; j0 < keys; j0 += kTile) {
            __syncthreads();  // every warp has finished with the previous key tile
            load_tile(sk, kv, b, h, j0, keys, dim, 1.0f);
            load_tile(sv, vv, b, h, j0, keys, dim, 1.0f);
            __syncthreads();
            if (!active) continue;
            const long long j = j0 + lane;
            const bool visible = j < keys && (!causal || j <= i);
            const float s = visible ? dot(sq[warp], sk[lane], dim) : neg_inf();
            // The tile's scores, then its weights, go through shared memory: every lane reads all
            // 32 after one warp barrier each (no shuffle rounds), and sums them in the same order,
            // so all lanes hold the same max and sum. The tile's __syncthreads above orders these
            // writes after the previous tile's reads.
            ss[warp][lane] = s;
            __syncwarp();
            float tile_max = neg_inf();
            for (int jj = 0; jj < kTile; ++jj) tile_max = fmaxf(tile_max, ss[warp][jj]);
            // The first tile holds key 0, which every row sees, so m is finite from here on.
            const float m_new = fmaxf(m, tile_max);
            const float p = expf(s - m_new);
            const float rescale = expf(m - m_new);
            sp[warp][lane] = p;
            __syncwarp();
            float tile_sum = 0.0f;
            for (int jj = 0; jj < kTile; ++jj) tile_sum += sp[warp][jj];
            l = l * rescale + tile_sum;
#pragma unroll
            for (int c = 0; c < kPerLane; ++c) acc[c] *= rescale;
            for (int jj = 0; jj < kTile; ++jj) {
                const float pj = sp[warp][jj];
#pragma unroll
                for (int c = 0; c < kPerLane; ++c) {
                    const int d = lane + 32 * c;
                    if (d < dim) acc[c] += pj * sv[jj][d];
                }
            }
            m = m_new;
        }
        if (!active) continue;
        const float inv = 1.0f / l;
        T* orow = ov.row(b, h, i);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
            const int d = lane + 32 * c;
            if (d < dim) store_float(orow + d, acc[c] * inv);
        }
        if (lane == 0) lse[bh * len_q + i] = m + logf(l);
    }
}

template <typename T>
__device__ __forceinline__ void attention_backward_dq(
    const T* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const T* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const T* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const T* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    const T* __restrict__ gout, long long g_off, long long g_sb, long long g_sh,
    long long g_sr, T* __restrict__ gq, long long gq_off, long long gq_sb, long long gq_sh,
    long long gq_sr, const float* __restrict__ lse, float* __restrict__ delta, long long heads,
    long long batch_heads, long long len_q, long long len_k, int dim, float scale, int causal) {
    __shared__ float sk[kTile][kPad];
    __shared__ float sv[kTile][kPad];
    __shared__ float sq[kMaxWarps][kMaxDim];
    __shared__ float sg[kMaxWarps][kMaxDim];
    __shared__ float sds[kMaxWarps][kTile];
    const View<const T> qv{q, q_off, q_sb, q_sh, q_sr};
    const View<const T> kv{k, k_off, k_sb, k_sh, k_sr};
    const View<const T> vv{v, v_off, v_sb, v_sh, v_sr};
    const View<const T> ov{out, o_off, o_sb, o_sh, o_sr};
    const View<const T> gv{gout, g_off, g_sb, g_sh, g_sr};
    const View<T> gqv{gq, gq_off, gq_sb, gq_sh, gq_sr};
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const long long tiles = (len_q + warps - 1) / warps;
    for (long long t = blockIdx.x; t < batch_heads * tiles; t += gridDim.x) {
        const long long bh = t / tiles;
        const long long b = bh / heads;
        const long long h = bh - b * heads;
        const long long row0 = (t - bh * tiles) * warps;
        const long long i = row0 + warp;
        const bool active = i < len_q;
        const long long last = row0 + warps < len_q ? row0 + warps : len_q;
        const long long keys = causal && last < len_k ? last : len_k;
        float row_lse = 0.0f;
        float row_delta = 0.0f;
        __syncthreads();  // the previous tile's reads of sq and sg are finished
        if (active) {
            float part = 0.0f;
            for (int d = lane; d < dim; d += 32) {
                const float g = to_float(gv.row(b, h, i)[d]);
                sq[warp][d] = to_float(qv.row(b, h, i)[d]) * scale;
                sg[warp][d] = g;
                part += g * to_float(ov.row(b, h, i)[d]);
            }
            row_delta = warp_sum(part);
            row_lse = lse[bh * len_q + i];
            if (lane == 0) delta[bh * len_q + i] = row_delta;
        }
        float acc[kPerLane] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (long long j0 = 0; j0 < keys; j0 += kTile) {
            __syncthreads();  // every warp has finished with the previous key tile
            load_tile(sk, kv, b, h, j0, keys, dim, 1.0f);
            load_tile(sv, vv, b, h, j0, keys, dim, 1.0f);
            __syncthreads();
            if (!active) continue;
            const long long j = j0 + lane;
            float ds = 0.0f;
            if (j < keys && (!causal || j <= i)) {
                const float p = expf(dot(sq[warp], sk[lane], dim) - row_lse);
                ds = p * (dot(sg[warp], sv[lane], dim) - row_delta);
            }
            sds[warp][lane] = ds;
            __syncwarp();
            for (int jj = 0; jj < kTile; ++jj) {
                const float dsj = sds[warp][jj];
#pragma unroll
                for (int c = 0; c < kPerLane; ++c) {
                    const int d = lane + 32 * c;
                    if (d < dim) acc[c] += dsj * sk[jj][d];
                }
            }
        }
        if (!active) continue;
        T* grow = gqv.row(b, h, i);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
            const int d = lane + 32 * c;
            if (d < dim) store_float(grow + d, acc[c] * scale);
        }
    }
}

template <typename T>
__device__ __forceinline__ void attention_backward_dkdv(
    const T* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const T* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const T* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const T* __restrict__ gout, long long g_off, long long g_sb, long long g_sh,
    long long g_sr, T* __restrict__ gk, long long gk_off, long long gk_sb, long long gk_sh,
    long long gk_sr, T* __restrict__ gv, long long gv_off, long long gv_sb, long long gv_sh,
    long long gv_sr, const float* __restrict__ lse, const float* __restrict__ delta,
    long long heads, long long batch_heads, long long len_q, long long len_k, int dim, float scale,
    int causal) {
    __shared__ float sq[kTile][kPad];  // query rows, times scale
    __shared__ float sg[kTile][kPad];  // their output gradients
    __shared__ float s_lse[kTile];
    __shared__ float s_delta[kTile];
    __shared__ float sk[kMaxWarps][kMaxDim];
    __shared__ float sv[kMaxWarps][kMaxDim];
    __shared__ float sp[kMaxWarps][kTile];
    __shared__ float sds[kMaxWarps][kTile];
    const View<const T> qv{q, q_off, q_sb, q_sh, q_sr};
    const View<const T> kv{k, k_off, k_sb, k_sh, k_sr};
    const View<const T> vv{v, v_off, v_sb, v_sh, v_sr};
    const View<const T> gov{gout, g_off, g_sb, g_sh, g_sr};
    const View<T> gkv{gk, gk_off, gk_sb, gk_sh, gk_sr};
    const View<T> gvv{gv, gv_off, gv_sb, gv_sh, gv_sr};
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const long long tiles = (len_k + warps - 1) / warps;
    for (long long t = blockIdx.x; t < batch_heads * tiles; t += gridDim.x) {
        const long long bh = t / tiles;
        const long long b = bh / heads;
        const long long h = bh - b * heads;
        const long long col0 = (t - bh * tiles) * warps;
        const long long j = col0 + warp;  // this warp's key row
        const bool active = j < len_k;
        // Causal: key j is seen by queries i >= j, so the block starts at its first key row.
        const long long first = causal ? col0 : 0;
        __syncthreads();  // the previous tile's reads of sk and sv are finished
        if (active) {
            for (int d = lane; d < dim; d += 32) {
                sk[warp][d] = to_float(kv.row(b, h, j)[d]);
                sv[warp][d] = to_float(vv.row(b, h, j)[d]);
            }
        }
        float dk[kPerLane] = {0.0f, 0.0f, 0.0f, 0.0f};
        float dv[kPerLane] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (long long i0 = first; i0 < len_q; i0 += kTile) {
            __syncthreads();  // every warp has finished with the previous query tile
            load_tile(sq, qv, b, h, i0, len_q, dim, scale);
            load_tile(sg, gov, b, h, i0, len_q, dim, 1.0f);
            if (threadIdx.x < kTile) {
                const long long i = i0 + threadIdx.x;
                s_lse[threadIdx.x] = i < len_q ? lse[bh * len_q + i] : 0.0f;
                s_delta[threadIdx.x] = i < len_q ? delta[bh * len_q + i] : 0.0f;
            }
            __syncthreads();
            if (!active) continue;
            const long long i = i0 + lane;
            float p = 0.0f;
            float ds = 0.0f;
            if (i < len_q && (!causal || j <= i)) {
                p = expf(dot(sq[lane], sk[warp], dim) - s_lse[lane]);
                ds = p * (dot(sg[lane], sv[warp], dim) - s_delta[lane]);
            }
            sp[warp][lane] = p;
            sds[warp][lane] = ds;
            __syncwarp();
            for (int ii = 0; ii < kTile; ++ii) {
                const float pi = sp[warp][ii];
                const float dsi = sds[warp][ii];
#pragma unroll
                for (int c = 0; c < kPerLane; ++c) {
                    const int d = lane + 32 * c;
                    if (d < dim) {
                        dv[c] += pi * sg[ii][d];
                        dk[c] += dsi * sq[ii][d];
                    }
                }
            }
        }
        if (!active) continue;
        T* krow = gkv.row(b, h, j);
        T* vrow = gvv.row(b, h, j);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) {
            const int d = lane + 32 * c;
            if (d < dim) {
                store_float(krow + d, dk[c]);
                store_float(vrow + d, dv[c]);
            }
        }
    }
}

}  // namespace

// Entry points: float32 and float16 operands (float16: float32 math inside, one rounding per
// output element); lse and delta are float32 for both. Arguments as described at the top.

extern "C" __global__ void __launch_bounds__(256) attention_forward_f32(
    const float* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const float* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const float* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    float* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    float* __restrict__ lse, long long heads, long long batch_heads, long long len_q,
    long long len_k, int dim, float scale, int causal) {
    attention_forward<float>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, out,
        o_off, o_sb, o_sh, o_sr, lse, heads, batch_heads, len_q, len_k, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) attention_forward_f16(
    const __half* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const __half* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const __half* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    __half* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    float* __restrict__ lse, long long heads, long long batch_heads, long long len_q,
    long long len_k, int dim, float scale, int causal) {
    attention_forward<__half>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, out,
        o_off, o_sb, o_sh, o_sr, lse, heads, batch_heads, len_q, len_k, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) attention_backward_dq_f32(
    const float* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const float* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const float* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const float* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    const float* __restrict__ gout, long long g_off, long long g_sb, long long g_sh, long long g_sr,
    float* __restrict__ gq, long long gq_off, long long gq_sb, long long gq_sh, long long gq_sr,
    const float* __restrict__ lse, float* __restrict__ delta, long long heads,
    long long batch_heads, long long len_q, long long len_k, int dim, float scale, int causal) {
    attention_backward_dq<float>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, out,
        o_off, o_sb, o_sh, o_sr, gout, g_off, g_sb, g_sh, g_sr, gq, gq_off, gq_sb, gq_sh, gq_sr,
        lse, delta, heads, batch_heads, len_q, len_k, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) attention_backward_dq_f16(
    const __half* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const __half* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const __half* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const __half* __restrict__ out, long long o_off, long long o_sb, long long o_sh, long long o_sr,
    const __half* __restrict__ gout, long long g_off, long long g_sb, long long g_sh,
    long long g_sr, __half* __restrict__ gq, long long gq_off, long long gq_sb, long long gq_sh,
    long long gq_sr, const float* __restrict__ lse, float* __restrict__ delta, long long heads,
    long long batch_heads, long long len_q, long long len_k, int dim, float scale, int causal) {
    attention_backward_dq<__half>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, out,
        o_off, o_sb, o_sh, o_sr, gout, g_off, g_sb, g_sh, g_sr, gq, gq_off, gq_sb, gq_sh, gq_sr,
        lse, delta, heads, batch_heads, len_q, len_k, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) attention_backward_dkdv_f32(
    const float* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const float* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const float* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const float* __restrict__ gout, long long g_off, long long g_sb, long long g_sh, long long g_sr,
    float* __restrict__ gk, long long gk_off, long long gk_sb, long long gk_sh, long long gk_sr,
    float* __restrict__ gv, long long gv_off, long long gv_sb, long long gv_sh, long long gv_sr,
    const float* __restrict__ lse, const float* __restrict__ delta, long long heads,
    long long batch_heads, long long len_q, long long len_k, int dim, float scale, int causal) {
    attention_backward_dkdv<float>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, gout,
        g_off, g_sb, g_sh, g_sr, gk, gk_off, gk_sb, gk_sh, gk_sr, gv, gv_off, gv_sb, gv_sh, gv_sr,
        lse, delta, heads, batch_heads, len_q, len_k, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(256) attention_backward_dkdv_f16(
    const __half* __restrict__ q, long long q_off, long long q_sb, long long q_sh, long long q_sr,
    const __half* __restrict__ k, long long k_off, long long k_sb, long long k_sh, long long k_sr,
    const __half* __restrict__ v, long long v_off, long long v_sb, long long v_sh, long long v_sr,
    const __half* __restrict__ gout, long long g_off, long long g_sb, long long g_sh,
    long long g_sr, __half* __restrict__ gk, long long gk_off, long long gk_sb, long long gk_sh,
    long long gk_sr, __half* __restrict__ gv, long long gv_off, long long gv_sb, long long gv_sh,
    long long gv_sr, const float* __restrict__ lse, const float* __restrict__ delta,
    long long heads, long long batch_heads, long long len_q, long long len_k, int dim, float scale,
    int causal) {
    attention_backward_dkdv<__half>(
        q, q_off, q_sb, q_sh, q_sr, k, k_off, k_sb, k_sh, k_sr, v, v_off, v_sb, v_sh, v_sr, gout,
        g_off, g_sb, g_sh, g_sr, gk, gk_off, gk_sb, gk_sh, gk_sr, gv, gv_off, gv_sb, gv_sh, gv_sr,
        lse, delta, heads, batch_heads, len_q, len_k, dim, scale, causal);
}
