#!/usr/bin/env bash
# Compile every kernels/*.cu with nvcc for sm_80 and sm_90 (CI has nvcc but no GPU): fails on any
# error (and on any warning when nvcc supports -Werror all-warnings); prints registers and spills.
# Optional: with GNN_NVRTC_LIB=/path/to/libnvrtc.so.N, also compiles them with NVRTC the way
# cupy.RawModule does (NVRTC 12 rejects some code that nvcc accepts). GNN_NVRTC_INCLUDE: a
# colon-separated list of include folders for it (default: the CUDA headers nvcc uses).
set -euo pipefail
cd "$(dirname "$0")/.."

# NVRTC, which cupy.RawModule compiles with, lacks macros nvcc's headers give (INFINITY, NAN):
# two kernels once used INFINITY and would not have loaded on a GPU. Checked without nvcc too.
if grep -nE '^[^/]*\b(INFINITY|NAN)\b' kernels/*.cu kernels/*.cuh; then
    echo "check_kernels: INFINITY/NAN are not defined under NVRTC; build them from bits" \
        "(__int_as_float(0xff800000) is -inf)" >&2
    exit 1
fi

NVCC="${NVCC:-nvcc}"
if ! command -v "$NVCC" >/dev/null 2>&1; then
    echo "nvcc not found: skipping kernel compile check"
    exit 0
fi
ARCHS="${GNN_KERNEL_ARCHS:-80 90}"

shopt -s nullglob
files=(kernels/*.cu)
if [ "${#files[@]}" -eq 0 ]; then
    echo "check_kernels: no kernels/*.cu found" >&2
    exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# -Werror all-warnings where this nvcc knows it
werror=()
echo '__global__ void probe() {}' > "$scratch/probe.cu"
if "$NVCC" -cubin -arch=sm_80 -Werror all-warnings -o /dev/null "$scratch/probe.cu" >/dev/null 2>&1; then
    werror=(-Werror all-warnings)
fi
echo "$("$NVCC" --version | tail -1); flags: -cubin --resource-usage ${werror[*]}"

failed=0
for f in "${files[@]}"; do
    for arch in $ARCHS; do
        if "$NVCC" -cubin -arch="sm_$arch" --resource-usage "${werror[@]}" -o /dev/null "$f" \
            > "$scratch/log" 2>&1; then
            echo "ok   $f sm_$arch"
            # one line per kernel: name, registers, spills
            awk '/Compiling entry function/ { name = $7; gsub(/\047/, "", name) }
                 /spill stores/ { spill = $0; sub(/^ +/, "", spill) }
                 /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/);
                                            printf "       %-28s %s; %s\n", name, substr($0, RSTART, RLENGTH), spill }' \
                "$scratch/log"
        else
            echo "FAIL $f sm_$arch"
            cat "$scratch/log"
            failed=1
        fi
    done
done

if [ -n "${GNN_NVRTC_LIB:-}" ]; then
    # default: the CUDA headers nvcc itself uses (nvcc may be a wrapper script, so ask it)
    cuda_inc="$("$NVCC" --dryrun -c -x cu -o /dev/null /dev/null 2>&1 |
        sed -n 's/^#\$ INCLUDES="-I\([^" ]*\)".*/\1/p' | head -1)"
    include="${GNN_NVRTC_INCLUDE:-$cuda_inc:$cuda_inc/cccl}"
    python3 - "$GNN_NVRTC_LIB" "$include" "$ARCHS" "${files[@]}" <<'EOF' || failed=1
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
includes = [b"-I" + p.encode() for p in sys.argv[2].split(":") if p]
ok = True
for path in sys.argv[4:]:
    source = open(path, "rb").read()
    for arch in sys.argv[3].split():
        prog = ctypes.c_void_p()
        if lib.nvrtcCreateProgram(ctypes.byref(prog), source, path.encode(), 0, None, None) != 0:
            sys.exit(f"nvrtcCreateProgram failed for {path}")
        # as gnn's RawModule; -Ikernels stands in for the header pasting of kernel_source()
        opts = [b"--std=c++17", b"-Ikernels", *includes, f"-arch=sm_{arch}".encode()]
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        print(f"{'ok  ' if rc == 0 else 'FAIL'} {path} sm_{arch} (NVRTC)")
        if log.value.strip():
            print(log.value.decode().rstrip())
        ok = ok and rc == 0
sys.exit(0 if ok else 1)
EOF
else
    echo "GNN_NVRTC_LIB not set: skipping the NVRTC compile check"
fi

if [ "$failed" -ne 0 ]; then
    echo "check_kernels: FAILED" >&2
    exit 1
fi
echo "check_kernels: all kernels compile"
