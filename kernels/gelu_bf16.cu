// bfloat16 entry points of kernels/gelu.cu (same templates, float32 math), in a module of their own
// so that only a bfloat16 launch needs <cuda_bf16.h>. Reference: gnn/backend/fused/gelu.py on
// bfloat16 (float32 math, one rounding).

#define GNN_BF16 1
#include "gelu.cu"

extern "C" __global__ void __launch_bounds__(1024) bias_gelu_forward_bf16(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ bias, int has_bias,
    int approx_tanh, long long n, long long d, __nv_bfloat16* __restrict__ y) {
    bias_gelu_forward<__nv_bfloat16>(x, bias, has_bias, approx_tanh, n, d, y);
}

extern "C" __global__ void __launch_bounds__(1024) bias_gelu_backward_bf16(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ bias,
    const __nv_bfloat16* __restrict__ gy, int has_bias, int approx_tanh, long long n, long long d,
    long long chunks, int need_bias, __nv_bfloat16* __restrict__ gx, float* __restrict__ partial) {
    bias_gelu_backward<__nv_bfloat16>(x, bias, gy, has_bias, approx_tanh, n, d, chunks, need_bias,
                                      gx, partial);
}

extern "C" __global__ void __launch_bounds__(1024)
    bias_gelu_backward_bias_bf16(const float* __restrict__ partial, long long chunks, long long d,
                                 __nv_bfloat16* __restrict__ gbias) {
    bias_gelu_backward_bias<__nv_bfloat16>(partial, chunks, d, gbias);
}
