// Stands in for CUDA's <cuda_fp16.h> when g++ compiles a kernel: __half lives in cuda_emu.h.
#include "cuda_emu.h"
