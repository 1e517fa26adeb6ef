// Gradient clipping by the total norm over many tensors, in two launches per dtype, with no host
// sync: clip_grad_norm_ for norm_type 2 and inf. Reference: gnn/backend/fused/clip_grad_norm.py.
//
//   clip_norm_partial_*   every block walks every tensor of the table with a grid stride and
//                         sums g^2 (or takes max |g|) in float32; block b writes partial[b].
//   clip_norm_scale_*     every block combines all partials (of every dtype's launch) in the same
//                         fixed order into the total norm and the coefficient
//                         min(1, max_norm / (total + 1e-6)), then scales its share of every tensor.
//                         Block 0 writes the total (in the gradients' dtype).
//
// The tensors come as a table of count device pointers followed by their count element counts
// (unsigned 64-bit each), written on the device by clip_norm_table (16 tensors per launch, their
// pointers and sizes as kernel arguments: no host-to-device copy) and cached by the backend. Sums have
// a fixed order for a given launch shape (no atomics), so the norm is the same from run to run.
// A NaN anywhere makes the total NaN (and so every gradient), as in PyTorch; the max keeps NaN
// (fmaxf would drop it). Loaded with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

constexpr unsigned int kFullMask = 0xffffffffu;

// a or b, whichever is larger; NaN wins (a max over a NaN gradient is NaN).
__device__ __forceinline__ float max_nan(float a, float b) { return (b > a || b != b) ? b : a; }

__device__ __forceinline__ float combine(float a, float b, int norm_inf) {
    return norm_inf ? max_nan(a, b) : a + b;
}

// The block's total of v (sum or NaN-keeping max), the same in every thread; `sm` holds 32 floats.
// Called once per block (a second call would need a barrier before the slots are rewritten).
__device__ __forceinline__ float block_combine(float v, int norm_inf, float* sm) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = combine(v, __shfl_xor_sync(kFullMask, v, offset), norm_inf);
    }
    if (lane == 0) sm[warp] = v;
    __syncthreads();
    v = sm[0];
    for (int w = 1; w < warps; ++w) v = combine(v, sm[w], norm_inf);
    return v;
}

template <typename T>
__device__ __forceinline__ void clip_norm_partial(const unsigned long long* __restrict__ table,
                                                  int count, int norm_inf,
                                                  float* __restrict__ partial) {
    __shared__ float sm[32];
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < count; ++t) {
        const T* g = reinterpret_cast<const T*>(table[t]);
        const long long n = static_cast<long long>(table[count + t]);
        for (long long i = first; i < n; i += stride) {
            const float v = to_float(g[i]);
            acc = norm_inf ? max_nan(acc, fabsf(v)) : acc + v * v;
        }
    }
    acc = block_combine(acc, norm_inf, sm);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <typename T>
__device__ __forceinline__ void clip_norm_scale(const unsigned long long* __restrict__ table,
                                                int count, const float* __restrict__ partial,
                                                int parts, int norm_inf, float max_norm,
                                                T* __restrict__ total_out) {
    __shared__ float coef_sm;
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int p = 0; p < parts; ++p) total = combine(total, partial[p], norm_inf);
        if (!norm_inf) total = sqrtf(total);
        coef_sm = fminf(max_norm / (total + 1e-6f), 1.0f);
        if (total != total) coef_sm = total;  // NaN: fminf would give 1; PyTorch's clamp keeps NaN
        if (blockIdx.x == 0) store_float(total_out, total);
    }
    __syncthreads();  // coef_sm is written
    const float coef = coef_sm;
    if (coef == 1.0f) return;  // multiplying by 1 changes nothing: skip the pass
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    for (int t = 0; t < count; ++t) {
        T* g = reinterpret_cast<T*>(table[t]);
        const long long n = static_cast<long long>(table[count + t]);
        for (long long i = first; i < n; i += stride) store_float(g + i, to_float(g[i]) * coef);
    }
}

}  // namespace

// Writes entries first .. first + k - 1 (k <= 16) of a table of count tensors: the pointers p*
// (device addresses) and element counts n* of this launch. One block of at least k threads.
extern "C" __global__ void __launch_bounds__(1024) clip_norm_table(
    unsigned long long* __restrict__ table, int count, int first, int k, long long p0, long long p1,
    long long p2, long long p3, long long p4, long long p5, long long p6, long long p7, long long p8,
    long long p9, long long p10, long long p11, long long p12, long long p13, long long p14,
    long long p15, long long n0, long long n1, long long n2, long long n3, long long n4, long long n5,
    long long n6, long long n7, long long n8, long long n9, long long n10, long long n11,
    long long n12, long long n13, long long n14, long long n15) {
    const long long p[16] = {p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15};
    const long long n[16] = {n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, n12, n13, n14, n15};
    const int t = static_cast<int>(threadIdx.x);
    if (t < k) {
        table[first + t] = static_cast<unsigned long long>(p[t]);
        table[count + first + t] = static_cast<unsigned long long>(n[t]);
    }
}

// Launch shapes (gnn/backend/fused/clip_grad_norm.py): blockDim a multiple of 32, at most 1024;
// partial has gridDim.x entries of the partial launch; the scale launch may use any grid.

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_partial_f32(const unsigned long long* __restrict__ table, int count, int norm_inf,
                          float* __restrict__ partial) {
    clip_norm_partial<float>(table, count, norm_inf, partial);
}

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_partial_f16(const unsigned long long* __restrict__ table, int count, int norm_inf,
                          float* __restrict__ partial) {
    clip_norm_partial<__half>(table, count, norm_inf, partial);
}

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_scale_f32(const unsigned long long* __restrict__ table, int count,
                        const float* __restrict__ partial, int parts, int norm_inf,
                        float max_norm, float* __restrict__ total) {
    clip_norm_scale<float>(table, count, partial, parts, norm_inf, max_norm, total);
}

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_scale_f16(const unsigned long long* __restrict__ table, int count,
                        const float* __restrict__ partial, int parts, int norm_inf,
                        float max_norm, __half* __restrict__ total) {
    clip_norm_scale<__half>(table, count, partial, parts, norm_inf, max_norm, total);
}
