// bfloat16 entry points of kernels/optim.cu (same templates, float32 math), in a module of their own
// so that only a bfloat16 launch needs <cuda_bf16.h>. Reference: gnn/backend/fused/optim.py.

#define GNN_BF16 1
#include "optim.cu"

extern "C" __global__ void __launch_bounds__(1024) adam_step_bf16(
    __nv_bfloat16* __restrict__ param, const __nv_bfloat16* __restrict__ grad, __nv_bfloat16* __restrict__ exp_avg,
    __nv_bfloat16* __restrict__ exp_avg_sq, __nv_bfloat16* __restrict__ max_exp_avg_sq, const double* __restrict__ lr,
    long long* __restrict__ clock, long long n, double beta1, double beta2, double eps,
    double weight_decay, int maximize, int amsgrad, int decoupled) {
    adam_step<__nv_bfloat16>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, clock, n, beta1, beta2, eps,
                   weight_decay, maximize, amsgrad, decoupled);
}

extern "C" __global__ void __launch_bounds__(1024) sgd_step_bf16(
    __nv_bfloat16* __restrict__ param, const __nv_bfloat16* __restrict__ grad, __nv_bfloat16* __restrict__ momentum_buffer,
    const double* __restrict__ lr, long long n, double momentum, double dampening,
    double weight_decay, int maximize, int nesterov, int new_buffer) {
    sgd_step<__nv_bfloat16>(param, grad, momentum_buffer, lr, n, momentum, dampening, weight_decay, maximize,
                  nesterov, new_buffer);
}

extern "C" __global__ void __launch_bounds__(1024) rmsprop_step_bf16(
    __nv_bfloat16* __restrict__ param, const __nv_bfloat16* __restrict__ grad, __nv_bfloat16* __restrict__ square_avg,
    __nv_bfloat16* __restrict__ grad_avg, __nv_bfloat16* __restrict__ momentum_buffer, const double* __restrict__ lr,
    long long n, double alpha, double eps, double weight_decay, double momentum, int maximize,
    int centered) {
    rmsprop_step<__nv_bfloat16>(param, grad, square_avg, grad_avg, momentum_buffer, lr, n, alpha, eps,
                      weight_decay, momentum, maximize, centered);
}
