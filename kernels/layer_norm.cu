// Layer normalisation over the last dim of x (N, D), float32 or float16 data with float32 math.
// Reference: NumpyBackend.layer_norm_forward / layer_norm_backward (gnn/backend/numpy.py).
//
//   layer_norm_forward_*       one block per row: mean and 1/std (corrected two-pass), then
//                              y = (x - mean) * rstd * weight + bias; mean and rstd saved (float32).
//   layer_norm_backward_x_*    one block per row: the row sums of g = gy * weight and of g * xhat,
//                              then gx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
//   layer_norm_backward_wb_*   one block per 32-column tile: gweight = sum_r gy * xhat and
//                              gbias = sum_r gy, each column summed by one block in a fixed order
//                              (deterministic: no atomics, no second launch).
//
// Access is scalar (one element per thread, consecutive threads on consecutive columns, so every
// warp reads whole 32-byte sectors for float32): rows of any D start anywhere, and weight and bias
// need no alignment. The forward reads each row three times; for D <= 8192 (32 KB) the re-reads
// come from L1/L2. 16-byte packs with a head and tail (as in softmax_cross_entropy.cu) are the next
// step once a GPU can measure them. Loaded with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles
// it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

constexpr unsigned int kFullMask = 0xffffffffu;
constexpr int kTile = 32;  // columns per block of the weight / bias gradient kernel

// Sums a and b over the block; every thread gets the totals, added in the same fixed order (so the
// result does not depend on timing). `sm` holds 64 floats. blockDim.x must be whole warps.
__device__ __forceinline__ void block_sum2(float& a, float& b, float* sm) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        a += __shfl_xor_sync(kFullMask, a, offset);
        b += __shfl_xor_sync(kFullMask, b, offset);
    }
    __syncthreads();  // every thread has read the slots of the previous call
    if (lane == 0) {
        sm[warp] = a;
        sm[32 + warp] = b;
    }
    __syncthreads();
    a = 0.0f;
    b = 0.0f;
    for (int w = 0; w < warps; ++w) {
        a += sm[w];
        b += sm[32 + w];
    }
}

template <typename T>
__device__ __forceinline__ void layer_norm_forward(const T* __restrict__ x,
                                                   const T* __restrict__ weight,
                                                   const T* __restrict__ bias, int has_weight,
                                                   int has_bias, long long n, long long d, float eps,
                                                   T* __restrict__ y, float* __restrict__ mean_out,
                                                   float* __restrict__ rstd_out) {
    __shared__ float sm[64];
    const float inv_d = 1.0f / static_cast<float>(d);
    for (long long r = blockIdx.x; r < n; r += gridDim.x) {
        const T* row = x + r * d;
        T* yrow = y + r * d;
        float s = 0.0f;
        float unused = 0.0f;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) s += to_float(row[j]);
        block_sum2(s, unused, sm);
        const float shift = s * inv_d;
        // Second pass about the first estimate; its residual sum corrects both the mean and the
        // variance (the "corrected two-pass" algorithm), so a large mean with a tiny spread keeps
        // its digits, and the variance cannot go negative through cancellation.
        float sc = 0.0f;
        float scc = 0.0f;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            const float c = to_float(row[j]) - shift;
            sc += c;
            scc += c * c;
        }
        block_sum2(sc, scc, sm);
        const float mean = shift + sc * inv_d;
        const float var = fmaxf((scc - sc * (sc * inv_d)) * inv_d, 0.0f);
        const float rstd = 1.0f / sqrtf(var + eps);  // not rsqrtf: that is 2 ulp off on the GPU
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            float v = (to_float(row[j]) - mean) * rstd;
            if (has_weight) v *= to_float(weight[j]);
            if (has_bias) v += to_float(bias[j]);
            store_float(yrow + j, v);
        }
        if (threadIdx.x == 0) {
            mean_out[r] = mean;
            rstd_out[r] = rstd;
        }
    }
}

template <typename T>
__device__ __forceinline__ void layer_norm_backward_x(
    const T* __restrict__ x, const T* __restrict__ gy, const T* __restrict__ weight, int has_weight,
    const float* __restrict__ mean, const float* __restrict__ rstd, long long n, long long d,
    T* __restrict__ gx) {
    __shared__ float sm[64];
    const float inv_d = 1.0f / static_cast<float>(d);
    for (long long r = blockIdx.x; r < n; r += gridDim.x) {
        const T* row = x + r * d;
        const T* grow = gy + r * d;
        T* gxrow = gx + r * d;
        const float mu = mean[r];
        const float rs = rstd[r];
        float sg = 0.0f;   // sum of g = gy * weight
        float sgx = 0.0f;  // sum of g * xhat
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            float g = to_float(grow[j]);
            if (has_weight) g *= to_float(weight[j]);
            sg += g;
            sgx += g * ((to_float(row[j]) - mu) * rs);
        }
        block_sum2(sg, sgx, sm);
        const float mg = sg * inv_d;
        const float mgx = sgx * inv_d;
        for (long long j = threadIdx.x; j < d; j += blockDim.x) {
            float g = to_float(grow[j]);
            if (has_weight) g *= to_float(weight[j]);
            const float xhat = (to_float(row[j]) - mu) * rs;
            store_float(gxrow + j, rs * (g - mg - xhat * mgx));
        }
    }
}

// Thread (lane, k) of a block sums column tile * 32 + lane over rows k, k + K, ... (K = blockDim.x
// / 32 row lanes), then row lane 0 adds the K partials in order: each column is summed by one block
// in an order fixed by the launch shape alone.
template <typename T>
__device__ __forceinline__ void layer_norm_backward_wb(
    const T* __restrict__ x, const T* __restrict__ gy, const float* __restrict__ mean,
    const float* __restrict__ rstd, long long n, long long d, int need_weight, int need_bias,
    T* __restrict__ gweight, T* __restrict__ gbias) {
    __shared__ float sm_w[32][kTile + 1];  // +1: row lanes reading one column hit distinct banks
    __shared__ float sm_b[32][kTile + 1];
    const int lane = threadIdx.x & 31;
    const int k = threadIdx.x >> 5;
    const int lanes = blockDim.x >> 5;
    const long long tiles = (d + kTile - 1) / kTile;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        const long long j = t * kTile + lane;
        float sw = 0.0f;
        float sb = 0.0f;
        if (j < d) {
            for (long long r = k; r < n; r += lanes) {
                const float g = to_float(gy[r * d + j]);
                sw += g * ((to_float(x[r * d + j]) - mean[r]) * rstd[r]);
                sb += g;
            }
        }
        __syncthreads();  // row lane 0 has read the previous tile's partials
        sm_w[k][lane] = sw;
        sm_b[k][lane] = sb;
        __syncthreads();
        if (k != 0 || j >= d) continue;
        for (int i = 1; i < lanes; ++i) {
            sw += sm_w[i][lane];
            sb += sm_b[i][lane];
        }
        if (need_weight) store_float(gweight + j, sw);
        if (need_bias) store_float(gbias + j, sb);
    }
}

}  // namespace

// Launch shapes (gnn/backend/cuda.py): every kernel takes blockDim a multiple of 32, at most 1024,
// and strides over its rows (forward, backward_x) or column tiles (backward_wb), so any grid works.
// All arrays are C-contiguous; weight, bias and the gradients have the data's dtype; mean and rstd
// are float32 (N,). Pointers behind a zero flag are not read or written (a dummy may stand in).

extern "C" __global__ void __launch_bounds__(1024) layer_norm_forward_f32(
    const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ bias,
    int has_weight, int has_bias, long long n, long long d, float eps, float* __restrict__ y,
    float* __restrict__ mean, float* __restrict__ rstd) {
    layer_norm_forward<float>(x, weight, bias, has_weight, has_bias, n, d, eps, y, mean, rstd);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_forward_f16(
    const __half* __restrict__ x, const __half* __restrict__ weight, const __half* __restrict__ bias,
    int has_weight, int has_bias, long long n, long long d, float eps, __half* __restrict__ y,
    float* __restrict__ mean, float* __restrict__ rstd) {
    layer_norm_forward<__half>(x, weight, bias, has_weight, has_bias, n, d, eps, y, mean, rstd);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_x_f32(
    const float* __restrict__ x, const float* __restrict__ gy, const float* __restrict__ weight,
    int has_weight, const float* __restrict__ mean, const float* __restrict__ rstd, long long n,
    long long d, float* __restrict__ gx) {
    layer_norm_backward_x<float>(x, gy, weight, has_weight, mean, rstd, n, d, gx);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_x_f16(
    const __half* __restrict__ x, const __half* __restrict__ gy, const __half* __restrict__ weight,
    int has_weight, const float* __restrict__ mean, const float* __restrict__ rstd, long long n,
    long long d, __half* __restrict__ gx) {
    layer_norm_backward_x<__half>(x, gy, weight, has_weight, mean, rstd, n, d, gx);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_wb_f32(
    const float* __restrict__ x, const float* __restrict__ gy, const float* __restrict__ mean,
    const float* __restrict__ rstd, long long n, long long d, int need_weight, int need_bias,
    float* __restrict__ gweight, float* __restrict__ gbias) {
    layer_norm_backward_wb<float>(x, gy, mean, rstd, n, d, need_weight, need_bias, gweight, gbias);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_wb_f16(
    const __half* __restrict__ x, const __half* __restrict__ gy, const float* __restrict__ mean,
    const float* __restrict__ rstd, long long n, long long d, int need_weight, int need_bias,
    __half* __restrict__ gweight, __half* __restrict__ gbias) {
    layer_norm_backward_wb<__half>(x, gy, mean, rstd, n, d, need_weight, need_bias, gweight, gbias);
}
