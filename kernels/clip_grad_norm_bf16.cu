// bfloat16 entry points of kernels/clip_grad_norm.cu (same templates, float32 math), in a module
// of their own so that only a bfloat16 launch needs <cuda_bf16.h>. Reference:
// gnn/backend/fused/clip_grad_norm.py on bfloat16 gradients.

#define GNN_BF16 1
#include "clip_grad_norm.cu"

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_partial_bf16(const unsigned long long* __restrict__ table, int count, int norm_inf,
                           float* __restrict__ partial) {
    clip_norm_partial<__nv_bfloat16>(table, count, norm_inf, partial);
}

extern "C" __global__ void __launch_bounds__(1024)
    clip_norm_scale_bf16(const unsigned long long* __restrict__ table, int count,
                         const float* __restrict__ partial, int parts, int norm_inf,
                         float max_norm, __nv_bfloat16* __restrict__ total) {
    clip_norm_scale<__nv_bfloat16>(table, count, partial, parts, norm_inf, max_norm, total);
}
