// bfloat16 entry points of kernels/softmax_cross_entropy.cu (same templates, float32 math), in a
// module of their own so that only a bfloat16 launch needs <cuda_bf16.h>. Launch rules as there.

#define GNN_BF16 1
#include "softmax_cross_entropy.cu"

// Packs of eight 16-bit values: one resident 1024-thread block, as softmax_ce_forward_f16.
extern "C" __global__ void __launch_bounds__(1024, 1) softmax_ce_forward_bf16(
    const __nv_bfloat16* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    long long n, long long c, long long ignore_index, float eps, float* __restrict__ lse,
    float* __restrict__ row_loss, unsigned long long* err) {
    softmax_ce_forward<__nv_bfloat16>(logits, target, weight, weight_sum, has_weight, n, c,
                                      ignore_index, eps, lse, row_loss, err);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_reduce_bf16(
    const float* __restrict__ row_loss, const long long* __restrict__ target,
    const float* __restrict__ weight, int has_weight, long long n, long long c,
    long long ignore_index, int mean, __nv_bfloat16* __restrict__ loss, float* __restrict__ denom) {
    softmax_ce_reduce<__nv_bfloat16>(row_loss, target, weight, has_weight, n, c, ignore_index, mean,
                                     loss, denom);
}

extern "C" __global__ void __launch_bounds__(1024) softmax_ce_backward_bf16(
    const __nv_bfloat16* __restrict__ logits, const long long* __restrict__ target,
    const float* __restrict__ weight, const float* __restrict__ weight_sum, int has_weight,
    const float* __restrict__ lse, const float* __restrict__ gloss, long long gloss_stride,
    const float* __restrict__ denom, int mean, long long n, long long c, long long ignore_index,
    float eps, __nv_bfloat16* __restrict__ glogits, unsigned long long* err) {
    softmax_ce_backward<__nv_bfloat16>(logits, target, weight, weight_sum, has_weight, lse, gloss,
                                       gloss_stride, denom, mean, n, c, ignore_index, eps, glogits,
                                       err);
}
