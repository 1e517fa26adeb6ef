// bfloat16 entry points of kernels/layer_norm.cu (same templates, float32 math), in a module of
// their own so that only a bfloat16 launch needs <cuda_bf16.h>. Reference:
// NumpyBackend.layer_norm_forward / layer_norm_backward on bfloat16 (float32 math, one rounding).

#define GNN_BF16 1
#include "layer_norm.cu"

extern "C" __global__ void __launch_bounds__(1024) layer_norm_forward_bf16(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ weight,
    const __nv_bfloat16* __restrict__ bias, int has_weight, int has_bias, long long n, long long d,
    float eps, __nv_bfloat16* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd) {
    layer_norm_forward<__nv_bfloat16>(x, weight, bias, has_weight, has_bias, n, d, eps, y, mean,
                                      rstd);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_x_bf16(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ gy,
    const __nv_bfloat16* __restrict__ weight, int has_weight, const float* __restrict__ mean,
    const float* __restrict__ rstd, long long n, long long d, __nv_bfloat16* __restrict__ gx) {
    layer_norm_backward_x<__nv_bfloat16>(x, gy, weight, has_weight, mean, rstd, n, d, gx);
}

extern "C" __global__ void __launch_bounds__(1024) layer_norm_backward_wb_bf16(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ gy,
    const float* __restrict__ mean, const float* __restrict__ rstd, long long n, long long d,
    int need_weight, int need_bias, __nv_bfloat16* __restrict__ gweight,
    __nv_bfloat16* __restrict__ gbias) {
    layer_norm_backward_wb<__nv_bfloat16>(x, gy, mean, rstd, n, d, need_weight, need_bias, gweight,
                                          gbias);
}
