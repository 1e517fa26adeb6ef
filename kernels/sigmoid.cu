// Sigmoid forward y = 1 / (1 + exp(-x)) and its fused backward gx = gy * y * (1 - y), for float32 and
// float16 arrays (float32 math). Reference: NumpyBackend.sigmoid / sigmoid_backward.
// Loaded by gnn/backend/cuda.py with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

namespace {

// 0.5 tanh(x / 2) + 0.5 equals the logistic function and never overflows: |x| = 1e4 gives exactly 0 or 1.
__device__ __forceinline__ float sigmoid_of(float x) { return 0.5f * tanhf(0.5f * x) + 0.5f; }

// Same operation order as the reference ((1 - y) * y * gy), so float32 results match it bit for bit.
__device__ __forceinline__ float sigmoid_grad_of(float y, float gy) { return (1.0f - y) * y * gy; }

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ULL) == 0ULL;
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__half* p, float v) { *p = __float2half_rn(v); }

// A 16-byte pack: 4 floats (float4) or 8 halves (uint4 holding 4 half pairs), loaded and stored in one
// instruction. `p` must be 16-byte aligned. Stores go through __stwb (the default write-back policy),
// as in softmax_cross_entropy.cu, where a plain `*(float4*)p = ...` was split into scalar stores.
template <typename T>
struct Pack;

template <>
struct Pack<float> {
    static constexpr int size = 4;
    static __device__ __forceinline__ void load(const float* p, float (&v)[4]) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        v[0] = q.x;
        v[1] = q.y;
        v[2] = q.z;
        v[3] = q.w;
    }
    static __device__ __forceinline__ void store(float* p, const float (&v)[4]) {
        __stwb(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
    }
};

// Each 32-bit word holds a half pair: element 2k in the low 16 bits, 2k + 1 in the high (little endian).
__device__ __forceinline__ void unpack_halves(unsigned int w, float& lo, float& hi) {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

__device__ __forceinline__ unsigned int pack_halves(float lo, float hi) {
    const unsigned int l = __half_as_ushort(__float2half_rn(lo));
    const unsigned int h = __half_as_ushort(__float2half_rn(hi));
    return l | (h << 16);
}

template <>
struct Pack<__half> {
    static constexpr int size = 8;
    static __device__ __forceinline__ void load(const __half* p, float (&v)[8]) {
        const uint4 q = *reinterpret_cast<const uint4*>(p);
        unpack_halves(q.x, v[0], v[1]);
        unpack_halves(q.y, v[2], v[3]);
        unpack_halves(q.z, v[4], v[5]);
        unpack_halves(q.w, v[6], v[7]);
    }
    static __device__ __forceinline__ void store(__half* p, const float (&v)[8]) {
        uint4 q;
        q.x = pack_halves(v[0], v[1]);
        q.y = pack_halves(v[2], v[3]);
        q.z = pack_halves(v[4], v[5]);
        q.w = pack_halves(v[6], v[7]);
        __stwb(reinterpret_cast<uint4*>(p), q);
    }
};

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
