// CUDA on the CPU: lets g++ compile gnn's kernels/*.cu unchanged and run them, one host thread per
// CUDA thread, so that ThreadSanitizer sees a missing barrier and AddressSanitizer a read past a row.
// Force-included (g++ -include cuda_emu.h) ahead of the kernel source by tests/cuda_cpu/emulator.py,
// which also appends one extern "C" trampoline per kernel that calls gnn_emu::launch.
//
// Model: the blocks of a launch run one after another; the threads of a block run in parallel on a
// pool of OS threads. So `__shared__` can be `static` (one block alive at a time), __syncthreads is a
// real barrier (atomics + futex: TSan sees the atomics), and a warp shuffle is a write to
// a per-warp slot, a per-warp barrier, a read of another lane's slot. Checked, and reported as a
// failed launch instead of a wrong answer: a __syncthreads or shuffle reached from different source
// lines (divergence), a shuffle reading a lane that did not take part (exited or diverged), a
// barrier that never completes (deadlock), more than 1024 threads. Lanes of a partial last warp do
// not exist: mask bits naming them are ignored, and a shuffle reading one fails the launch.

#ifndef GNN_CUDA_EMU_H
#define GNN_CUDA_EMU_H

#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

// ---- keywords --------------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// One block is alive at a time, so block-shared memory can be a static (see the top of the file).
#define __shared__ static
#define __constant__ static

// ---- vector types ----------------------------------------------------------------------------

namespace gnn_emu {
struct Abort;
void misaligned(const void* p, int bytes, const char* type);
inline void check_aligned(const void* p, int bytes, const char* type) {
    if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) != 0) misaligned(p, bytes, type);
}
}  // namespace gnn_emu

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

// A vector load or store at an address that is not a multiple of its size faults on a GPU
// ("misaligned address"); x86 would just do it. So copying one of these from, or assigning one
// to, a misaligned address fails the launch. (The cost: they are not trivially copyable here.)
#define GNN_EMU_VECTOR4(name, T)                                                           \
    struct alignas(4 * sizeof(T)) name {                                                   \
        T x, y, z, w;                                                                      \
        name() = default;                                                                  \
        constexpr name(T x_, T y_, T z_, T w_) : x(x_), y(y_), z(z_), w(w_) {}             \
        name(const name& o) : x(o.x), y(o.y), z(o.z), w(o.w) {                             \
            gnn_emu::check_aligned(&o, sizeof(name), #name);                               \
        }                                                                                  \
        name& operator=(const name& o) {                                                   \
            gnn_emu::check_aligned(this, sizeof(name), #name);                             \
            gnn_emu::check_aligned(&o, sizeof(name), #name);                               \
            x = o.x, y = o.y, z = o.z, w = o.w;                                            \
            return *this;                                                                  \
        }                                                                                  \
    }
#define GNN_EMU_VECTOR2(name, T)                                                           \
    struct alignas(2 * sizeof(T)) name {                                                   \
        T x, y;                                                                            \
        name() = default;                                                                  \
        constexpr name(T x_, T y_) : x(x_), y(y_) {}                                       \
        name(const name& o) : x(o.x), y(o.y) { gnn_emu::check_aligned(&o, sizeof(name), #name); } \
        name& operator=(const name& o) {                                                   \
            gnn_emu::check_aligned(this, sizeof(name), #name);                             \
            gnn_emu::check_aligned(&o, sizeof(name), #name);                               \
            x = o.x, y = o.y;                                                              \
            return *this;                                                                  \
        }                                                                                  \
    }
GNN_EMU_VECTOR4(float4, float);
GNN_EMU_VECTOR4(uint4, unsigned int);
GNN_EMU_VECTOR4(int4, int);
GNN_EMU_VECTOR2(float2, float);
GNN_EMU_VECTOR2(uint2, unsigned int);
GNN_EMU_VECTOR2(int2, int);

inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) {
    return uint4{x, y, z, w};
}
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

// Per CUDA thread, set by the pool thread that runs it.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- bit casts and stores ----------------------------------------------------------------------

inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
inline float __uint_as_float(unsigned int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
inline unsigned int __float_as_uint(float f) {
    unsigned int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
inline double __longlong_as_double(long long i) {
    double d;
    memcpy(&d, &i, sizeof d);
    return d;
}
inline long long __double_as_longlong(double d) {
    long long i;
    memcpy(&i, &d, sizeof i);
    return i;
}

// Cache-policy loads and stores are plain accesses here.
template <typename T>
inline void __stwb(T* p, T v) {
    *p = v;
}
template <typename T>
inline void __stcs(T* p, T v) {
    *p = v;
}
template <typename T>
inline void __stcg(T* p, T v) {
    *p = v;
}
template <typename T>
inline T __ldg(const T* p) {
    return *p;
}

// ---- atomics (device scope = process scope; relaxed in CUDA, sequentially consistent here) ------

template <typename T>
inline T atomicAdd(T* p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline float atomicAdd(float* p, float v) {
    float old;
    __atomic_load(p, &old, __ATOMIC_SEQ_CST);
    float desired = old + v;
    while (!__atomic_compare_exchange(p, &old, &desired, false, __ATOMIC_SEQ_CST,
                                      __ATOMIC_SEQ_CST)) {
        desired = old + v;
    }
    return old;
}
template <typename T>
inline T atomicCAS(T* p, T compare, T value) {
    __atomic_compare_exchange_n(p, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;  // the old value, whether or not it was replaced
}
template <typename T>
inline T atomicExch(T* p, T v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicMax(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_SEQ_CST)) {
    }
    return old;
}
template <typename T>
inline T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- the runtime: barriers, warps, the thread pool ----------------------------------------------

namespace gnn_emu {

// Thrown inside a CUDA thread when its launch is being abandoned (deadlock, divergence, ...);
// caught by the pool thread, which then leaves the block.
struct Abort {};

void fail(const std::string& why);  // records the first failure of the launch, wakes every waiter
bool failed();
double timeout_seconds();

// Sleeping and waking on a 32-bit word. The words are atomics, so ThreadSanitizer sees the
// happens-before of every barrier through them (it does not need to understand the futex).
inline void futex_wait(std::atomic<uint32_t>* word, uint32_t value, long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, value, &ts, nullptr, 0);
}
inline void futex_wake_all(std::atomic<uint32_t>* word) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
            nullptr, 0);
}

// A barrier for a changing number of participants: a thread that leaves the kernel drops out (as
// exited threads stop counting on a GPU). Every arrival of one generation must come from the same
// source line, or the launch fails (a __syncthreads under divergent control flow). Lock-free, so
// that a release wakes every waiter with one system call and none of them queues on a mutex.
class Barrier {
   public:
    void reset(int n) {
        count_.store(static_cast<uint64_t>(n) << 32);
        line_.store(-1);
    }

    void wait(int line, const char* what) {
        if (failed()) throw Abort{};
        int first = -1;
        if (!line_.compare_exchange_strong(first, line) && first != line) {
            fail(std::string(what) + " reached from line " + std::to_string(line) + " and from line " +
                 std::to_string(first) + " in the same step (divergent control flow)");
            throw Abort{};
        }
        // Read before arriving: the generation cannot move on until this thread has arrived.
        const uint32_t gen = gen_.load(std::memory_order_acquire);
        if (step(false)) return;
        const auto start = std::chrono::steady_clock::now();
        while (gen_.load(std::memory_order_acquire) == gen) {
            futex_wait(&gen_, gen, 200);
            if (gen_.load(std::memory_order_acquire) != gen) break;
            if (failed()) throw Abort{};
            const double waited =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (waited > timeout_seconds()) {
                const uint64_t c = count_.load();
                fail(std::string(what) + " at line " + std::to_string(line) + ": " +
                     std::to_string(static_cast<uint32_t>(c)) + " of " +
                     std::to_string(static_cast<uint32_t>(c >> 32)) +
                     " threads arrived (deadlock: the others wait elsewhere)");
                throw Abort{};
            }
        }
    }

    void drop() { step(true); }

    void wake() { futex_wake_all(&gen_); }

   private:
    // Arrive (or drop out); true when this completed the generation and released the waiters.
    bool step(bool leave) {
        uint64_t c = count_.load(std::memory_order_acquire);
        for (;;) {
            const uint32_t arrived = static_cast<uint32_t>(c) + (leave ? 0u : 1u);
            const uint32_t expected = static_cast<uint32_t>(c >> 32) - (leave ? 1u : 0u);
            const bool release = arrived > 0 && arrived >= expected;
            const uint64_t next = (static_cast<uint64_t>(expected) << 32) | (release ? 0u : arrived);
            if (count_.compare_exchange_weak(c, next, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
                if (release) {
                    line_.store(-1);
                    gen_.fetch_add(1, std::memory_order_release);
                    futex_wake_all(&gen_);
                }
                return release;
            }
        }
    }

    std::atomic<uint64_t> count_{0};  // expected participants << 32 | arrived
    std::atomic<uint32_t> gen_{0};
    std::atomic<int> line_{-1};
};

// One warp's exchange: lane i writes slot[parity][i], all lanes meet at the barrier, each reads the
// slot it wants. Two parities, because the next operation writes the other one: a lane cannot
// overwrite a slot before every lane has read it, since that write comes after the next barrier.
struct Warp {
    Barrier barrier;
    int lanes = 0;  // lanes that exist (fewer than 32 in a partial last warp)
    unsigned long long value[2][32];
    unsigned long long step[2][32];  // which warp operation of the lane wrote the slot
};

struct Block {
    Barrier barrier;
    Warp warps[32];
};

Block& block();
unsigned char* dynamic_shared();

// The lane's count of warp operations since the block started (all lanes of a converged warp agree).
extern thread_local unsigned long long warp_step;

inline int lane_id() { return static_cast<int>(threadIdx.x & 31u); }

// Exchanges v across the warp and returns the value lane `src` put in (its own when src < 0).
template <typename T>
inline T exchange(unsigned int mask, T v, int src, int line, const char* what) {
    static_assert(sizeof(T) <= 8, "warp exchange of a value wider than 8 bytes");
    const int lane = lane_id();
    Warp& w = block().warps[threadIdx.x >> 5];
    if (!((mask >> lane) & 1u)) {
        fail(std::string(what) + " at line " + std::to_string(line) + ": lane " +
             std::to_string(lane) + " is not in its own mask");
        throw Abort{};
    }
    const int parity = static_cast<int>(warp_step & 1ull);
    const unsigned long long step = ++warp_step;
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    w.value[parity][lane] = bits;
    w.step[parity][lane] = step;
    w.barrier.wait(line, what);
    if (src < 0 || src == lane) return v;
    if (src >= w.lanes || w.step[parity][src] != step) {
        fail(std::string(what) + " at line " + std::to_string(line) + ": lane " +
             std::to_string(lane) + " reads lane " + std::to_string(src) +
             (src >= w.lanes ? ", which does not exist" : ", which did not take part (not converged)"));
        throw Abort{};
    }
    T out;
    bits = w.value[parity][src];
    memcpy(&out, &bits, sizeof(T));
    return out;
}

// Ballot over the lanes in mask that exist; every one of them must take part.
inline unsigned int ballot(unsigned int mask, bool pred, int line, const char* what) {
    const int lane = lane_id();
    Warp& w = block().warps[threadIdx.x >> 5];
    exchange<unsigned long long>(mask, pred ? 1ull : 0ull, -1, line, what);
    const int parity = static_cast<int>((warp_step - 1) & 1ull);
    unsigned int out = 0;
    for (int i = 0; i < w.lanes; ++i) {
        if (!((mask >> i) & 1u)) continue;
        if (w.step[parity][i] != warp_step) {
            fail(std::string(what) + " at line " + std::to_string(line) + ": lane " +
                 std::to_string(i) + " of the mask did not take part (lane " + std::to_string(lane) +
                 " did)");
            throw Abort{};
        }
        if (w.value[parity][i]) out |= 1u << i;
    }
    return out;
}

// The source lane of a shuffle within segments of `width` lanes; -1 (own value) outside the segment.
inline int segment_lane(int lane, int src, int width) {
    const int first = lane & ~(width - 1);
    return (src >= first && src < first + width) ? src : -1;
}

int launch(unsigned int grid, unsigned int threads, size_t shared_bytes,
           const std::function<void()>& body);

}  // namespace gnn_emu

#define __syncthreads() ::gnn_emu::block().barrier.wait(__LINE__, "__syncthreads")
#define __syncwarp(...) ((void)::gnn_emu::exchange<int>(0xffffffffu, 0, -1, __LINE__, "__syncwarp"))
#define __shfl_sync(mask, v, src, ...) \
    ::gnn_emu::shfl_idx(mask, v, src, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, lm, ...) \
    ::gnn_emu::shfl_xor(mask, v, lm, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) \
    ::gnn_emu::shfl_down(mask, v, d, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::gnn_emu::shfl_up(mask, v, d, __LINE__, ##__VA_ARGS__)
#define __ballot_sync(mask, p) ::gnn_emu::ballot(mask, (p) != 0, __LINE__, "__ballot_sync")
#define __all_sync(mask, p)                                                                    \
    (::gnn_emu::ballot(mask, (p) != 0, __LINE__, "__all_sync") ==                              \
     ::gnn_emu::ballot(mask, true, __LINE__, "__all_sync"))
#define __any_sync(mask, p) (::gnn_emu::ballot(mask, (p) != 0, __LINE__, "__any_sync") != 0u)

namespace gnn_emu {
template <typename T>
inline T shfl_idx(unsigned int mask, T v, int src, int line, int width = 32) {
    const int lane = lane_id();
    return exchange(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), line, "__shfl_sync");
}
template <typename T>
inline T shfl_xor(unsigned int mask, T v, int lane_mask, int line, int width = 32) {
    const int lane = lane_id();
    // As PTX shfl.bfly: a lane past the end of this lane's segment gives the own value; an
    // earlier segment's lane is read (CUDA's documentation says so for width < 32).
    const int src = lane ^ lane_mask;
    const int last = (lane & ~(width - 1)) + width - 1;
    return exchange(mask, v, src > last ? -1 : src, line, "__shfl_xor_sync");
}
template <typename T>
inline T shfl_down(unsigned int mask, T v, unsigned int delta, int line, int width = 32) {
    const int lane = lane_id();
    return exchange(mask, v, segment_lane(lane, lane + static_cast<int>(delta), width), line,
                    "__shfl_down_sync");
}
template <typename T>
inline T shfl_up(unsigned int mask, T v, unsigned int delta, int line, int width = 32) {
    const int lane = lane_id();
    return exchange(mask, v, segment_lane(lane, lane - static_cast<int>(delta), width), line,
                    "__shfl_up_sync");
}
}  // namespace gnn_emu

// ---- __half: IEEE binary16 bits, converted with round-to-nearest-even -----------------------------

namespace gnn_emu {

inline unsigned short float_to_half_rn(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fffu;  // NaN: the canonical NaN CUDA returns
    if (a >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00u);  // >= 65520: inf
    if (a >= 0x38800000u) {  // normal half (>= 2^-14): drop 13 mantissa bits, ties to even
        uint32_t h = (a >> 13) - (112u << 10);
        const uint32_t rest = a & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
        return static_cast<unsigned short>(sign | h);
    }
    // subnormal half: the value in units of 2^-24, rounded to nearest even
    const int e = static_cast<int>(a >> 23);
    const int shift = 126 - e;  // value = m * 2^(e - 150) = (m >> shift) units of 2^-24
    if (shift > 24) return static_cast<unsigned short>(sign);  // below 2^-25: rounds to 0
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) ++q;  // may become the smallest normal: right too
    return static_cast<unsigned short>(sign | q);
}

inline float half_to_float(unsigned short h) {
    const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    const uint32_t m = h & 0x3ffu;
    uint32_t x;
    if (e == 0x1fu) {
        x = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        x = sign | ((e + 112u) << 23) | (m << 13);
    } else {
        const float v = ldexpf(static_cast<float>(m), -24);  // exact: m < 2^10
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

}  // namespace gnn_emu

struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(gnn_emu::float_to_half_rn(f)) {}
    operator float() const { return gnn_emu::half_to_float(__x); }
};
struct __align__(4) __half2 {
    __half x, y;
};

inline __half __float2half_rn(float f) {
    __half h;
    h.__x = gnn_emu::float_to_half_rn(f);
    return h;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return gnn_emu::half_to_float(h.__x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}
// Round toward zero: drop the bits (NaN stays NaN; a finite |x| >= 65504 gives the largest half).
inline __half __float2half_rz(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return __ushort_as_half(0x7fffu);
    if (a == 0x7f800000u) return __ushort_as_half(static_cast<unsigned short>(sign | 0x7c00u));
    if (a >= 0x477fe000u) return __ushort_as_half(static_cast<unsigned short>(sign | 0x7bffu));
    if (a >= 0x38800000u) return __ushort_as_half(static_cast<unsigned short>(sign | ((a >> 13) - (112u << 10))));
    const int shift = 126 - static_cast<int>(a >> 23);
    const uint32_t q = shift > 24 ? 0u : ((a & 0x7fffffu) | 0x800000u) >> shift;
    return __ushort_as_half(static_cast<unsigned short>(sign | q));
}
inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
inline __half __short_as_half(short s) { return __ushort_as_half(static_cast<unsigned short>(s)); }

#endif  // GNN_CUDA_EMU_H
