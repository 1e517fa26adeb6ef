// Definitions behind cuda_emu.h: the launch, the pool of CUDA threads, and the extern "C" entry
// points that tests/cuda_cpu/emulator.py calls through ctypes. Included once per shared library,
// after the kernel source (each library is one translation unit).

#ifndef GNN_CUDA_EMU_RUNTIME_H
#define GNN_CUDA_EMU_RUNTIME_H

#include <vector>

#include "cuda_bf16.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace gnn_emu {

thread_local unsigned long long warp_step = 0;

namespace {

// One pool thread per CUDA thread of a block; the pool grows (a warp of threads at a time) to the
// largest block launched and is kept, never destroyed: idle threads may still wait on it while the
// process exits. The threads of warp w sleep on go[w]; the launching thread bumps it to run them.
struct State {
    std::atomic<uint32_t> go[32];
    std::atomic<int> running{0};
    std::atomic<uint32_t> done{0};
    unsigned int workers = 0;
    // the block being run (written before go[] is bumped, read by the workers after)
    unsigned int grid = 0, threads = 0, block_index = 0;
    const std::function<void()>* body = nullptr;
    unsigned char* dynamic_shared = nullptr;
    Block block;
    // the first failure of the current launch
    std::mutex error_mu;
    std::string error;
    std::atomic<bool> failed{false};
};

State& state() {
    static State* s = new State;  // leaked on purpose, see State
    return *s;
}

void run_cuda_thread(int id) {
    State& s = state();
    threadIdx = uint3{static_cast<unsigned int>(id), 0, 0};
    blockIdx = uint3{s.block_index, 0, 0};
    blockDim = dim3{s.threads, 1, 1};
    gridDim = dim3{s.grid, 1, 1};
    warp_step = 0;
    try {
        (*s.body)();
    } catch (const Abort&) {
        // the launch failed elsewhere; this thread just leaves
    } catch (...) {
        fail("a C++ exception escaped the kernel");
    }
    // An exited thread no longer counts at barriers, as on the GPU.
    s.block.warps[id >> 5].barrier.drop();
    s.block.barrier.drop();
}

struct Start {
    int id;
    uint32_t seen;  // go[id / 32] when the thread was made: a later value means "run"
};

void* worker_main(void* arg) {
    const Start start = *static_cast<Start*>(arg);
    delete static_cast<Start*>(arg);
    const int id = start.id;
    State& s = state();
    std::atomic<uint32_t>& go = s.go[id >> 5];
    uint32_t seen = start.seen;
    for (;;) {
        uint32_t now;
        while ((now = go.load(std::memory_order_acquire)) == seen) futex_wait(&go, seen, 1000);
        seen = now;
        if (static_cast<unsigned int>(id) >= s.threads) continue;  // past a partial last warp
        run_cuda_thread(id);
        if (s.running.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            s.done.fetch_add(1, std::memory_order_release);
            futex_wake_all(&s.done);
        }
    }
    return nullptr;
}

bool grow_pool(unsigned int n) {
    State& s = state();
    n = (n + 31) / 32 * 32;  // whole warps: every thread sleeping on go[w] belongs to warp w
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    bool ok = true;
    while (s.workers < n && ok) {
        pthread_t th;
        Start* start = new Start{static_cast<int>(s.workers), s.go[s.workers >> 5].load()};
        ok = pthread_create(&th, &attr, worker_main, start) == 0;
        if (ok) {
            pthread_detach(th);
            ++s.workers;
        } else {
            delete start;
        }
    }
    pthread_attr_destroy(&attr);
    return ok;
}

}  // namespace

void fail(const std::string& why) {
    State& s = state();
    {
        std::lock_guard<std::mutex> lock(s.error_mu);
        if (s.error.empty()) s.error = why;
        s.failed.store(true);
    }
    // wake every waiter so that it sees the failure and leaves
    s.block.barrier.wake();
    for (Warp& w : s.block.warps) w.barrier.wake();
}

bool failed() { return state().failed.load(); }

void misaligned(const void* p, int bytes, const char* type) {
    char where[32];
    snprintf(where, sizeof where, "%p", p);
    fail(std::string("misaligned address: a ") + type + " (" + std::to_string(bytes) +
         " bytes) accessed at " + where);
    throw Abort{};
}

double timeout_seconds() {
    static const double t = [] {
        const char* v = getenv("GNN_EMU_TIMEOUT_S");
        return v ? atof(v) : 60.0;
    }();
    return t;
}

Block& block() { return state().block; }

unsigned char* dynamic_shared() { return state().dynamic_shared; }

int launch(unsigned int grid, unsigned int threads, size_t shared_bytes,
           const std::function<void()>& body) {
    State& s = state();
    // One launch at a time per library (as on one stream): the pool and the block are shared.
    static std::mutex* launching = new std::mutex;
    std::lock_guard<std::mutex> one_at_a_time(*launching);
    s.error.clear();
    s.failed.store(false);
    if (grid < 1 || threads < 1 || threads > 1024) {
        s.error = "invalid launch: grid " + std::to_string(grid) + ", block " +
                  std::to_string(threads) + " (1..1024 threads)";
        return 1;
    }
    if (!grow_pool(threads)) {
        s.error = "cannot start " + std::to_string(threads) + " threads";
        return 1;
    }
    // Dynamic shared memory holds garbage on a GPU: 0xff bytes (NaN floats) stand in for it, and
    // its exact size lets AddressSanitizer see an access past it.
    unsigned char* shared = nullptr;
    if (shared_bytes) {
        shared = static_cast<unsigned char*>(aligned_alloc(16, (shared_bytes + 15) / 16 * 16));
        memset(shared, 0xff, shared_bytes);
#if defined(__SANITIZE_ADDRESS__)
        ASAN_POISON_MEMORY_REGION(shared + shared_bytes, (shared_bytes + 15) / 16 * 16 - shared_bytes);
#endif
    }
    s.body = &body;
    s.grid = grid;
    s.threads = threads;
    s.dynamic_shared = shared;
    for (unsigned int b = 0; b < grid && !failed(); ++b) {
        s.block_index = b;
        s.block.barrier.reset(static_cast<int>(threads));
        for (unsigned int i = 0; i < 32; ++i) {
            Warp& w = s.block.warps[i];
            const int lanes = static_cast<int>(threads) - static_cast<int>(32 * i);
            w.lanes = lanes < 0 ? 0 : (lanes > 32 ? 32 : lanes);
            w.barrier.reset(w.lanes);
            memset(w.step, 0, sizeof w.step);
        }
        s.running.store(static_cast<int>(threads), std::memory_order_relaxed);
        const uint32_t done = s.done.load(std::memory_order_acquire);
        for (unsigned int w = 0; w < (threads + 31) / 32; ++w) {
            s.go[w].fetch_add(1, std::memory_order_release);
            futex_wake_all(&s.go[w]);
        }
        const auto start = std::chrono::steady_clock::now();
        while (s.done.load(std::memory_order_acquire) == done) {
            futex_wait(&s.done, done, 500);
            const double waited =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (s.done.load(std::memory_order_acquire) == done && waited > 3 * timeout_seconds()) {
                // A thread that never reaches a barrier (an endless loop) cannot be stopped.
                fprintf(stderr, "cuda_emu: block %u still running after %.0f s: aborting\n", b,
                        waited);
                abort();
            }
        }
    }
#if defined(__SANITIZE_ADDRESS__)
    if (shared) ASAN_UNPOISON_MEMORY_REGION(shared, (shared_bytes + 15) / 16 * 16);
#endif
    free(shared);
    s.dynamic_shared = nullptr;
    return failed() ? 1 : 0;
}

}  // namespace gnn_emu

extern "C" {

// The first failure of the last launch ("" when it succeeded).
const char* gnn_emu_error() { return gnn_emu::state().error.c_str(); }

// n bytes at an address that is `offset` past a 256-byte boundary (as in CuPy's 256-byte aligned
// allocations); the bytes before it are poisoned for AddressSanitizer. *base is what to free.
void* gnn_emu_alloc(size_t n, size_t offset, void** base) {
    void* p = nullptr;
    if (posix_memalign(&p, 256, offset + n + (offset + n == 0)) != 0) return nullptr;
#if defined(__SANITIZE_ADDRESS__)
    ASAN_POISON_MEMORY_REGION(p, offset);
#endif
    *base = p;
    return static_cast<unsigned char*>(p) + offset;
}

void gnn_emu_free(void* base, size_t offset) {
#if defined(__SANITIZE_ADDRESS__)
    ASAN_UNPOISON_MEMORY_REGION(base, offset);
#endif
    free(base);
}

// The emulator's half conversions, for tests/cuda_cpu/test_emulator.py.
void gnn_emu_float2half_rn(const float* x, unsigned short* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = __half_as_ushort(__float2half_rn(x[i]));
}

void gnn_emu_half2float(const unsigned short* x, float* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = __half2float(__ushort_as_half(x[i]));
}

void gnn_emu_float2bfloat16_rn(const float* x, unsigned short* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = gnn_emu::float_to_bf16_rn(x[i]);
}

void gnn_emu_bfloat162float(const unsigned short* x, float* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = gnn_emu::bf16_to_float(x[i]);
}

}  // extern "C"

#endif  // GNN_CUDA_EMU_RUNTIME_H
