// ReLU's backward gx = gy * (y > 0), from the saved output y, for float32 and float16 arrays in one
// pass (CuPy's composite is a compare and a multiply: two launches and a mask array between them).
// Reference: gnn/backend/fused/relu.py (reference_backward). Loaded by gnn/backend/cuda.py with
// cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

// A multiply, not a select, as the reference does: a NaN or infinite gy gives NaN where y <= 0,
// a negative gy gives -0, and y = NaN (a NaN input) gives gy * 0.
__device__ __forceinline__ float relu_grad_of(float y, float gy) {
    return gy * (y > 0.0f ? 1.0f : 0.0f);
}

// A grid-stride loop over the n elements of the contiguous arrays.
template <typename T>
__device__ __forceinline__ void relu_backward(const T* __restrict__ y, const T* __restrict__ gy,
                                              T* __restrict__ gx, long long n) {
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    for (long long i = first; i < n; i += stride) {
        store_float(gx + i, relu_grad_of(to_float(y[i]), to_float(gy[i])));
    }
}

}  // namespace

// Launch: any grid and any block size up to 1024 (the backend uses 256 threads and a grid capped
// at a few blocks per SM); n is the element count.

extern "C" __global__ void __launch_bounds__(1024)
    relu_backward_f32(const float* __restrict__ y, const float* __restrict__ gy,
                      float* __restrict__ gx, long long n) {
    relu_backward<float>(y, gy, gx, n);
}

extern "C" __global__ void __launch_bounds__(1024)
    relu_backward_f16(const __half* __restrict__ y, const __half* __restrict__ gy,
                      __half* __restrict__ gx, long long n) {
    relu_backward<__half>(y, gy, gx, n);
}
