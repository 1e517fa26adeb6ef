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
// (unsigned 64-bit each), uploaded once per set of gradients and cached by the backend. Sums have
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
