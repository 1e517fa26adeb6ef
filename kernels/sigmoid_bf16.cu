// bfloat16 entry points of kernels/sigmoid.cu (same templates, float32 math), in a module of their
// own so that only a bfloat16 launch needs <cuda_bf16.h>. Reference: NumpyBackend.sigmoid /
// sigmoid_backward on bfloat16 (float32 math, one rounding).

#define GNN_BF16 1
#include "sigmoid.cu"

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_forward_bf16(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                         long long n) {
    sigmoid_forward<__nv_bfloat16>(x, y, n);
}

extern "C" __global__ void __launch_bounds__(1024)
    sigmoid_backward_bf16(const __nv_bfloat16* __restrict__ y, const __nv_bfloat16* __restrict__ gy,
                          __nv_bfloat16* __restrict__ gx, long long n) {
    sigmoid_backward<__nv_bfloat16>(y, gy, gx, n);
}
