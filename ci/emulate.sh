#!/usr/bin/env bash
# gnn's CUDA kernels executed on the CPU (tests/cuda_cpu): the gpu-marked kernel tests and the
# whole-model parity tests with GNN_FAKE_CUDA=emulate, where the fake CuPy's RawModule compiles
# kernels/*.cu with g++ and runs them one host thread per CUDA thread. Three lanes:
#   asan   -fsanitize=address,undefined, the code-path tests and the parity tests ($SANITIZED)
#   tsan   -fsanitize=thread, the same selection less the two largest whole models (gpt and
#          transformer: half of the lane's time under TSan, their kernels all run in the
#          code-path tests); every kernel the asan lane launched must have been launched in
#          this lane too (checked after it: each kernel with shared memory, barriers or warp
#          operations still runs under TSan)
#   plain  no sanitizer, every gpu-marked kernel and parity test (last: the output ends with
#          pytest's summary line)
# A sanitizer report fails the launch it came from, and the lane if any is left at its end.
# First every kernels/*.cu is compiled for the lanes to run, one g++ per core
# (tests/cuda_cpu/emulator.py prebuild); the tests then find the libraries built.
# `bash ci/emulate.sh --mutants` instead runs the mutation check (tests/cuda_cpu/mutants.py),
# which ends with "mutants: N of N caught". GNN_EMU_LANES="plain" (say) runs only some lanes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--mutants" ]; then
    shift
    exec python tests/cuda_cpu/mutants.py "$@"
fi

if ! command -v g++ >/dev/null 2>&1; then
    echo "emulate: g++ not found" >&2
    exit 1
fi

TESTS=(tests/test_kernels_gpu.py tests/test_backend_parity.py tests/test_kernel_lstm.py
    tests/test_kernel_gelu.py tests/test_kernel_optim.py tests/test_kernel_clip_grad_norm.py
    tests/test_kernel_attention.py tests/test_kernel_conv.py tests/test_kernel_relu.py)
# every kernel code path at small sizes, bad labels, any grid, whole models
SANITIZED="code_path or any_grid or out_of_range or all_ignored or empty_batch or extremes \
or non_contiguous_and_misaligned or cuda_matches_cpu or (optim_kernel and float32)"
LANES="${GNN_EMU_LANES:-asan tsan plain}"
TSAN_SKIPS="on_whole_model and (gpt or transformer)"
# no Hypothesis nor benchmark plugin: half of pytest's start-up, and these tests use neither
PYTEST=(python -m pytest -q -m gpu -p no:cacheprovider -p no:hypothesispytest -p no:benchmark)

reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
export GNN_FAKE_CUDA=emulate
export OPENBLAS_NUM_THREADS=1 # no uninstrumented BLAS threads in the sanitized process

run_lane() {
    local lane="$1"
    shift
    local start=$SECONDS
    mkdir -p "$reports/$lane"
    echo "== emulate lane: $lane"
    : >"$reports/$lane.launched" # the kernels launched in the lane, one name a line
    env GNN_EMU_REPORTS="$reports/$lane" GNN_EMU_LAUNCHED="$reports/$lane.launched" "$@"
    if [ -n "$(ls -A "$reports/$lane")" ]; then
        echo "emulate: lane $lane left sanitizer reports:" >&2
        cat "$reports/$lane"/* >&2
        exit 1
    fi
    # the last lane's own output ends the script: pytest's summary line, with its time
    if [ "$lane" != "$last" ]; then
        echo "== emulate lane $lane: $((SECONDS - start)) s"
    fi
}

# kernels launched in lane $1 but never in lane $2 (both must have run)
missing_launches() {
    comm -23 <(sort -u "$reports/$1.launched") <(sort -u "$reports/$2.launched")
}

last="${LANES##* }"
# shellcheck disable=SC2086 # the lane names are words
python tests/cuda_cpu/emulator.py prebuild $LANES
for lane in $LANES; do
    case "$lane" in
    asan)
        run_lane asan env GNN_EMU_SANITIZE=address \
            ASAN_OPTIONS="detect_leaks=0:halt_on_error=0:log_path=$reports/asan/asan" \
            UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/asan/ubsan" \
            LD_PRELOAD="$(g++ -print-file-name=libasan.so)" \
            "${PYTEST[@]}" "${TESTS[@]}" -k "$SANITIZED"
        ;;
    tsan)
        run_lane tsan env GNN_EMU_SANITIZE=thread \
            TSAN_OPTIONS="halt_on_error=0:log_path=$reports/tsan/tsan" \
            LD_PRELOAD="$(g++ -print-file-name=libtsan.so)" \
            "${PYTEST[@]}" "${TESTS[@]}" -k "($SANITIZED) and not ($TSAN_SKIPS)"
        if [ -f "$reports/asan.launched" ] && [ -n "$(missing_launches asan tsan)" ]; then
            echo "emulate: kernels the asan lane launched but the tsan lane never did (give" \
                "each a code-path test): $(missing_launches asan tsan | tr '\n' ' ')" >&2
            exit 1
        fi
        ;;
    plain)
        run_lane plain "${PYTEST[@]}" "${TESTS[@]}"
        ;;
    *)
        echo "emulate: unknown lane $lane (asan, tsan, plain)" >&2
        exit 1
        ;;
    esac
done
