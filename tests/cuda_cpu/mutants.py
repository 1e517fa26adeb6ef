"""Mutation check of the emulated kernel tests: each deliberate bug in kernels/ must be caught.

`bash ci/emulate.sh --mutants` runs this. For each mutant: copy kernels/ to a scratch folder,
apply one textual edit (it must match exactly as often as stated, or this script fails: a mutant
that no longer applies is a broken check, not a pass), point gnn at the folder (GNN_KERNEL_DIR),
and run a few emulated tests in the mutant's lane (plain, asan or tsan, as in ci/emulate.sh). A
mutant is caught when that run fails; one that does not compile is not caught. First the unmutated
kernels must pass the same tests in each lane, or a failure would prove nothing. Prints one line
per mutant, then `mutants: N of N caught`, and exits non-zero unless all were caught. Every new
kernel gets mutants of its own here. The runs go one per core at a time (GNN_EMU_JOBS=N sets how
many), after the unmutated kernels are compiled in parallel (tests/cuda_cpu/emulator.py prebuild).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Mutant:
    name: str
    file: str  # in kernels/
    old: str
    new: str
    count: int  # how many times `old` occurs (all are replaced)
    lane: str  # plain, asan or tsan
    select: str  # pytest -k expression: the tests that should catch it
    tests: tuple[str, ...] = ("tests/test_kernels_gpu.py",)


SCE = "softmax_cross_entropy.cu"
LSTM = "lstm_cell.cu"
LSTM_TESTS = ("tests/test_kernel_lstm.py",)
LSTM_FORWARD = "code_path_lstm_cell_forward and float32"
MUTANTS = [
    Mutant(
        "drop the __syncthreads before the shared slots are rewritten",
        SCE,
        "        __syncthreads();  // the previous row's reads of sm_* are finished\n",
        "",
        1,
        "tsan",
        "any_grid and float32",
    ),
    Mutant(
        "drop the __syncthreads after the shared slots are written",
        SCE,
        "            sm_z[warp] = z;\n        }\n        __syncthreads();\n",
        "            sm_z[warp] = z;\n        }\n",
        1,
        "tsan",
        "code_path_softmax_cross_entropy and one and float32",
    ),
    Mutant(
        "race on a shared slot: two lanes per warp write it",
        SCE,
        "        if (lane == 0) {\n            sm_m[warp] = m;",
        "        if (lane < 2) {\n            sm_m[warp] = m;",
        1,
        "tsan",
        "code_path_softmax_cross_entropy and heads and float32",
    ),
    Mutant(
        "off-by-one in the sigmoid tail loop (last element never written)",
        "sigmoid.cu",
        "for (long long i = done + first; i < n; i += stride)",
        "for (long long i = done + first; i < n - 1; i += stride)",
        2,
        "plain",
        "code_path_sigmoid",
    ),
    Mutant(
        "read past the row: the column tail loop runs to j <= c",
        SCE,
        "for (long long j = tail + threadIdx.x; j < c; j += blockDim.x) {\n        const float",
        "for (long long j = tail + threadIdx.x; j <= c; j += blockDim.x) {\n        const float",
        1,
        "asan",
        "code_path_softmax_cross_entropy and one and float32",
    ),
    Mutant(
        "read past the row: the scalar head is not capped at C",
        SCE,
        "    return head < c ? head : c;",
        "    return head;",
        1,
        "asan",
        "code_path_softmax_cross_entropy and class",
    ),
    Mutant(
        "wrong shuffle width: the butterfly starts at 8 lanes, not 16",
        SCE,
        "for (int offset = 16; offset > 0; offset >>= 1) {\n        const float m2",
        "for (int offset = 8; offset > 0; offset >>= 1) {\n        const float m2",
        1,
        "plain",
        "code_path_softmax_cross_entropy",
    ),
    Mutant(
        "skip the ignore_index test in the forward",
        SCE,
        "        if (t != ignore_index) {\n            if (t < 0 || t >= c) {",
        "        if (true) {\n            if (t < 0 || t >= c) {",
        1,
        "plain",
        "code_path_softmax_cross_entropy or all_ignored",
    ),
    Mutant(
        "wrong pack alignment: 4-byte aligned pointers taken for 16-byte aligned",
        "sigmoid.cu",
        "return (reinterpret_cast<unsigned long long>(p) & 15ULL) == 0ULL;",
        "return (reinterpret_cast<unsigned long long>(p) & 3ULL) == 0ULL;",
        1,
        "plain",
        "code_path_sigmoid",
    ),
    Mutant(
        "wrong half rounding: float16 stores truncate",
        "common.cuh",
        "store_float(__half* p, float v) { *p = __float2half_rn(v); }",
        "store_float(__half* p, float v) { *p = __float2half_rz(v); }",
        1,
        "plain",
        "float16_stores",
    ),
    Mutant(
        "a bad label is not reported by the forward",
        SCE,
        "                report_bad_label(err, t, c, ignore_index, 4);\n",
        "",
        1,
        "plain",
        "out_of_range",
    ),
    Mutant(
        "the backward does not count its bad labels",
        SCE,
        "if (threadIdx.x == 0) report_bad_label(err, t, c, ignore_index, 5);",
        "if (threadIdx.x == 0) report_bad_label(err, t, c, ignore_index, 0);",
        1,
        "plain",
        "out_of_range",
    ),
    Mutant(
        "the forward's log-sum-exp is off by 0.1 (seen by whole models)",
        SCE,
        "const float lse = m + logf(s);",
        "const float lse = m + logf(s) + 0.1f;",
        1,
        "plain",
        "cuda_matches_cpu",
        ("tests/test_backend_parity.py",),
    ),
    Mutant(
        "wrong bfloat16 rounding: bfloat16 stores truncate",
        "common.cuh",
        "__float2bfloat16_rn(",
        "__float2bfloat16_rz(",
        3,
        "plain",
        "bfloat16_stores",
    ),
    Mutant(
        "bfloat16 unpack: the low element reads the high 16 bits",
        "common.cuh",
        "static_cast<unsigned short>(w & 0xffffu)));\n    hi = __bfloat162float(",
        "static_cast<unsigned short>(w >> 16)));\n    hi = __bfloat162float(",
        1,
        "plain",
        "code_path_sigmoid and bfloat16",
    ),
]

LN = "layer_norm.cu"
LN_PATHS = "code_path_layer_norm and float32"
MUTANTS += [
    Mutant(
        "layer norm: drop the __syncthreads before the block sum's slots are rewritten",
        LN,
        "    __syncthreads();  // every thread has read the slots of the previous call\n",
        "",
        1,
        "tsan",
        LN_PATHS + " and several",
    ),
    Mutant(
        "layer norm: drop the __syncthreads after the block sum's slots are written",
        LN,
        "        sm[32 + warp] = b;\n    }\n    __syncthreads();\n",
        "        sm[32 + warp] = b;\n    }\n",
        1,
        "tsan",
        LN_PATHS + " and several",
    ),
    Mutant(
        "layer norm: race on a shared slot, two lanes per warp write it",
        LN,
        "    if (lane == 0) {\n        sm[warp] = a;",
        "    if (lane < 2) {\n        sm[warp] = a;",
        1,
        "tsan",
        LN_PATHS + " and several",
    ),
    Mutant(
        "layer norm: the weight kernel's tile loop drops its __syncthreads",
        LN,
        "        __syncthreads();  // row lane 0 has read the previous tile's partials\n",
        "",
        1,
        "tsan",
        "layer_norm_kernels_accept_any_grid and float32",
    ),
    Mutant(
        "layer norm: off-by-one in the forward's output loop (last column never written)",
        LN,
        "for (long long j = threadIdx.x; j < d; j += blockDim.x) {\n            float v =",
        "for (long long j = threadIdx.x; j < d - 1; j += blockDim.x) {\n            float v =",
        1,
        "plain",
        LN_PATHS,
    ),
    Mutant(
        "layer norm: read past the row, the backward's sum loop runs to j <= d",
        LN,
        "for (long long j = threadIdx.x; j < d; j += blockDim.x) {\n            float g = to_float"
        "(grow[j]);\n            if (has_weight) g *= to_float(weight[j]);\n            sg",
        "for (long long j = threadIdx.x; j <= d; j += blockDim.x) {\n            float g = to_float"
        "(grow[j]);\n            if (has_weight) g *= to_float(weight[j]);\n            sg",
        1,
        "asan",
        LN_PATHS + " and (one or d)",
    ),
    Mutant(
        "layer norm: wrong shuffle offset, the butterfly starts at 8 lanes",
        LN,
        "for (int offset = 16; offset > 0; offset >>= 1) {",
        "for (int offset = 8; offset > 0; offset >>= 1) {",
        1,
        "plain",
        LN_PATHS,
    ),
    Mutant(
        "layer norm: wrong variance normaliser, D - 1 (unbiased) for D",
        LN,
        "fmaxf((scc - sc * (sc * inv_d)) * inv_d, 0.0f)",
        "fmaxf((scc - sc * (sc * inv_d)) / static_cast<float>(d - 1), 0.0f)",
        1,
        "plain",
        LN_PATHS,
    ),
    Mutant(
        "layer norm: off-by-one in the weight kernel's row-lane sum (last lane dropped)",
        LN,
        "for (int i = 1; i < lanes; ++i) {",
        "for (int i = 1; i < lanes - 1; ++i) {",
        1,
        "plain",
        LN_PATHS,
    ),
    Mutant(
        "lstm: the forget gate's biases are dropped",
        LSTM,
        "            if (has_bias) v +=",
        "            if (has_bias && k != 1) v +=",
        1,
        "plain",
        LSTM_FORWARD,
        LSTM_TESTS,
    ),
    Mutant(
        "lstm: the cell gate takes a sigmoid, not a tanh",
        LSTM,
        "        const float g = tanhf(a[2]);",
        "        const float g = sigmoid_of(a[2]);",
        1,
        "plain",
        LSTM_FORWARD,
        LSTM_TESTS,
    ),
    Mutant(
        "lstm: the backward does not carry the gradient of c from the next step",
        LSTM,
        "const float gct = to_float(gc_in[e]) + gh",
        "const float gct = gh",
        1,
        "plain",
        "code_path_lstm_cell_backward and float32",
        LSTM_TESTS,
    ),
    Mutant(
        "lstm: off-by-one in the grid-stride loops (the last element never written)",
        LSTM,
        "e < n;\n         e += stride) {",
        "e < n - 1;\n         e += stride) {",
        2,
        "plain",
        "lstm_cell_kernels_accept_any_grid",
        LSTM_TESTS,
    ),
]

GELU = "gelu.cu"
GELU_TESTS = ("tests/test_kernel_gelu.py",)
GELU_PATHS = "code_path_bias_gelu and float32"
MUTANTS += [
    Mutant(
        "gelu: the tanh form's cubic coefficient is wrong",
        GELU,
        "kTanhCubic = 0.044715f;",
        "kTanhCubic = 0.04715f;",
        1,
        "plain",
        GELU_PATHS + " and tanh and scalar",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: the scalar forward drops the bias",
        GELU,
        "if (has_bias) h += to_float(bias[i % d]);",
        "if (has_bias) h += 0.0f;",
        1,
        "plain",
        GELU_PATHS + " and none and scalar",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: a pack takes the bias at its row, not at its column",
        GELU,
        "Pack<T>::load(bias + (i * V) % d, b);",
        "Pack<T>::load(bias + (i * V) / d, b);",
        1,
        "plain",
        GELU_PATHS + " and none and packs",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: off-by-one in the forward's grid-stride tail (last element never written)",
        GELU,
        "for (long long i = done + first; i < total; i += stride)",
        "for (long long i = done + first; i < total - 1; i += stride)",
        1,
        "plain",
        GELU_PATHS + " and none and scalar",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: column-sum race, the tile loop drops its __syncthreads",
        GELU,
        "        __syncthreads();           // row lane 0 has read the previous tile's partials\n",
        "",
        1,
        "tsan",
        "bias_gelu_kernels_accept_any_grid and float32",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: read past the chunk, the backward's row loop runs to r <= r_end",
        GELU,
        "r < r_end; r += lanes)",
        "r <= r_end; r += lanes)",
        1,
        "asan",
        GELU_PATHS + " and none and (element or chunks)",
        GELU_TESTS,
    ),
    Mutant(
        "gelu: the bias sum skips the last chunk's partials",
        GELU,
        "for (long long c = 0; c < chunks; ++c)",
        "for (long long c = 0; c + 1 < chunks; ++c)",
        1,
        "plain",
        GELU_PATHS + " and none and chunks",
        GELU_TESTS,
    ),
]


OPTIM = "optim.cu"
OPTIM_TESTS = ("tests/test_kernel_optim.py",)
MUTANTS += [
    Mutant(
        "optim: Adam drops the first moment's bias correction",
        OPTIM,
        "static_cast<float>(lr / (1.0 - pow(beta1, static_cast<double>(step))));",
        "static_cast<float>(lr);",
        1,
        "plain",
        "optim_kernel_adam and float32 and adam-",
        OPTIM_TESTS,
    ),
    Mutant(
        "optim: Adam's first moment blends with beta2 (betas swapped)",
        OPTIM,
        "const float one_minus_beta1 = static_cast<float>(1.0 - beta1);",
        "const float one_minus_beta1 = static_cast<float>(1.0 - beta2);",
        1,
        "plain",
        "optim_kernel_adam and float32 and adam-",
        OPTIM_TESTS,
    ),
    Mutant(
        "optim: off-by-one in the grid-stride loops (the last element is never updated)",
        OPTIM,
        "i < n; i += stride) {",
        "i < n - 1; i += stride) {",
        3,
        "plain",
        "any_grid_adam",
        OPTIM_TESTS,
    ),
    Mutant(
        "optim: L2 weight decay scales the gradient instead of the weight",
        OPTIM,
        "g = x * wd + g;",
        "g = g * wd + g;",
        2,
        "plain",
        "optim_kernel_adam and float32 and l2",
        OPTIM_TESTS,
    ),
    Mutant(
        "optim: the step count advances before the block has read it (no barrier)",
        OPTIM,
        "    __syncthreads();  // this block's reads of clock[0] are done\n",
        "",
        1,
        "tsan",
        "any_grid_adam",
        OPTIM_TESTS,
    ),
]


ATTENTION = "attention.cu"
ATTENTION_TESTS = ("tests/test_kernel_attention.py",)
ATTENTION_PATHS = "code_path_attention"
MUTANTS += [
    Mutant(
        "attention: causal mask off by one (a query no longer sees its own key)",
        ATTENTION,
        "const bool visible = j < keys && (!causal || j <= i);",
        "const bool visible = j < keys && (!causal || j < i);",
        1,
        "plain",
        ATTENTION_PATHS + " and shape0 and True",
        ATTENTION_TESTS,
    ),
    Mutant(
        "attention: the online softmax does not rescale its running sum when the max moves",
        ATTENTION,
        "l = l * rescale + tile_sum;",
        "l = l + tile_sum;",
        1,
        "plain",
        ATTENTION_PATHS + " and shape1 and False",
        ATTENTION_TESTS,
    ),
    Mutant(
        "attention: no barrier before the next key tile overwrites shared memory",
        ATTENTION,
        "            __syncthreads();  // every warp has finished with the previous key tile\n",
        "",
        2,
        "tsan",
        ATTENTION_PATHS + " and shape1 and False",
        ATTENTION_TESTS,
    ),
    Mutant(
        "attention: a warp reads its shared row of scores / weights without a __syncwarp",
        ATTENTION,
        "            __syncwarp();\n",
        "",
        4,
        "tsan",
        ATTENTION_PATHS + " and shape0 and False",
        ATTENTION_TESTS,
    ),
    Mutant(
        "attention: dq misses the scale",
        ATTENTION,
        "if (d < dim) store_float(grow + d, acc[c] * scale);",
        "if (d < dim) store_float(grow + d, acc[c]);",
        1,
        "plain",
        ATTENTION_PATHS + " and shape0 and False",
        ATTENTION_TESTS,
    ),
]

CLIP = "clip_grad_norm.cu"
CLIP_TESTS = ("tests/test_kernel_clip_grad_norm.py",)
CLIP_PATHS = "code_path_clip_grad_norm and float32 and clipped"
MUTANTS += [
    Mutant(
        "clip: drop the __syncthreads after the block's slots are written",
        CLIP,
        "    if (lane == 0) sm[warp] = v;\n    __syncthreads();\n",
        "    if (lane == 0) sm[warp] = v;\n",
        1,
        "tsan",
        CLIP_PATHS + " and 2.0",
        CLIP_TESTS,
    ),
    Mutant(
        "clip: drop the __syncthreads after the coefficient is shared",
        CLIP,
        "    __syncthreads();  // coef_sm is written\n",
        "",
        1,
        "tsan",
        "clip_grad_norm_kernels_accept_any_grid",
        CLIP_TESTS,
    ),
    Mutant(
        "clip: off-by-one in the partial norms' grid-stride loop (last element left out)",
        CLIP,
        "for (long long i = first; i < n; i += stride) {\n            const float v",
        "for (long long i = first; i < n - 1; i += stride) {\n            const float v",
        1,
        "plain",
        CLIP_PATHS,
        CLIP_TESTS,
    ),
    Mutant(
        "clip: off-by-one in the scaling's grid-stride loop (last element not scaled)",
        CLIP,
        "for (long long i = first; i < n; i += stride) store_float",
        "for (long long i = first; i < n - 1; i += stride) store_float",
        1,
        "plain",
        CLIP_PATHS + " and 2.0",
        CLIP_TESTS,
    ),
    Mutant(
        "clip: the max drops NaN (a NaN gradient would not make the inf-norm NaN)",
        CLIP,
        "(b > a || b != b) ? b : a",
        "(b > a) ? b : a",
        1,
        "plain",
        "code_path_clip_grad_norm_nonfinite and inf-nan",
        CLIP_TESTS,
    ),
    Mutant(
        "clip: the table kernel writes a launch's sizes from the table's first slot",
        CLIP,
        "table[count + first + t] =",
        "table[count + t] =",
        1,
        "plain",
        "clip_grad_norm_writes_the_pointer_table_once",
        CLIP_TESTS,
    ),
    Mutant(
        "clip: a NaN total gives coefficient 1 (fminf), so NaN does not spread",
        CLIP,
        "        if (total != total) coef_sm = total;",
        "",
        1,
        "plain",
        "code_path_clip_grad_norm_nonfinite and 2.0-nan",
        CLIP_TESTS,
    ),
]


CONV = "conv.cu"
CONV_TESTS = ("tests/test_kernel_conv.py",)
MUTANTS += [
    Mutant(
        "conv: im2col and max pooling read one row below the window (padding offset off by one)",
        CONV,
        "const int ih = oy * sh - pt + i * dh;",
        "const int ih = oy * sh - pt + 1 + i * dh;",
        2,
        "plain",
        "code_path and pad and float32",
        CONV_TESTS,
    ),
    Mutant(
        "conv: col2im and max pooling's backward take the stride for the dilation",
        CONV,
        "position(ih + pt, i, sh, dh, oh)",
        "position(ih + pt, i, sh, sh, oh)",
        2,
        "plain",
        "code_path and dilation and float32",
        CONV_TESTS,
    ),
    Mutant(
        "conv: max pooling takes the last maximum of a tie (PyTorch: the first)",
        CONV,
        "if (v > best || ",
        "if (v >= best || ",
        1,
        "plain",
        "code_path_max_pool and float32",
        CONV_TESTS,
    ),
    Mutant(
        "conv: col2im misses the last tap",
        CONV,
        "s += to_float(cols[row * positions",
        "if (i + 1 < kh || j + 1 < kw) s += to_float(cols[row * positions",
        1,
        "plain",
        "code_path_conv and float32",
        CONV_TESTS,
    ),
    Mutant(
        "conv: the output's layout change drops the bias",
        CONV,
        "if (has_bias) v += to_float(bias[oi]);",
        "(void)bias;",
        1,
        "plain",
        "code_path_conv and float32",
        CONV_TESTS,
    ),
    Mutant(
        "conv: off-by-one in the grid-stride loops (the last output never written)",
        CONV,
        "e < total; e += grid_stride()",
        "e < total - 1; e += grid_stride()",
        5,
        "plain",
        "conv_kernels_accept_any_grid",
        CONV_TESTS,
    ),
    Mutant(
        "conv: the bias sum's shared slots are rewritten before thread 0 has read them",
        CONV,
        "        __syncthreads();           // thread 0 has read the previous channel's sums\n",
        "",
        1,
        "tsan",
        "conv_kernels_accept_any_grid",
        CONV_TESTS,
    ),
    Mutant(
        "conv: the bias sum misses the last thread's share",
        CONV,
        "for (unsigned int i = 0; i < blockDim.x; ++i) t += sm[i];",
        "for (unsigned int i = 0; i + 1 < blockDim.x; ++i) t += sm[i];",
        1,
        "plain",
        "conv_kernels_accept_any_grid",
        CONV_TESTS,
    ),
]


RELU = "relu.cu"
RELU_TESTS = ("tests/test_kernel_relu.py",)
RELU_LOOP = "for (long long i = first; i < n; i += stride) {"
MUTANTS += [
    Mutant(
        "relu: off-by-one in the grid-stride loop (the last element is never written)",
        RELU,
        RELU_LOOP,
        RELU_LOOP.replace("i < n;", "i < n - 1;"),
        1,
        "plain",
        "code_path_relu",
        RELU_TESTS,
    ),
    Mutant(
        "relu: the gradient passes where y is 0 (>= for >)",
        RELU,
        "return gy * (y > 0.0f ? 1.0f : 0.0f);",
        "return gy * (y >= 0.0f ? 1.0f : 0.0f);",
        1,
        "plain",
        "code_path_relu",
        RELU_TESTS,
    ),
    Mutant(
        "relu: a select, not a multiply (an infinite or NaN gy where y <= 0 gives 0, not NaN)",
        RELU,
        "return gy * (y > 0.0f ? 1.0f : 0.0f);",
        "return y > 0.0f ? gy : 0.0f;",
        1,
        "plain",
        "code_path_relu",
        RELU_TESTS,
    ),
    Mutant(
        "relu: the grid-stride loop runs to i <= n (one element past every array)",
        RELU,
        RELU_LOOP,
        RELU_LOOP.replace("i < n;", "i <= n;"),
        1,
        "asan",
        "code_path_relu",
        RELU_TESTS,
    ),
]


def jobs() -> int:
    """Mutant runs at a time: GNN_EMU_JOBS, else one per core this process may use."""
    return max(1, int(os.environ.get("GNN_EMU_JOBS") or len(os.sched_getaffinity(0))))


@functools.cache
def _runtime(name: str) -> str:
    """The path of g++'s sanitizer runtime `name` (libasan.so, libtsan.so)."""
    return subprocess.run(
        ["g++", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def lane_env(lane: str, reports: Path) -> dict[str, str]:
    """The environment of one ci/emulate.sh lane (a sanitizer report fails the launch)."""
    env = dict(os.environ, GNN_FAKE_CUDA="emulate", OPENBLAS_NUM_THREADS="1")
    env["GNN_EMU_REPORTS"] = str(reports)
    env["GNN_EMU_TIMEOUT_S"] = "20"  # a deadlocked mutant fails fast
    if lane == "asan":
        env.update(
            GNN_EMU_SANITIZE="address",
            LD_PRELOAD=_runtime("libasan.so"),
            ASAN_OPTIONS=f"detect_leaks=0:halt_on_error=0:log_path={reports}/asan",
            UBSAN_OPTIONS=f"print_stacktrace=1:log_path={reports}/ubsan",
        )
    elif lane == "tsan":
        env.update(
            GNN_EMU_SANITIZE="thread",
            LD_PRELOAD=_runtime("libtsan.so"),
            TSAN_OPTIONS=f"halt_on_error=0:log_path={reports}/tsan",
        )
    return env


def mutated(mutant: Mutant, text: str) -> str:
    """`text` with the mutant's edit; fails loudly when it does not apply."""
    found = text.count(mutant.old)
    if found != mutant.count:
        sys.exit(
            f"mutant {mutant.name!r}: its text occurs {found} times in kernels/{mutant.file}, "
            f"expected {mutant.count}: update the mutant to the kernel"
        )
    result = text.replace(mutant.old, mutant.new)
    if result == text:
        sys.exit(f"mutant {mutant.name!r} changes nothing")
    return result


def apply(mutant: Mutant, folder: Path) -> None:
    """Writes the mutant into `folder` (a copy of kernels/); fails loudly when it does not apply."""
    path = folder / mutant.file
    path.write_text(mutated(mutant, path.read_text()))


# No Hypothesis nor benchmark plugin (half of pytest's start-up; these tests use neither).
PYTEST = ["-m", "pytest", "-q", "-x", "-m", "gpu", "-p", "no:cacheprovider"]
PYTEST += ["-p", "no:hypothesispytest", "-p", "no:benchmark"]


def pytest(lane: str, tests: tuple[str, ...], select: str, kernels: Path, scratch: Path):
    """Runs the selected emulated tests on `kernels` in a lane: (exit code, output, reports)."""
    reports = scratch / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    env = lane_env(lane, reports)
    env["GNN_KERNEL_DIR"] = str(kernels)
    cmd = [sys.executable, *PYTEST, *tests, "-k", select]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr, list(reports.iterdir())


def baselines(mutants: list[Mutant]) -> list[tuple[str, tuple[str, ...], str]]:
    """(lane, tests, -k) per lane and test files: every mutant's selection, on unmutated kernels."""
    lanes: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for m in mutants:
        lanes.setdefault((m.lane, m.tests), []).append(f"({m.select})")
    return [(lane, tests, " or ".join(selects)) for (lane, tests), selects in lanes.items()]


def baseline(lane: str, tests: tuple[str, ...], select: str, scratch: Path) -> tuple[str, float]:
    """The unmutated kernels' run: (pytest's output if it failed, else "", seconds)."""
    start = time.monotonic()
    code, out, reports = pytest(lane, tests, select, ROOT / "kernels", scratch)
    failed = code != 0 or bool(reports)
    return (out[-3000:] or f"pytest exit {code}") if failed else "", time.monotonic() - start


def run(mutant: Mutant, scratch: Path) -> tuple[bool, str, float]:
    """(caught, how, seconds) for one mutant."""
    start = time.monotonic()
    caught, how = _run(mutant, scratch)
    return caught, how, time.monotonic() - start


def _run(mutant: Mutant, scratch: Path) -> tuple[bool, str]:
    folder = scratch / "kernels"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "kernels", folder)
    apply(mutant, folder)
    try:
        code, out, reports = pytest(mutant.lane, mutant.tests, mutant.select, folder, scratch)
    except subprocess.TimeoutExpired:
        return True, "hung (killed after 300 s)"
    if code == 5:  # no tests collected: the selection is wrong, not a catch
        sys.exit(f"mutant {mutant.name!r}: -k {mutant.select!r} selects no test")
    if "g++ could not compile the kernels" in out:  # a broken mutant, not a catch
        return False, "the mutated kernels do not compile"
    if code == 0 and not reports:
        return False, "all selected tests passed"
    for marker in ("ThreadSanitizer: ", "AddressSanitizer: ", "runtime error: "):
        if marker in out:  # the report's first line, as the failing test printed it
            return True, marker + out.split(marker, 1)[1].split("\n")[0][:70]
    if "emulated launch failed: " in out:
        # the last occurrence: earlier ones are the raising source line in pytest's traceback
        return True, "emulator: " + out.rsplit("emulated launch failed: ", 1)[1].split("\n")[0]
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    return True, failed[0][len("FAILED ") :][:90] if failed else f"pytest exit {code}"


EMULATOR = "tests/cuda_cpu/emulator.py"


def prebuild(lanes: list[str], n: int) -> None:
    """Compiles the unmutated kernels for these lanes up front, n at a time (cached by hash)."""
    spec = importlib.util.spec_from_file_location("gnn_emu_prebuild", ROOT / EMULATOR)
    assert spec is not None and spec.loader is not None
    emulator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(emulator)
    emulator.prebuild(lanes, n)


def main() -> int:
    """Runs every mutant (or those whose names contain an argument); 0 when all are caught.

    The baselines and the mutants run `jobs()` at a time, each in a scratch folder of its own;
    a mutant's line is printed in MUTANTS order once the baselines have all passed.
    """
    wanted = sys.argv[1:]
    mutants = [m for m in MUTANTS if not wanted or any(w in m.name for w in wanted)]
    for m in mutants:  # every edit must apply before any time is spent
        mutated(m, (ROOT / "kernels" / m.file).read_text())
    n = jobs()
    print(f"mutants: {len(mutants)}, {n} runs at a time", flush=True)
    prebuild(sorted({m.lane for m in mutants}), n)
    checks = baselines(mutants)
    caught = 0
    with tempfile.TemporaryDirectory(prefix="gnn-mutants-") as tmp:
        scratch = [Path(tmp) / str(i) for i in range(len(checks) + len(mutants))]
        with ThreadPoolExecutor(max_workers=n) as pool:
            base = [pool.submit(baseline, *c, s) for c, s in zip(checks, scratch)]
            runs = [pool.submit(run, m, s) for m, s in zip(mutants, scratch[len(checks) :])]
            for (lane, tests, _), future in zip(checks, base):
                failure, took = future.result()
                if failure:
                    pool.shutdown(cancel_futures=True)
                    print(failure)
                    sys.exit(f"baseline [{lane}]: the unmutated kernels fail the mutants' tests")
                print(f"passes  [{lane:5}] the unmutated kernels: {' '.join(tests)} ({took:.0f} s)")
            for m, future in zip(mutants, runs):
                ok, how, took = future.result()
                caught += ok
                print(
                    f"{'caught' if ok else 'MISSED'}  [{m.lane:5}] {m.name} ({how}; {took:.0f} s)",
                    flush=True,
                )
    print(f"mutants: {caught} of {len(mutants)} caught")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
