// Kernels that check the emulator itself (tests/cuda_cpu/test_emulator.py): barriers, dynamic
// shared memory, warp shuffles and votes, atomics, and the launch failures it must report.

extern "C" __global__ void __launch_bounds__(1024)
    block_sums(const float* __restrict__ x, float* __restrict__ out, long long n) {
    extern __shared__ float part[];  // blockDim.x floats
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    part[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// Eight results per thread: xor 1, down 3, up 2, broadcast from lane 5, xor 4 within 8-lane
// segments, ballot of odd lanes, all (lane < 32), any (lane == 7).
extern "C" __global__ void __launch_bounds__(1024) warp_ops(int* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    int* o = out + 8 * threadIdx.x;
    o[0] = __shfl_xor_sync(0xffffffffu, lane, 1);
    o[1] = __shfl_down_sync(0xffffffffu, lane, 3);
    o[2] = __shfl_up_sync(0xffffffffu, lane, 2);
    o[3] = __shfl_sync(0xffffffffu, lane * 10, 5);
    o[4] = __shfl_xor_sync(0xffffffffu, lane, 12, 8);
    o[5] = static_cast<int>(__ballot_sync(0xffffffffu, lane & 1));
    o[6] = __all_sync(0xffffffffu, lane < 32);
    o[7] = __any_sync(0xffffffffu, lane == 7);
}

extern "C" __global__ void __launch_bounds__(1024) count_threads(unsigned long long* counter) {
    atomicAdd(counter, 1ULL);
}

extern "C" __global__ void __launch_bounds__(1024) divergent_barrier(int* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

extern "C" __global__ void __launch_bounds__(1024) shuffle_from_exited_lane(int* out) {
    const int lane = threadIdx.x & 31;
    if (lane >= 16) return;
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, lane, 20);
}

extern "C" __global__ void __launch_bounds__(1024)
    misaligned_load(const float* __restrict__ x, float* __restrict__ out) {
    const float4 v = *reinterpret_cast<const float4*>(x + 1);  // 4 bytes past a 16-byte boundary
    out[threadIdx.x] = v.x;
}
