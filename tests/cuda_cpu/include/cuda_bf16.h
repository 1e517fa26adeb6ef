// Stands in for CUDA's <cuda_bf16.h> when g++ compiles a kernel: bfloat16 as 16 bits (the high half
// of a float32), converted with round-to-nearest-even.
#ifndef GNN_CUDA_EMU_BF16_H
#define GNN_CUDA_EMU_BF16_H

#include "cuda_emu.h"

namespace gnn_emu {

inline unsigned short float_to_bf16_rn(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN: the canonical NaN CUDA returns
    // add just under half of the dropped part, plus the kept part's lowest bit: ties go to even
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<unsigned short>(x >> 16);
}

inline float bf16_to_float(unsigned short b) {
    const uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

}  // namespace gnn_emu

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(gnn_emu::float_to_bf16_rn(f)) {}
    operator float() const { return gnn_emu::bf16_to_float(__x); }
};
struct __align__(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 b;
    b.__x = u;
    return b;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    return __ushort_as_bfloat16(gnn_emu::float_to_bf16_rn(f));
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
// Round toward zero: drop the low 16 bits (NaN stays NaN).
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return __ushort_as_bfloat16(0x7fffu);
    return __ushort_as_bfloat16(static_cast<unsigned short>(x >> 16));
}
inline float __bfloat162float(__nv_bfloat16 b) { return gnn_emu::bf16_to_float(b.__x); }

#endif  // GNN_CUDA_EMU_BF16_H
