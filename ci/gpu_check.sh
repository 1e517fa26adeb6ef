#!/usr/bin/env bash
# One call on a lent GPU machine (the order of docs/gpu-method.md): gpu tests (the kernel, parity, module,
# file and Keras ones, then the rest), compute-sanitizer over the kernel tests, then the GPU
# benchmarks. Logs, JUnit XML and benchmark JSON go to $OUT (default
# ./gpu-out); a short table is printed last. Each step has its own time limit, so one slow step
# cannot eat the whole lease; a step that fails is reported and the next one still runs.
#   usage: OUT=/some/dir bash ci/gpu_check.sh            (from the repository root)
#   GNN_GPU_STEPS="tests tests_rest sanitizer bench" selects steps; GNN_GPU_LIMITS="100 120 120 200"
#   their limits (s).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
steps=(${GNN_GPU_STEPS:-tests tests_rest sanitizer bench})
read -r -a limits <<< "${GNN_GPU_LIMITS:-100 120 120 200}"
first_tests=(tests/test_kernels_gpu.py tests/test_backend_parity.py tests/test_module.py
    tests/test_io.py tests/test_checkpoint.py tests/test_keras.py tests/test_cli.py)
declare -A status seconds

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    git rev-parse --short HEAD 2>/dev/null || echo "commit unknown"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__, \
'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" 2>&1
    python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" 2>&1
    nvcc --version 2>&1 | tail -1
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

run_step() {  # name limit command...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    seconds[$name]=$((SECONDS - start))
    case $rc in
        0) status[$name]="ok" ;;
        124) status[$name]="TIMEOUT after ${limit}s" ;;
        *) status[$name]="FAILED (rc $rc)" ;;
    esac
    tail -n 3 "$OUT/$name.log"
}

for i in "${!steps[@]}"; do
    step=${steps[$i]}
    limit=${limits[$i]:-240}
    case $step in
        tests)  # the gpu-marked tests that matter most (CI runs the CPU tests), in their own step
            # so that a slow rest (CuPy compiles every new kernel on a fresh machine) cannot hide them
            run_step tests "$limit" python3 -m pytest -q -m gpu --junitxml="$OUT/tests.xml" \
                -p no:cacheprovider "${first_tests[@]}" ;;
        tests_rest)  # every other gpu-marked test
            ignores=()
            for f in "${first_tests[@]}"; do ignores+=(--ignore="$f"); done
            run_step tests_rest "$limit" python3 -m pytest -q -m gpu \
                --junitxml="$OUT/tests_rest.xml" -p no:cacheprovider "${ignores[@]}" tests ;;
        sanitizer)  # memcheck over the kernel tests (slow: the kernel tests only)
            run_step sanitizer "$limit" compute-sanitizer --tool memcheck --error-exitcode 9 \
                python3 -m pytest -q -x -p no:cacheprovider tests/test_kernels_gpu.py ;;
        racecheck)
            run_step racecheck "$limit" compute-sanitizer --tool racecheck --error-exitcode 9 \
                python3 -m pytest -q -x -p no:cacheprovider tests/test_kernels_gpu.py \
                -k "not 50257 and not large" ;;
        bench)  # GPU groups and the per-op overhead; the CPU groups are measured elsewhere
            run_step bench "$limit" python3 -m pytest -q -p no:cacheprovider --benchmark-only \
                --benchmark-json="$OUT/bench.json" -m gpu benchmarks/test_bench_kernels.py \
                benchmarks/test_bench_overhead.py benchmarks/test_bench_transformer.py ;;
        *) status[$step]="unknown step"; seconds[$step]=0 ;;
    esac
done

echo
if [ -f "$OUT/bench.json" ]; then
    python3 - "$OUT/bench.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["benchmarks"]
print(f"{'benchmark':58s} {'median ms':>10s} {'ratio':>7s} {'GB/s':>7s} {'of copy':>7s} target")
for b in rows:
    e = b["extra_info"]
    ratio = e.get("ratio", "")
    print(f"{b['fullname'].split('::', 1)[-1][:58]:58s} {b['stats']['median'] * 1e3:10.3f} "
          f"{ratio!s:>7s} {e.get('GB/s', '')!s:>7s} {e.get('fraction_of_copy', '')!s:>7s} "
          f"{e.get('target', '')}")
EOF
fi
echo
printf '%-10s %-22s %s\n' step status seconds
for step in "${steps[@]}"; do
    printf '%-10s %-22s %s\n' "$step" "${status[$step]}" "${seconds[$step]}"
done
