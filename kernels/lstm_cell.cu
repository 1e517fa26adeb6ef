// One LSTM time step, fused: the gate activations, the cell and the hidden state in one pass
// (forward), and the pre-activation gradients of all four gates in one pass (backward), for
// float32 and float16 arrays (float32 math). Gate blocks i, f, g, o as PyTorch's; a row of the gate
// arrays is [i | f | g | o], 4 * hidden wide. Reference: gnn/backend/fused/lstm.py.
//
//   lstm_cell_forward_*    pre-activation a = xw + rec + b_ih + b_hh (xw: this step's input
//                          projection, rec: h_{t-1} W_hh^T); i, f, o = sigmoid, g = tanh;
//                          c = f c_{t-1} + i g; h = o tanh(c). The activations overwrite `gates`
//                          (which may be xw itself: each thread reads its four gate values before
//                          it writes them, and no other thread touches them).
//   lstm_cell_backward_*   from the gradient reaching h_t (gy_h + gh_rec) and c_t (gc_in):
//                          gct = gc + gh o (1 - tanh(c)^2), then the pre-activation gradients
//                          di = gct g i (1 - i), df = gct c_{t-1} f (1 - f), dg = gct i (1 - g^2),
//                          do = gh tanh(c) o (1 - o), and gc_out = gct f for step t - 1. gc_out may
//                          be gc_in (each thread reads its element before writing it).
//
// The recurrent matmuls stay with cuBLAS: one per step in each direction. One thread per
// (row, column) of the (batch, hidden) state, grid-stride, so any grid is correct. Loaded with
// cupy.RawModule (NVRTC); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

// As kernels/sigmoid.cu: 0.5 tanh(x / 2) + 0.5 cannot overflow.
__device__ __forceinline__ float sigmoid_of(float x) { return 0.5f * tanhf(0.5f * x) + 0.5f; }

// Not __restrict__: gates may be xw, and both are read and written by the same thread only.
template <typename T>
__device__ __forceinline__ void lstm_cell_forward(const T* xw, const T* __restrict__ rec,
                                                  const T* __restrict__ b_ih,
                                                  const T* __restrict__ b_hh,
                                                  const T* __restrict__ c_prev, int has_rec,
                                                  int has_bias, int has_c_prev, long long batch,
                                                  long long hidden, T* gates, T* __restrict__ c,
                                                  T* __restrict__ h) {
    const long long n = batch * hidden;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
         e += stride) {
        const long long b = e / hidden;
        const long long j = e - b * hidden;
        const long long row = b * 4 * hidden + j;  // gate k of (b, j) is at row + k * hidden
        float a[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const long long at = row + k * hidden;
            float v = to_float(xw[at]);
            if (has_rec) v += to_float(rec[at]);
            if (has_bias) v += to_float(b_ih[k * hidden + j]) + to_float(b_hh[k * hidden + j]);
            a[k] = v;
        }
        const float i = sigmoid_of(a[0]);
        const float f = sigmoid_of(a[1]);
        const float g = tanhf(a[2]);
        const float o = sigmoid_of(a[3]);
        const float cp = has_c_prev ? to_float(c_prev[e]) : 0.0f;
        const float cell = f * cp + i * g;
        store_float(gates + row, i);
        store_float(gates + row + hidden, f);
        store_float(gates + row + 2 * hidden, g);
        store_float(gates + row + 3 * hidden, o);
        store_float(c + e, cell);
        store_float(h + e, o * tanhf(cell));
    }
}

// Not __restrict__: gc_out may be gc_in (read, then written, by the same thread).
template <typename T>
__device__ __forceinline__ void lstm_cell_backward(
    const T* __restrict__ gates, const T* __restrict__ c, const T* __restrict__ c_prev,
    int has_c_prev, const T* __restrict__ gy_h, const T* __restrict__ gh_rec, int has_rec,
    const T* gc_in, long long batch, long long hidden, T* gc_out, T* __restrict__ dgates) {
    const long long n = batch * hidden;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
         e += stride) {
        const long long b = e / hidden;
        const long long j = e - b * hidden;
        const long long row = b * 4 * hidden + j;
        const float i = to_float(gates[row]);
        const float f = to_float(gates[row + hidden]);
        const float g = to_float(gates[row + 2 * hidden]);
        const float o = to_float(gates[row + 3 * hidden]);
        const float tc = tanhf(to_float(c[e]));
        float gh = to_float(gy_h[e]);
        if (has_rec) gh += to_float(gh_rec[e]);
        const float gct = to_float(gc_in[e]) + gh * o * (1.0f - tc * tc);
        const float cp = has_c_prev ? to_float(c_prev[e]) : 0.0f;
        store_float(dgates + row, gct * g * (i * (1.0f - i)));
        store_float(dgates + row + hidden, gct * cp * (f * (1.0f - f)));
        store_float(dgates + row + 2 * hidden, gct * i * (1.0f - g * g));
        store_float(dgates + row + 3 * hidden, gh * tc * (o * (1.0f - o)));
        store_float(gc_out + e, gct * f);
    }
}

}  // namespace

// Launch: any grid, any block up to 1024 threads (the backend: 256 threads, a grid of at most a few
// blocks per SM). All arrays C-contiguous: xw, gates, dgates (batch, 4 * hidden); the rest (batch,
// hidden); biases (4 * hidden). An absent operand (has_* = 0) gets any array of the type (unread).

extern "C" __global__ void __launch_bounds__(1024)
    lstm_cell_forward_f32(const float* xw, const float* __restrict__ rec,
                          const float* __restrict__ b_ih, const float* __restrict__ b_hh,
                          const float* __restrict__ c_prev, int has_rec, int has_bias,
                          int has_c_prev, long long batch, long long hidden, float* gates,
                          float* __restrict__ c, float* __restrict__ h) {
    lstm_cell_forward<float>(xw, rec, b_ih, b_hh, c_prev, has_rec, has_bias, has_c_prev, batch,
                             hidden, gates, c, h);
}

extern "C" __global__ void __launch_bounds__(1024)
    lstm_cell_forward_f16(const __half* xw, const __half* __restrict__ rec,
                          const __half* __restrict__ b_ih, const __half* __restrict__ b_hh,
                          const __half* __restrict__ c_prev, int has_rec, int has_bias,
                          int has_c_prev, long long batch, long long hidden, __half* gates,
                          __half* __restrict__ c, __half* __restrict__ h) {
    lstm_cell_forward<__half>(xw, rec, b_ih, b_hh, c_prev, has_rec, has_bias, has_c_prev, batch,
                              hidden, gates, c, h);
}

extern "C" __global__ void __launch_bounds__(1024)
    lstm_cell_backward_f32(const float* __restrict__ gates, const float* __restrict__ c,
                           const float* __restrict__ c_prev, int has_c_prev,
                           const float* __restrict__ gy_h, const float* __restrict__ gh_rec,
                           int has_rec, const float* gc_in, long long batch, long long hidden,
                           float* gc_out, float* __restrict__ dgates) {
    lstm_cell_backward<float>(gates, c, c_prev, has_c_prev, gy_h, gh_rec, has_rec, gc_in, batch,
                              hidden, gc_out, dgates);
}

extern "C" __global__ void __launch_bounds__(1024)
    lstm_cell_backward_f16(const __half* __restrict__ gates, const __half* __restrict__ c,
                           const __half* __restrict__ c_prev, int has_c_prev,
                           const __half* __restrict__ gy_h, const __half* __restrict__ gh_rec,
                           int has_rec, const __half* gc_in, long long batch, long long hidden,
                           __half* gc_out, __half* __restrict__ dgates) {
    lstm_cell_backward<__half>(gates, c, c_prev, has_c_prev, gy_h, gh_rec, has_rec, gc_in, batch,
                               hidden, gc_out, dgates);
}
