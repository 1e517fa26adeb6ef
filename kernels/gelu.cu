// GELU with its bias, fused: y = gelu(x + bias) over the last dim of x (N, D), and the backward
// gx = gy * gelu'(x + bias) with gbias = the column sums of gx. float32 and float16 data, float32
// math; approx_tanh picks GELU's tanh form (GPT-2's), else the exact erf form.
// Reference: gnn/backend/fused/gelu.py (reference / reference_backward).
//
//   bias_gelu_forward_*         grid-stride elementwise, one launch: 16-byte packs when every
//                               pointer is aligned and D is whole packs (a pack then never straddles
//                               a row, and its bias pack is aligned too), else element by element.
//   bias_gelu_backward_*        one block per (32-column tile, row chunk): writes gx and, when the
//                               bias gradient is wanted, the chunk's column sums of gx (float32
//                               partials, one row of D per chunk), summed in a fixed order.
//   bias_gelu_backward_bias_*   gbias[j] = sum over chunks of partial[chunk][j], chunks in order.
//
// No atomics: the bias gradient depends only on the launch shape (chunks and block size, chosen
// from N, D and the SM count), so it is the same from run to run. The backward recomputes x + bias
// from x and bias (nothing but the input is saved). Loaded with cupy.RawModule (NVRTC);
// ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::Pack;
using gnn::store_float;
using gnn::to_float;

constexpr int kTile = 32;                    // columns per block of the backward kernel
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kTanhCubic = 0.044715f;      // the cubic term of the tanh form
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ __forceinline__ float gelu_of(float h, int approx_tanh) {
    if (approx_tanh) {
        const float t = tanhf(kSqrt2OverPi * h * (1.0f + kTanhCubic * h * h));
        return 0.5f * h * (1.0f + t);
    }
    return 0.5f * h * (1.0f + erff(h * kInvSqrt2));
}

// d gelu / d h, from h alone (the backward saves nothing else).
__device__ __forceinline__ float gelu_grad_of(float h, int approx_tanh) {
    if (approx_tanh) {
        const float h2 = h * h;
        const float t = tanhf(kSqrt2OverPi * h * (1.0f + kTanhCubic * h2));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * kTanhCubic * h2);
        return 0.5f * (1.0f + t) + 0.5f * h * (1.0f - t * t) * du;
    }
    const float cdf = 0.5f * (1.0f + erff(h * kInvSqrt2));
    return cdf + h * kInvSqrt2Pi * expf(-0.5f * h * h);
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ULL) == 0ULL;
}

template <typename T>
__device__ __forceinline__ void bias_gelu_forward(const T* __restrict__ x,
                                                  const T* __restrict__ bias, int has_bias,
                                                  int approx_tanh, long long n, long long d,
                                                  T* __restrict__ y) {
    constexpr int V = Pack<T>::size;
    const long long total = n * d;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    long long done = 0;
    if (aligned16(x) && aligned16(y) && (!has_bias || aligned16(bias)) && d % V == 0) {
        const long long packs = total / V;
        for (long long i = first; i < packs; i += stride) {
            float v[V];
            Pack<T>::load(x + i * V, v);
            if (has_bias) {
                float b[V];
                Pack<T>::load(bias + (i * V) % d, b);
#pragma unroll
                for (int k = 0; k < V; ++k) v[k] += b[k];
            }
#pragma unroll
            for (int k = 0; k < V; ++k) v[k] = gelu_of(v[k], approx_tanh);
            Pack<T>::store(y + i * V, v);
        }
        done = packs * V;  // all of it: d is whole packs
    }
    for (long long i = done + first; i < total; i += stride) {
        float h = to_float(x[i]);
        if (has_bias) h += to_float(bias[i % d]);
        store_float(y + i, gelu_of(h, approx_tanh));
    }
}

// Block p (grid-stride) takes column tile p % tiles and row chunk p / tiles. Thread (lane, k) does
// column tile * 32 + lane over the chunk's rows k, k + K, ... (K = blockDim.x / 32 row lanes), then
// row lane 0 adds the K partial sums in order and writes the chunk's partial column sum.
template <typename T>
__device__ __forceinline__ void bias_gelu_backward(
    const T* __restrict__ x, const T* __restrict__ bias, const T* __restrict__ gy, int has_bias,
    int approx_tanh, long long n, long long d, long long chunks, int need_bias, T* __restrict__ gx,
    float* __restrict__ partial) {
    __shared__ float sm[32][kTile + 1];  // +1: row lanes reading one column hit distinct banks
    const int lane = threadIdx.x & 31;
    const int k = threadIdx.x >> 5;
    const int lanes = blockDim.x >> 5;
    const long long tiles = (d + kTile - 1) / kTile;
    const long long rows_per_chunk = (n + chunks - 1) / chunks;
    for (long long p = blockIdx.x; p < tiles * chunks; p += gridDim.x) {
        const long long t = p % tiles;
        const long long c = p / tiles;
        const long long j = t * kTile + lane;
        const long long r_end = (c + 1) * rows_per_chunk < n ? (c + 1) * rows_per_chunk : n;
        float s = 0.0f;
        if (j < d) {
            const float b = has_bias ? to_float(bias[j]) : 0.0f;
            for (long long r = c * rows_per_chunk + k; r < r_end; r += lanes) {
                const float g = to_float(gy[r * d + j]) * gelu_grad_of(to_float(x[r * d + j]) + b,
                                                                       approx_tanh);
                store_float(gx + r * d + j, g);
                s += g;
            }
        }
        if (!need_bias) continue;  // the same for every thread: no barrier is skipped by some
        __syncthreads();           // row lane 0 has read the previous tile's partials
        sm[k][lane] = s;
        __syncthreads();
        if (k != 0 || j >= d) continue;
        for (int i = 1; i < lanes; ++i) s += sm[i][lane];
        partial[c * d + j] = s;
    }
}

template <typename T>
__device__ __forceinline__ void bias_gelu_backward_bias(const float* __restrict__ partial,
                                                        long long chunks, long long d,
                                                        T* __restrict__ gbias) {
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long j = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; j < d;
         j += stride) {
        float s = 0.0f;
        for (long long c = 0; c < chunks; ++c) s += partial[c * d + j];
        store_float(gbias + j, s);
    }
}

}  // namespace

// Launch shapes (gnn/backend/fused/gelu.py): the forward and the bias sum take any grid and block
// (grid-stride); the backward takes blockDim a multiple of 32, at most 1024, and any grid (blocks
// stride over the tile x chunk pairs). x, gy, y, gx are C-contiguous (N, D); bias and gbias (D,);
// partial is float32 (chunks, D). A pointer behind a zero flag is not read or written.

extern "C" __global__ void __launch_bounds__(1024)
    bias_gelu_forward_f32(const float* __restrict__ x, const float* __restrict__ bias, int has_bias,
                          int approx_tanh, long long n, long long d, float* __restrict__ y) {
    bias_gelu_forward<float>(x, bias, has_bias, approx_tanh, n, d, y);
}

extern "C" __global__ void __launch_bounds__(1024)
    bias_gelu_forward_f16(const __half* __restrict__ x, const __half* __restrict__ bias,
                          int has_bias, int approx_tanh, long long n, long long d,
                          __half* __restrict__ y) {
    bias_gelu_forward<__half>(x, bias, has_bias, approx_tanh, n, d, y);
}

extern "C" __global__ void __launch_bounds__(1024) bias_gelu_backward_f32(
    const float* __restrict__ x, const float* __restrict__ bias, const float* __restrict__ gy,
    int has_bias, int approx_tanh, long long n, long long d, long long chunks, int need_bias,
    float* __restrict__ gx, float* __restrict__ partial) {
    bias_gelu_backward<float>(x, bias, gy, has_bias, approx_tanh, n, d, chunks, need_bias, gx,
                              partial);
}

extern "C" __global__ void __launch_bounds__(1024) bias_gelu_backward_f16(
    const __half* __restrict__ x, const __half* __restrict__ bias, const __half* __restrict__ gy,
    int has_bias, int approx_tanh, long long n, long long d, long long chunks, int need_bias,
    __half* __restrict__ gx, float* __restrict__ partial) {
    bias_gelu_backward<__half>(x, bias, gy, has_bias, approx_tanh, n, d, chunks, need_bias, gx,
                               partial);
}

extern "C" __global__ void __launch_bounds__(1024)
    bias_gelu_backward_bias_f32(const float* __restrict__ partial, long long chunks, long long d,
                                float* __restrict__ gbias) {
    bias_gelu_backward_bias<float>(partial, chunks, d, gbias);
}

extern "C" __global__ void __launch_bounds__(1024)
    bias_gelu_backward_bias_f16(const float* __restrict__ partial, long long chunks, long long d,
                                __half* __restrict__ gbias) {
    bias_gelu_backward_bias<__half>(partial, chunks, d, gbias);
}
