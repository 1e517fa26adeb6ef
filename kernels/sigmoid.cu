// Sigmoid forward y = 1 / (1 + exp(-x)) and its fused backward gx = gy * y * (1 - y), for float32 and
// float16 arrays (float32 math). Reference: NumpyBackend.sigmoid / sigmoid_backward.
// Loaded by gnn/backend/cuda.py with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::Pack;
using gnn::store_float;
using gnn::to_float;

// 0.5 tanh(x / 2) + 0.5 equals the logistic function and never overflows: |x| = 1e4 gives exactly 0 or 1.
__device__ __forceinline__ float sigmoid_of(float x) { return 0.5f * tanhf(0.5f * x) + 0.5f; }

// Same operation order as the reference ((1 - y) * y * gy), so float32 results match it bit for bit.
__device__ __forceinline__ float sigmoid_grad_of(float y, float gy) { return (1.0f - y) * y * gy; }

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ULL) == 0ULL;
}

// Grid-stride loops. When every pointer is 16-byte aligned, whole packs go first and the last
// n % pack elements are done one by one; otherwise (a view starting mid-pack) every element is.
template <typename T>
__device__ __forceinline__ void sigmoid_forward(const T* __restrict__ x, T* __restrict__ y,
                                                long long n) {
    constexpr int V = Pack<T>::size;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    long long done = 0;
    if (aligned16(x) && aligned16(y)) {
        const long long packs = n / V;
        for (long long i = first; i < packs; i += stride) {
            float v[V];
            Pack<T>::load(x + i * V, v);
#pragma unroll
            for (int k = 0; k < V; ++k) v[k] = sigmoid_of(v[k]);
            Pack<T>::store(y + i * V, v);
        }
        done = packs * V;
    }
    for (long long i = done + first; i < n; i += stride) store_float(y + i, sigmoid_of(to_float(x[i])));
}

template <typename T>
__device__ __forceinline__ void sigmoid_backward(const T* __restrict__ y, const T* __restrict__ gy,
                                                 T* __restrict__ gx, long long n) {
    constexpr int V = Pack<T>::size;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    long long done = 0;
    if (aligned16(y) && aligned16(gy) && aligned16(gx)) {
        const long long packs = n / V;
        for (long long i = first; i < packs; i += stride) {
            float a[V];
            float b[V];
            Pack<T>::load(y + i * V, a);
            Pack<T>::load(gy + i * V, b);
#pragma unroll
            for (int k = 0; k < V; ++k) a[k] = sigmoid_grad_of(a[k], b[k]);
            Pack<T>::store(gx + i * V, a);
        }
        done = packs * V;
    }
    for (long long i = done + first; i < n; i += stride) {
        store_float(gx + i, sigmoid_grad_of(to_float(y[i]), to_float(gy[i])));
    }
}

}  // namespace

// Launch: any grid and any block size up to 1024 (the backend uses 256 threads and a grid capped
// at a few blocks per SM); n is the element count of the contiguous arrays.

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_forward_f32(const float* __restrict__ x, float* __restrict__ y, long long n) {
    sigmoid_forward<float>(x, y, n);
}

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_forward_f16(const __half* __restrict__ x, __half* __restrict__ y, long long n) {
    sigmoid_forward<__half>(x, y, n);
}

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_backward_f32(const float* __restrict__ y, const float* __restrict__ gy,
                         float* __restrict__ gx, long long n) {
    sigmoid_backward<float>(y, gy, gx, n);
}

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_backward_f16(const __half* __restrict__ y, const __half* __restrict__ gy,
                         __half* __restrict__ gx, long long n) {
    sigmoid_backward<__half>(y, gy, gx, n);
}
