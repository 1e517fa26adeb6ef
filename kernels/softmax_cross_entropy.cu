// Softmax cross-entropy over class logits (N, C) against labels (N,), float32 or float16 logits with
// float32 math. Reference: NumpyBackend.softmax_cross_entropy / softmax_cross_entropy_backward
// (PyTorch semantics: class weights, ignore_index, label_smoothing, reduction none / sum / mean).
//
//   softmax_ce_forward_*   one block per row: single-pass (online) max and sum of exp -> per-row
//                          log-sum-exp (saved for backward) and per-row loss (float32).
//   softmax_ce_reduce_*    one block: sum of the row losses and, for "mean", of the target weights of
//                          the counted rows, in double; writes the 0-d loss and the normaliser on the
//                          device, so the host never waits.
//   softmax_ce_backward_*  one block per row, one pass: g = (softmax - target distribution) * scale.
//
// A label outside [0, C) that is not ignore_index is never used as an index: the row's loss and
// gradient become NaN and the error slots `err` are set for the host to raise from (see
// CupyBackend.check_errors). Loaded with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::Pack;
using gnn::store_float;
using gnn::to_float;

constexpr unsigned int kFullMask = 0xffffffffu;

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fffffff); }

// Elements before the first 16-byte boundary of `row` (a row of C elements starts anywhere when
// C * sizeof(T) is not a multiple of 16, e.g. C = 50257), capped at c. A pointer that is not even
// element-aligned gets no packs at all.
template <typename T>
__device__ __forceinline__ long long head_length(const T* row, long long c) {
    const unsigned long long addr = reinterpret_cast<unsigned long long>(row);
    if (addr % sizeof(T) != 0ULL) return c;
    const long long head = static_cast<long long>(((16ULL - (addr & 15ULL)) & 15ULL) / sizeof(T));
    return head < c ? head : c;
}

// Calls f(j, v) for every column of `row`, each exactly once across the block: v is a float array of
// 1 element (scalar head up to the 16-byte boundary, scalar tail) or Pack<T>::size elements (the
// aligned middle), holding columns j, j + 1, ... With use_packs false every column goes one by one.
// f is a functor with a __device__ template operator(), not a lambda: NVRTC 12 rejects lambdas in
// device code unless given -default-device, which cupy.RawModule does not pass.
template <typename T, typename F>
__device__ __forceinline__ void for_each_column(const T* row, long long c, bool use_packs, F& f) {
    constexpr int V = Pack<T>::size;
    const long long head = use_packs ? head_length(row, c) : c;
    const long long packs = (c - head) / V;
    const long long tail = head + packs * V;
    for (long long j = threadIdx.x; j < head; j += blockDim.x) {
        const float v[1] = {to_float(row[j])};
        f(j, v);
    }
    for (long long p = threadIdx.x; p < packs; p += blockDim.x) {
        const long long j = head + p * V;
        float v[V];
        Pack<T>::load(row + j, v);
        f(j, v);
    }
    for (long long j = tail + threadIdx.x; j < c; j += blockDim.x) {
        const float v[1] = {to_float(row[j])};
        f(j, v);
    }
}

// Writes `value` into every element of `row` (ignored rows get 0, rows with a bad label NaN).
template <typename T>
__device__ __forceinline__ void fill_row(T* row, long long c, float value) {
    constexpr int V = Pack<T>::size;
    const long long head = head_length(row, c);
    const long long packs = (c - head) / V;
    const long long tail = head + packs * V;
    float v[V];
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = value;
    for (long long j = threadIdx.x; j < head; j += blockDim.x) store_float(row + j, value);
    for (long long p = threadIdx.x; p < packs; p += blockDim.x) Pack<T>::store(row + head + p * V, v);
    for (long long j = tail + threadIdx.x; j < c; j += blockDim.x) store_float(row + j, value);
}

// Online log-sum-exp: (m, s) with s = sum exp(v - m) over the values seen, m their running max.
// A value of -inf adds nothing (and must not compute exp(-inf - -inf) = NaN); NaN propagates into s.
template <int K>
__device__ __forceinline__ void online_add(float& m, float& s, const float (&v)[K]) {
    float pm = v[0];
#pragma unroll
    for (int k = 1; k < K; ++k) pm = fmaxf(pm, v[k]);
    if (pm > m) {
        s = (s == 0.0f) ? 0.0f : s * expf(m - pm);  // rescale the old sum to the new max
        m = pm;
    }
#pragma unroll
    for (int k = 0; k < K; ++k) s += (v[k] == neg_inf()) ? 0.0f : expf(v[k] - m);
}

// Merge two (max, sum) partials; a partial with s == 0 has seen only -inf (or nothing) and adds 0.
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
    const float mm = fmaxf(m, m2);
    const float a = (s == 0.0f) ? 0.0f : s * expf(m - mm);
    const float b = (s2 == 0.0f) ? 0.0f : s2 * expf(m2 - mm);
    m = mm;
    s = a + b;
}

// Butterfly over the full warp (every lane ends with the same result; all 32 lanes must call it).
__device__ __forceinline__ void warp_reduce_lse(float& m, float& s, float& z) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float m2 = __shfl_xor_sync(kFullMask, m, offset);
        const float s2 = __shfl_xor_sync(kFullMask, s, offset);
        const float z2 = __shfl_xor_sync(kFullMask, z, offset);
        online_merge(m, s, m2, s2);
        z += z2;
    }
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
    return v;
}

// Error slots (int64 on the host): [0] 1 once a bad label was seen, [1] the first such label seen,
// [2] C, [3] ignore_index, [4] bad rows counted by the forward kernel, [5] by the backward (two
// counters, so that a check between forward and backward still reports the backward's count).
__device__ __forceinline__ void report_bad_label(unsigned long long* err, long long label,
                                                 long long c, long long ignore_index,
                                                 int count_slot) {
    if (atomicCAS(&err[0], 0ULL, 1ULL) == 0ULL) {
        err[1] = static_cast<unsigned long long>(label);
        err[2] = static_cast<unsigned long long>(c);
        err[3] = static_cast<unsigned long long>(ignore_index);
    }
    atomicAdd(&err[count_slot], 1ULL);
}

// Forward, per thread: online max / sum of exp over its columns, and for label smoothing the sum of
// z_j (or of w_j z_j with class weights).
struct ForwardColumns {
    const float* weight;
    bool has_weight;
    bool smooth;
    float m;  // running max
    float s;  // sum of exp(z - m)
    float z;  // sum of z, or of weight * z

    template <int K>
    __device__ __forceinline__ void operator()(long long j, const float (&v)[K]) {
        online_add<K>(m, s, v);
        if (smooth) {
#pragma unroll
            for (int k = 0; k < K; ++k) z += has_weight ? weight[j + k] * v[k] : v[k];
        }
    }
};

// Backward, per column: g_j = p_j coef - at_target [j == t] - smooth_scale w_j, written to grow.
template <typename T>
struct BackwardColumns {
    T* grow;
    const float* weight;
    bool has_weight;
    bool smooth;
    long long t;
    float lse;
    float coef;
    float at_target;
    float smooth_scale;

    template <int K>
    __device__ __forceinline__ void operator()(long long j, const float (&v)[K]) const {
        float g[K];
#pragma unroll
        for (int k = 0; k < K; ++k) {
            g[k] = expf(v[k] - lse) * coef;
            if (j + k == t) g[k] -= at_target;
            if (smooth) g[k] -= smooth_scale * (has_weight ? weight[j + k] : 1.0f);
        }
        if constexpr (K == 1) {
            store_float(grow + j, g[0]);
        } else {
            Pack<T>::store(grow + j, g);
        }
    }
};

template <typename T>
__device__ __forceinline__ void softmax_ce_forward(
    const T* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    long long n, long long c, long long ignore_index, float eps, float* __restrict__ lse_out,
    float* __restrict__ row_loss, unsigned long long* err) {
    __shared__ float sm_m[32];
    __shared__ float sm_s[32];
    __shared__ float sm_z[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const bool smooth = eps > 0.0f;
    for (long long r = blockIdx.x; r < n; r += gridDim.x) {
        const T* row = logits + r * c;
        ForwardColumns acc{weight, has_weight != 0, smooth, neg_inf(), 0.0f, 0.0f};
        for_each_column(row, c, true, acc);
        float m = acc.m;
        float s = acc.s;
        float z = acc.z;
        warp_reduce_lse(m, s, z);
        __syncthreads();  // the previous row's reads of sm_* are finished
        if (lane == 0) {
            sm_m[warp] = m;
            sm_s[warp] = s;
            sm_z[warp] = z;
        }
        __syncthreads();
        if (warp != 0) continue;  // the rest is warp 0's: a whole warp, so the shuffles are full
        m = lane < warps ? sm_m[lane] : neg_inf();
        s = lane < warps ? sm_s[lane] : 0.0f;
        z = lane < warps ? sm_z[lane] : 0.0f;
        warp_reduce_lse(m, s, z);
        if (lane != 0) continue;
        const float lse = m + logf(s);
        lse_out[r] = lse;
        const long long t = target[r];
        float loss = 0.0f;  // ignored rows count 0
        if (t != ignore_index) {
            if (t < 0 || t >= c) {
                report_bad_label(err, t, c, ignore_index, 4);
                loss = quiet_nan();
            } else {
                const float wt = has_weight ? weight[t] : 1.0f;
                loss = (1.0f - eps) * wt * (lse - to_float(row[t]));
                if (smooth) {
                    // eps/C * sum_j w_j (lse - z_j), with w_j = 1 when unweighted
                    const float fc = static_cast<float>(c);
                    loss += eps * (has_weight ? (*weight_sum * lse - z) / fc : lse - z / fc);
                }
            }
        }
        row_loss[r] = loss;
    }
}

template <typename T>
__device__ __forceinline__ void softmax_ce_reduce(const float* __restrict__ row_loss,
                                                  const long long* __restrict__ target,
                                                  const float* __restrict__ weight, int has_weight,
                                                  long long n, long long c, long long ignore_index,
                                                  int mean, T* __restrict__ loss_out,
                                                  float* __restrict__ denom_out) {
    __shared__ double sm_total[32];
    __shared__ double sm_denom[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    double total = 0.0;
    double denom = 0.0;  // sum of target weights over counted rows (bad labels count nothing)
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        total += row_loss[i];
        const long long t = target[i];
        if (t != ignore_index && t >= 0 && t < c) denom += has_weight ? weight[t] : 1.0f;
    }
    total = warp_sum(total);
    denom = warp_sum(denom);
    if (lane == 0) {
        sm_total[warp] = total;
        sm_denom[warp] = denom;
    }
    __syncthreads();
    if (warp != 0) return;
    total = warp_sum(lane < warps ? sm_total[lane] : 0.0);
    denom = warp_sum(lane < warps ? sm_denom[lane] : 0.0);
    if (lane != 0) return;
    // mean over zero counted rows is 0 / 0 = NaN, as in PyTorch
    store_float(loss_out, static_cast<float>(mean ? total / denom : total));
    *denom_out = static_cast<float>(denom);
}

template <typename T>
__device__ __forceinline__ void softmax_ce_backward(
    const T* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    const float* __restrict__ lse, const float* __restrict__ gloss, long long gloss_stride,
    const float* __restrict__ denom, int mean, long long n, long long c, long long ignore_index,
    float eps, T* __restrict__ glogits, unsigned long long* err) {
    const bool smooth = eps > 0.0f;
    // Packs need the input and output rows to share their offset from a 16-byte boundary.
    const bool use_packs =
        ((reinterpret_cast<unsigned long long>(logits) ^ reinterpret_cast<unsigned long long>(glogits)) &
         15ULL) == 0ULL;
    for (long long r = blockIdx.x; r < n; r += gridDim.x) {
        const T* row = logits + r * c;
        T* grow = glogits + r * c;
        const long long t = target[r];
        if (t == ignore_index) {
            fill_row(grow, c, 0.0f);
            continue;
        }
        if (t < 0 || t >= c) {
            if (threadIdx.x == 0) report_bad_label(err, t, c, ignore_index, 5);
            fill_row(grow, c, quiet_nan());
            continue;
        }
        float scale = gloss[r * gloss_stride];
        if (mean) scale = scale / *denom;
        const float wt = has_weight ? weight[t] : 1.0f;
        const float eps_c = eps / static_cast<float>(c);
        const float total_w = (smooth && has_weight) ? *weight_sum : static_cast<float>(c);
        // d loss / d z_j = p_j ((1 - eps) w_t + eps/C sum(w)) - (1 - eps) w_t [j == t] - eps/C w_j
        const float coef = (smooth ? (1.0f - eps) * wt + eps_c * total_w : wt) * scale;
        const float at_target = (1.0f - eps) * wt * scale;
        const float smooth_scale = eps_c * scale;
        const BackwardColumns<T> write{
            grow, weight, has_weight != 0, smooth, t, lse[r], coef, at_target, smooth_scale};
        for_each_column(row, c, use_packs, write);
    }
}

}  // namespace

// Launch shapes (gnn/backend/cuda.py): forward and backward take one block per row (grid-stride over
// rows, so any grid works) with blockDim a multiple of 32, at most 1024; reduce takes exactly one
// block, blockDim a multiple of 32. All arrays are C-contiguous; target is int64; weight and
// weight_sum (sum of weight, read only when has_weight and eps > 0) are float32; err has 6 int64s.

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_forward_f32(
    const float* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    long long n, long long c, long long ignore_index, float eps, float* __restrict__ lse,
    float* __restrict__ row_loss, unsigned long long* err) {
    softmax_ce_forward<float>(logits, target, weight, weight_sum, has_weight, n, c, ignore_index,
                              eps, lse, row_loss, err);
}

// Eight halves per pack need more registers than the 32 that two resident 1024-thread blocks leave
// (nvcc 13 assumes two for __launch_bounds__(1024)): on sm_80 that spilled, so this one asks for one.
extern "C" __global__ void __launch_bounds__(1024, 1) softmax_ce_forward_f16(
    const __half* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    long long n, long long c, long long ignore_index, float eps, float* __restrict__ lse,
    float* __restrict__ row_loss, unsigned long long* err) {
    softmax_ce_forward<__half>(logits, target, weight, weight_sum, has_weight, n, c, ignore_index,
                               eps, lse, row_loss, err);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_reduce_f32(
    const float* __restrict__ row_loss, const long long* __restrict__ target,
    const float* __restrict__ weight, int has_weight, long long n, long long c,
    long long ignore_index, int mean, float* __restrict__ loss, float* __restrict__ denom) {
    softmax_ce_reduce<float>(row_loss, target, weight, has_weight, n, c, ignore_index, mean, loss,
                             denom);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_reduce_f16(
    const float* __restrict__ row_loss, const long long* __restrict__ target,
    const float* __restrict__ weight, int has_weight, long long n, long long c,
    long long ignore_index, int mean, __half* __restrict__ loss, float* __restrict__ denom) {
    softmax_ce_reduce<__half>(row_loss, target, weight, has_weight, n, c, ignore_index, mean, loss,
                              denom);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_backward_f32(
    const float* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    const float* __restrict__ lse, const float* __restrict__ gloss, long long gloss_stride,
    const float* __restrict__ denom, int mean, long long n, long long c, long long ignore_index,
    float eps, float* __restrict__ glogits, unsigned long long* err) {
    softmax_ce_backward<float>(logits, target, weight, weight_sum, has_weight, lse, gloss,
                               gloss_stride, denom, mean, n, c, ignore_index, eps, glogits, err);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_backward_f16(
    const __half* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    const float* __restrict__ lse, const float* __restrict__ gloss, long long gloss_stride,
    const float* __restrict__ denom, int mean, long long n, long long c, long long ignore_index,
    float eps, __half* __restrict__ glogits, unsigned long long* err) {
    softmax_ce_backward<__half>(logits, target, weight, weight_sum, has_weight, lse, gloss,
                                gloss_stride, denom, mean, n, c, ignore_index, eps, glogits, err);
}
