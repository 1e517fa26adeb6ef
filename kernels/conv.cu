// Convolution and max-pooling helpers (NCHW): im2col, col2im, the matmul output's layout change
// with the bias, and max pooling forward (value and argmax) and backward. float32 and float16
// data, float32 sums. Reference: gnn/backend/fused/conv.py (reference_*).
//
//   conv_im2col_*        cols (C*kh*kw, N*oh*ow) from x (N, C, H, W); zero where a tap is padding.
//   conv_col2im_*        x (N, C, H, W): each pixel sums the columns of the taps that read it.
//   conv_to_image_*      y (N, O, P) = y2 (O, N*P) transposed, plus bias[o] when has_bias.
//   conv_to_rows_*       gy2 (O, N*P) = gy (N, O, P) transposed, and when need_bias the bias
//                        gradient gbias[o] = the sum of gy2's row o (one block per channel).
//   max_pool_forward_*   y (N, C, oh, ow): each window's max; idx: its tap i*kw + j (the first
//                        maximum, a NaN beats every number; padding is -inf).
//   max_pool_backward_*  gx (N, C, H, W): each pixel sums gy over the windows whose idx is it.
//
// Every kernel is a grid-stride loop over its outputs, each written by one thread: the sums run in
// tap order, no atomics, the same from run to run (the bias sums of conv_to_rows: for a given
// block size). The window geometry is 14 ints: input n, c, h, w; kernel kh, kw; stride sh, sw;
// top/left padding pt, pl; dilation dh, dw; window positions oh, ow. Loaded with
// cupy.RawModule (NVRTC 12.9 compiles it); ci/check_kernels.sh compiles it with nvcc.

#include <cuda_fp16.h>

#include "common.cuh"

namespace {

using gnn::store_float;
using gnn::to_float;

#define GNN_WINDOW_PARAMS                                                                  \
    int n, int c, int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, \
        int oh, int ow
#define GNN_WINDOW_ARGS n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow

__device__ __forceinline__ long long first_index() {
    return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_stride() {
    return static_cast<long long>(blockDim.x) * gridDim.x;
}

// The window position that tap t (of stride s, dilation d) reads padded coordinate q from, or -1.
__device__ __forceinline__ int position(int q, int t, int s, int d, int positions) {
    const int r = q - t * d;
    if (r < 0 || r % s != 0) return -1;
    const int o = r / s;
    return o < positions ? o : -1;
}

template <typename T>
__device__ __forceinline__ void im2col(const T* __restrict__ x, GNN_WINDOW_PARAMS,
                                       T* __restrict__ cols) {
    const long long total = static_cast<long long>(c) * kh * kw * n * oh * ow;
    for (long long e = first_index(); e < total; e += grid_stride()) {
        long long q = e;
        const int ox = static_cast<int>(q % ow);
        q /= ow;
        const int oy = static_cast<int>(q % oh);
        q /= oh;
        const long long ni = q % n;
        q /= n;
        const int j = static_cast<int>(q % kw);
        q /= kw;
        const int i = static_cast<int>(q % kh);
        const long long ci = q / kh;
        const int ih = oy * sh - pt + i * dh;
        const int iw = ox * sw - pl + j * dw;
        float v = 0.0f;
        if (ih >= 0 && ih < h && iw >= 0 && iw < w) {
            v = to_float(x[((ni * c + ci) * h + ih) * w + iw]);
        }
        store_float(cols + e, v);
    }
}

template <typename T>
__device__ __forceinline__ void col2im(const T* __restrict__ cols, GNN_WINDOW_PARAMS,
                                       T* __restrict__ x) {
    const long long total = static_cast<long long>(n) * c * h * w;
    const long long positions = static_cast<long long>(n) * oh * ow;
    for (long long e = first_index(); e < total; e += grid_stride()) {
        const int iw = static_cast<int>(e % w);
        const int ih = static_cast<int>((e / w) % h);
        const long long ci = (e / (static_cast<long long>(w) * h)) % c;
        const long long ni = e / (static_cast<long long>(w) * h * c);
        float s = 0.0f;
        for (int i = 0; i < kh; ++i) {
            const int oy = position(ih + pt, i, sh, dh, oh);
            if (oy < 0) continue;
            for (int j = 0; j < kw; ++j) {
                const int ox = position(iw + pl, j, sw, dw, ow);
                if (ox < 0) continue;
                const long long row = (ci * kh + i) * kw + j;
                s += to_float(cols[row * positions + (ni * oh + oy) * ow + ox]);
            }
        }
        store_float(x + e, s);
    }
}

template <typename T>
__device__ __forceinline__ void to_image(const T* __restrict__ y2, const T* __restrict__ bias,
                                         int has_bias, long long n, long long o, long long p,
                                         T* __restrict__ y) {
    const long long total = n * o * p;
    for (long long e = first_index(); e < total; e += grid_stride()) {
        const long long pi = e % p;
        const long long oi = (e / p) % o;
        const long long ni = e / (p * o);
        float v = to_float(y2[oi * n * p + ni * p + pi]);
        if (has_bias) v += to_float(bias[oi]);
        store_float(y + e, v);
    }
}

// Block b (grid-stride) takes channel b: its threads copy the channel's N*P values with a block
// stride, summing them; thread 0 then adds the per-thread sums in thread order (the bias gradient).
template <typename T>
__device__ __forceinline__ void to_rows(const T* __restrict__ gy, long long n, long long o,
                                        long long p, int need_bias, T* __restrict__ gy2,
                                        T* __restrict__ gbias) {
    __shared__ float sm[256];
    const long long per_channel = n * p;
    for (long long oi = blockIdx.x; oi < o; oi += gridDim.x) {
        float s = 0.0f;
        for (long long q = threadIdx.x; q < per_channel; q += blockDim.x) {
            const T v = gy[((q / p) * o + oi) * p + q % p];
            gy2[oi * per_channel + q] = v;
            s += to_float(v);
        }
        if (!need_bias) continue;  // the same for every thread: no barrier is skipped by some
        __syncthreads();           // thread 0 has read the previous channel's sums
        sm[threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.x != 0) continue;
        float t = 0.0f;
        for (unsigned int i = 0; i < blockDim.x; ++i) t += sm[i];
        store_float(gbias + oi, t);
    }
}

template <typename T>
__device__ __forceinline__ void max_pool_forward(const T* __restrict__ x, GNN_WINDOW_PARAMS,
                                                 int* __restrict__ idx, T* __restrict__ y) {
    const long long total = static_cast<long long>(n) * c * oh * ow;
    for (long long e = first_index(); e < total; e += grid_stride()) {
        const int ox = static_cast<int>(e % ow);
        const int oy = static_cast<int>((e / ow) % oh);
        const long long plane = e / (static_cast<long long>(ow) * oh);  // ni * c + ci
        float best = __int_as_float(static_cast<int>(0xff800000u));  // -inf (NVRTC has no INFINITY)
        int arg = 0;
        for (int i = 0; i < kh; ++i) {
            const int ih = oy * sh - pt + i * dh;
            if (ih < 0 || ih >= h) continue;
            for (int j = 0; j < kw; ++j) {
                const int iw = ox * sw - pl + j * dw;
                if (iw < 0 || iw >= w) continue;
                const float v = to_float(x[(plane * h + ih) * w + iw]);
                if (v > best || (v != v && best == best)) {  // v != v: a NaN
                    best = v;
                    arg = i * kw + j;
                }
            }
        }
        idx[e] = arg;
        store_float(y + e, best);
    }
}

template <typename T>
__device__ __forceinline__ void max_pool_backward(const T* __restrict__ gy,
                                                  const int* __restrict__ idx, GNN_WINDOW_PARAMS,
                                                  T* __restrict__ gx) {
    const long long total = static_cast<long long>(n) * c * h * w;
    for (long long e = first_index(); e < total; e += grid_stride()) {
        const int iw = static_cast<int>(e % w);
        const int ih = static_cast<int>((e / w) % h);
        const long long plane = e / (static_cast<long long>(w) * h);  // ni * c + ci
        float s = 0.0f;
        for (int i = 0; i < kh; ++i) {
            const int oy = position(ih + pt, i, sh, dh, oh);
            if (oy < 0) continue;
            for (int j = 0; j < kw; ++j) {
                const int ox = position(iw + pl, j, sw, dw, ow);
                if (ox < 0) continue;
                const long long k = (plane * oh + oy) * ow + ox;
                if (idx[k] == i * kw + j) s += to_float(gy[k]);
            }
        }
        store_float(gx + e, s);
    }
}

}  // namespace

// Launch shapes (gnn/backend/fused/conv.py): any grid and block up to 256 threads (grid-stride).
// Every array is C-contiguous; bias is read only when has_bias, gbias written only when need_bias.

extern "C" __global__ void __launch_bounds__(256) conv_im2col_f32(
    const float* __restrict__ x, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow, float* __restrict__ cols) {
    im2col<float>(x, GNN_WINDOW_ARGS, cols);
}

extern "C" __global__ void __launch_bounds__(256) conv_im2col_f16(
    const __half* __restrict__ x, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow, __half* __restrict__ cols) {
    im2col<__half>(x, GNN_WINDOW_ARGS, cols);
}

extern "C" __global__ void __launch_bounds__(256) conv_col2im_f32(
    const float* __restrict__ cols, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow, float* __restrict__ x) {
    col2im<float>(cols, GNN_WINDOW_ARGS, x);
}

extern "C" __global__ void __launch_bounds__(256) conv_col2im_f16(
    const __half* __restrict__ cols, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow, __half* __restrict__ x) {
    col2im<__half>(cols, GNN_WINDOW_ARGS, x);
}

extern "C" __global__ void __launch_bounds__(256) conv_to_image_f32(
    const float* __restrict__ y2, const float* __restrict__ bias, int has_bias,
    long long n, long long o, long long p, float* __restrict__ y) {
    to_image<float>(y2, bias, has_bias, n, o, p, y);
}

extern "C" __global__ void __launch_bounds__(256) conv_to_image_f16(
    const __half* __restrict__ y2, const __half* __restrict__ bias, int has_bias,
    long long n, long long o, long long p, __half* __restrict__ y) {
    to_image<__half>(y2, bias, has_bias, n, o, p, y);
}

extern "C" __global__ void __launch_bounds__(256) conv_to_rows_f32(
    const float* __restrict__ gy, long long n, long long o, long long p, int need_bias,
    float* __restrict__ gy2, float* __restrict__ gbias) {
    to_rows<float>(gy, n, o, p, need_bias, gy2, gbias);
}

extern "C" __global__ void __launch_bounds__(256) conv_to_rows_f16(
    const __half* __restrict__ gy, long long n, long long o, long long p, int need_bias,
    __half* __restrict__ gy2, __half* __restrict__ gbias) {
    to_rows<__half>(gy, n, o, p, need_bias, gy2, gbias);
}

extern "C" __global__ void __launch_bounds__(256) max_pool_forward_f32(
    const float* __restrict__ x, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow,
    int* __restrict__ idx, float* __restrict__ y) {
    max_pool_forward<float>(x, GNN_WINDOW_ARGS, idx, y);
}

extern "C" __global__ void __launch_bounds__(256) max_pool_forward_f16(
    const __half* __restrict__ x, int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow,
    int* __restrict__ idx, __half* __restrict__ y) {
    max_pool_forward<__half>(x, GNN_WINDOW_ARGS, idx, y);
}

extern "C" __global__ void __launch_bounds__(256) max_pool_backward_f32(
    const float* __restrict__ gy, const int* __restrict__ idx,
    int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow,
    float* __restrict__ gx) {
    max_pool_backward<float>(gy, idx, GNN_WINDOW_ARGS, gx);
}

extern "C" __global__ void __launch_bounds__(256) max_pool_backward_f16(
    const __half* __restrict__ gy, const int* __restrict__ idx,
    int n, int c, int h, int w, int kh, int kw, int sh, int sw,
    int pt, int pl, int dh, int dw, int oh, int ow,
    __half* __restrict__ gx) {
    max_pool_backward<__half>(gy, idx, GNN_WINDOW_ARGS, gx);
}
