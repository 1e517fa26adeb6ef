// Helpers shared by gnn's kernels: float conversions and 16-byte packs of float / half / bfloat16.
// Included by the .cu files; gnn/backend/cuda.py pastes it into their source before NVRTC sees it
// (so CuPy's compile cache, keyed on the source text, sees a change here too).

#ifndef GNN_KERNELS_COMMON_CUH
#define GNN_KERNELS_COMMON_CUH

#include <cuda_fp16.h>
// bfloat16 only in the *_bf16.cu modules (GNN_BF16): CuPy has no bfloat16 arrays, and a CUDA install
// whose cuda_bf16.h does not match the cuda_fp16.h NVRTC finds must not break the other modules.
#ifdef GNN_BF16
#include <cuda_bf16.h>
#endif

namespace gnn {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__half* p, float v) { *p = __float2half_rn(v); }
#ifdef GNN_BF16
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
#endif

// A 16-byte pack: 4 floats (float4) or 8 halves (uint4 holding 4 half pairs), loaded and stored in one
// instruction. `p` must be 16-byte aligned. Stores go through __stwb (the default write-back policy)
// because a plain `*(float4*)p = ...` was split into scalar stores by nvcc 13.
template <typename T>
struct Pack;

template <>
struct Pack<float> {
    static constexpr int size = 4;
    static __device__ __forceinline__ void load(const float* p, float (&v)[4]) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        v[0] = q.x;
        v[1] = q.y;
        v[2] = q.z;
        v[3] = q.w;
    }
    static __device__ __forceinline__ void store(float* p, const float (&v)[4]) {
        __stwb(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
    }
};

// Each 32-bit word holds a half pair: element 2k in the low 16 bits, 2k + 1 in the high (little endian).
__device__ __forceinline__ void unpack_halves(unsigned int w, float& lo, float& hi) {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

__device__ __forceinline__ unsigned int pack_halves(float lo, float hi) {
    const unsigned int l = __half_as_ushort(__float2half_rn(lo));
    const unsigned int h = __half_as_ushort(__float2half_rn(hi));
    return l | (h << 16);
}

template <>
struct Pack<__half> {
    static constexpr int size = 8;
    static __device__ __forceinline__ void load(const __half* p, float (&v)[8]) {
        const uint4 q = *reinterpret_cast<const uint4*>(p);
        unpack_halves(q.x, v[0], v[1]);
        unpack_halves(q.y, v[2], v[3]);
        unpack_halves(q.z, v[4], v[5]);
        unpack_halves(q.w, v[6], v[7]);
    }
    static __device__ __forceinline__ void store(__half* p, const float (&v)[8]) {
        uint4 q;
        q.x = pack_halves(v[0], v[1]);
        q.y = pack_halves(v[2], v[3]);
        q.z = pack_halves(v[4], v[5]);
        q.w = pack_halves(v[6], v[7]);
        __stwb(reinterpret_cast<uint4*>(p), q);
    }
};

#ifdef GNN_BF16
// bfloat16 pairs, laid out as the half pairs above: element 2k in the low 16 bits.
__device__ __forceinline__ void unpack_bf16s(unsigned int w, float& lo, float& hi) {
    lo = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w & 0xffffu)));
    hi = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w >> 16)));
}

__device__ __forceinline__ unsigned int pack_bf16s(float lo, float hi) {
    const unsigned int l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
    const unsigned int h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
    return l | (h << 16);
}

template <>
struct Pack<__nv_bfloat16> {
    static constexpr int size = 8;
    static __device__ __forceinline__ void load(const __nv_bfloat16* p, float (&v)[8]) {
        const uint4 q = *reinterpret_cast<const uint4*>(p);
        unpack_bf16s(q.x, v[0], v[1]);
        unpack_bf16s(q.y, v[2], v[3]);
        unpack_bf16s(q.z, v[4], v[5]);
        unpack_bf16s(q.w, v[6], v[7]);
    }
    static __device__ __forceinline__ void store(__nv_bfloat16* p, const float (&v)[8]) {
        uint4 q;
        q.x = pack_bf16s(v[0], v[1]);
        q.y = pack_bf16s(v[2], v[3]);
        q.z = pack_bf16s(v[4], v[5]);
        q.w = pack_bf16s(v[6], v[7]);
        __stwb(reinterpret_cast<uint4*>(p), q);
    }
};
#endif  // GNN_BF16

}  // namespace gnn

#endif  // GNN_KERNELS_COMMON_CUH
