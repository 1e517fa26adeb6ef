// Optimizer steps over a parameter group's flat buffers, one launch per group and step: Adam/AdamW,
// SGD (momentum, dampening, Nesterov) and RMSprop (momentum, centered), for float32 and float16
// parameters (float32 math; state in the parameter's dtype). Reference: gnn/backend/fused/optim.py.
// Loaded by gnn/backend/cuda.py with cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.
//
// The learning rate (`lr`, one double) and Adam's step count (`clock`) are read from device memory,
// so a launch carries no per-step host value and a captured CUDA graph can replay it: the host
// rewrites lr only when a scheduler changes it, and Adam's kernel counts its own steps (clock[0] is
// the number of steps done; the last block to finish adds one, see count_step).

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

// NumPy's maximum: NaN if either is NaN (fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }

// After the loop: every block's threads have read clock[0]; the last block to get here advances it
// and resets the ticket for the next launch. Blocks never wait for each other.
__device__ __forceinline__ void count_step(long long* clock, long long step) {
    __syncthreads();  // this block's reads of clock[0] are done
    if (threadIdx.x == 0) {
        __threadfence();
        unsigned long long* ticket = reinterpret_cast<unsigned long long*>(clock + 1);
        const unsigned long long done = atomicAdd(ticket, 1ULL);
        if (done == static_cast<unsigned long long>(gridDim.x) - 1ULL) {
            clock[0] = step;
            *ticket = 0ULL;
        }
    }
}

// The operation order of each update is the reference's, one rounding per operation, so the float32
// results match it up to the hardware's fused multiply-adds.
template <typename T>
__device__ __forceinline__ void adam_step(T* __restrict__ param, const T* __restrict__ grad,
                                          T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq,
                                          T* __restrict__ max_exp_avg_sq, const double* __restrict__ lr_at,
                                          long long* __restrict__ clock, long long n, double beta1,
                                          double beta2, double eps, double weight_decay, int maximize,
                                          int amsgrad, int decoupled) {
    const double lr = *lr_at;
    const long long step = clock[0] + 1;
    // Host-side constants of the reference, computed in double and rounded once to float.
    const float one_minus_beta1 = static_cast<float>(1.0 - beta1);
    const float beta2f = static_cast<float>(beta2);
    const float one_minus_beta2 = static_cast<float>(1.0 - beta2);
    const float root_correction2 = static_cast<float>(sqrt(1.0 - pow(beta2, static_cast<double>(step))));
    const float step_size = static_cast<float>(lr / (1.0 - pow(beta1, static_cast<double>(step))));
    const float epsf = static_cast<float>(eps);
    const float wd = static_cast<float>(weight_decay);
    const float shrink = static_cast<float>(1.0 - lr * weight_decay);
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = to_float(grad[i]);
        if (maximize) g = -g;
        float x = to_float(param[i]);
        if (weight_decay != 0.0) {
            if (decoupled) {
                x = x * shrink;
            } else {
                g = x * wd + g;
            }
        }
        float m = to_float(exp_avg[i]);
        m = m + (g - m) * one_minus_beta1;
        float v = to_float(exp_avg_sq[i]);
        v = v * beta2f + (g * g) * one_minus_beta2;
        store_float(exp_avg + i, m);
        store_float(exp_avg_sq + i, v);
        if (amsgrad) {
            v = nan_max(to_float(max_exp_avg_sq[i]), v);
            store_float(max_exp_avg_sq + i, v);
        }
        const float denom = sqrtf(v) / root_correction2 + epsf;
        store_float(param + i, x - (m / denom) * step_size);
    }
    count_step(clock, step);
}

template <typename T>
__device__ __forceinline__ void sgd_step(T* __restrict__ param, const T* __restrict__ grad,
                                         T* __restrict__ momentum_buffer, const double* __restrict__ lr_at,
                                         long long n, double momentum, double dampening,
                                         double weight_decay, int maximize, int nesterov, int new_buffer) {
    const float lr = static_cast<float>(*lr_at);
    const float mom = static_cast<float>(momentum);
    const float keep = static_cast<float>(1.0 - dampening);
    const float wd = static_cast<float>(weight_decay);
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float d = to_float(grad[i]);
        if (maximize) d = -d;
        const float x = to_float(param[i]);
        if (weight_decay != 0.0) d = x * wd + d;
        if (momentum != 0.0) {
            float buf = d;  // the first step's buffer is the direction itself
            if (!new_buffer) {
                buf = to_float(momentum_buffer[i]) * mom + (dampening != 0.0 ? d * keep : d);
            }
            store_float(momentum_buffer + i, buf);
            d = nesterov ? buf * mom + d : buf;
        }
        store_float(param + i, x - d * lr);
    }
}

template <typename T>
__device__ __forceinline__ void rmsprop_step(T* __restrict__ param, const T* __restrict__ grad,
                                             T* __restrict__ square_avg, T* __restrict__ grad_avg,
                                             T* __restrict__ momentum_buffer, const double* __restrict__ lr_at,
                                             long long n, double alpha, double eps, double weight_decay,
                                             double momentum, int maximize, int centered) {
    const float lr = static_cast<float>(*lr_at);
    const float alphaf = static_cast<float>(alpha);
    const float one_minus_alpha = static_cast<float>(1.0 - alpha);
    const float epsf = static_cast<float>(eps);
    const float wd = static_cast<float>(weight_decay);
    const float mom = static_cast<float>(momentum);
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = to_float(grad[i]);
        if (maximize) g = -g;
        float x = to_float(param[i]);
        if (weight_decay != 0.0) g = x * wd + g;
        const float sq = to_float(square_avg[i]) * alphaf + (g * g) * one_minus_alpha;
        store_float(square_avg + i, sq);
        float avg;
        if (centered) {
            float ga = to_float(grad_avg[i]);
            ga = ga + (g - ga) * one_minus_alpha;
            store_float(grad_avg + i, ga);
            avg = sqrtf(sq - ga * ga);
        } else {
            avg = sqrtf(sq);
        }
        float d = g / (avg + epsf);
        if (momentum > 0.0) {
            d = to_float(momentum_buffer[i]) * mom + d;
            store_float(momentum_buffer + i, d);
        }
        store_float(param + i, x - d * lr);
    }
}

}  // namespace

// Launch: any grid, any block size up to 1024 (the backend uses elementwise_launch: 256 threads,
// at most 8 blocks per SM); n is the element count of the flat buffers. State a launch does not use
// (max_exp_avg_sq without amsgrad, a momentum buffer without momentum, grad_avg unless centered)
// gets another buffer of the same size, never read or written.

extern "C" __global__ void __launch_bounds__(1024) adam_step_f32(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ exp_avg,
    float* __restrict__ exp_avg_sq, float* __restrict__ max_exp_avg_sq, const double* __restrict__ lr,
    long long* __restrict__ clock, long long n, double beta1, double beta2, double eps,
    double weight_decay, int maximize, int amsgrad, int decoupled) {
    adam_step<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, clock, n, beta1, beta2, eps,
                   weight_decay, maximize, amsgrad, decoupled);
}

extern "C" __global__ void __launch_bounds__(1024) sgd_step_f32(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ momentum_buffer,
    const double* __restrict__ lr, long long n, double momentum, double dampening,
    double weight_decay, int maximize, int nesterov, int new_buffer) {
    sgd_step<float>(param, grad, momentum_buffer, lr, n, momentum, dampening, weight_decay, maximize,
                  nesterov, new_buffer);
}

extern "C" __global__ void __launch_bounds__(1024) rmsprop_step_f32(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ square_avg,
    float* __restrict__ grad_avg, float* __restrict__ momentum_buffer, const double* __restrict__ lr,
    long long n, double alpha, double eps, double weight_decay, double momentum, int maximize,
    int centered) {
    rmsprop_step<float>(param, grad, square_avg, grad_avg, momentum_buffer, lr, n, alpha, eps,
                      weight_decay, momentum, maximize, centered);
}

extern "C" __global__ void __launch_bounds__(1024) adam_step_f16(
    __half* __restrict__ param, const __half* __restrict__ grad, __half* __restrict__ exp_avg,
    __half* __restrict__ exp_avg_sq, __half* __restrict__ max_exp_avg_sq, const double* __restrict__ lr,
    long long* __restrict__ clock, long long n, double beta1, double beta2, double eps,
    double weight_decay, int maximize, int amsgrad, int decoupled) {
    adam_step<__half>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, clock, n, beta1, beta2, eps,
                   weight_decay, maximize, amsgrad, decoupled);
}

extern "C" __global__ void __launch_bounds__(1024) sgd_step_f16(
    __half* __restrict__ param, const __half* __restrict__ grad, __half* __restrict__ momentum_buffer,
    const double* __restrict__ lr, long long n, double momentum, double dampening,
    double weight_decay, int maximize, int nesterov, int new_buffer) {
    sgd_step<__half>(param, grad, momentum_buffer, lr, n, momentum, dampening, weight_decay, maximize,
                  nesterov, new_buffer);
}

extern "C" __global__ void __launch_bounds__(1024) rmsprop_step_f16(
    __half* __restrict__ param, const __half* __restrict__ grad, __half* __restrict__ square_avg,
    __half* __restrict__ grad_avg, __half* __restrict__ momentum_buffer, const double* __restrict__ lr,
    long long n, double alpha, double eps, double weight_decay, double momentum, int maximize,
    int centered) {
    rmsprop_step<__half>(param, grad, square_avg, grad_avg, momentum_buffer, lr, n, alpha, eps,
                      weight_decay, momentum, maximize, centered);
}
