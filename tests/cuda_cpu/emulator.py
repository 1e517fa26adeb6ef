"""Builds gnn's CUDA kernels with g++ against cuda_emu.h and launches them on CPU threads.

The fake CuPy (tests/fake_gpu) calls this in GNN_FAKE_CUDA=emulate mode: its RawModule hands over
the source that gnn.backend.kernels.kernel_source() produced, and each launch goes to the compiled
kernel instead of a NumPy stand-in. So gnn's launch code drives the unchanged kernel code.

- Build: the source, plus one extern "C" trampoline per kernel (generated from its parsed C
  signature), compiled into a shared library, cached under tests/cuda_cpu/build by a hash of the
  source, the headers and the flags. GNN_EMU_SANITIZE=address adds -fsanitize=address,undefined,
  =thread -fsanitize=thread; the process must then have the sanitizer runtime preloaded
  (ci/emulate.sh does that). cuda_emu.h is precompiled once per set of flags (a .gch that g++
  picks up before the header itself; it only saves parsing time). `python emulator.py prebuild
  LANE...` compiles every kernels/*.cu for those lanes up front, one g++ per core.
- Launch: every pointer argument's bytes are copied into a buffer of exactly that size, allocated
  by the instrumented library at the same offset from a 256-byte boundary as in CuPy's allocations,
  so AddressSanitizer sees a read one past a row and the kernels take the same alignment paths;
  the buffers are copied back afterwards. Arguments that overlap share one buffer.
- Reports: with GNN_EMU_REPORTS=<folder> (the sanitizers' log_path points there), any report written
  during a launch fails that launch with the report's text.
- `extern __shared__ T name[];` (dynamic shared memory) is rewritten to a pointer into the launch's
  shared buffer before compiling; that is the only change made to a kernel's text.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"
BUILD = HERE / "build"

_SANITIZE = {
    "": [],
    "address": [
        "-fsanitize=address,undefined",
        "-fsanitize-recover=address",
        "-fno-omit-frame-pointer",
    ],
    "thread": ["-fsanitize=thread"],
}
_RUNTIME_SYMBOL = {"address": "__asan_init", "thread": "__tsan_init"}
_CTYPES = {
    "long long": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong,
    "int": ctypes.c_int,
    "unsigned int": ctypes.c_uint,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
}
_DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([A-Za-z_][\w:]*(?:\s+[A-Za-z_]\w*)*?)\s+"
    r"(\w+)\s*\[\s*\]\s*;"
)


def sanitizer() -> str:
    """The sanitizer the kernels are built with: "", "address" (with undefined) or "thread"."""
    value = os.environ.get("GNN_EMU_SANITIZE", "")
    if value not in _SANITIZE:
        raise ValueError(f"GNN_EMU_SANITIZE={value!r}: use address, thread or nothing")
    return value


def compile_flags(sanitize: str) -> list[str]:
    """g++ flags for one kernel library (-g1: line tables, all a sanitizer's stack trace needs)."""
    return [
        "-std=gnu++17",
        "-O1",
        "-g1",
        "-pthread",
        "-fPIC",
        "-shared",
        "-Wno-unknown-pragmas",
        f"-I{INCLUDE}",
        "-include",
        "cuda_emu.h",
        *_SANITIZE[sanitize],
    ]


def _trampoline(name: str, params: list[tuple[str, bool]]) -> str:
    """extern "C" gnn_emu_launch_<name>(grid, threads, shared bytes, void** args) for one kernel."""
    unpacked = ", ".join(
        f"*static_cast<{ctype}**>(a[{i}])" if pointer else f"*static_cast<{ctype}*>(a[{i}])"
        for i, (ctype, pointer) in enumerate(params)
    )
    return (
        f'extern "C" int gnn_emu_launch_{name}(unsigned int grid, unsigned int threads, '
        f"size_t shared, void** a) {{\n"
        f"    return ::gnn_emu::launch(grid, threads, shared, [a] {{ {name}({unpacked}); }});\n"
        f"}}\n"
    )


def translation_unit(code: str, kernels: dict[str, tuple[int, list]]) -> str:
    """The C++ that g++ compiles: the kernel source, its trampolines, the emulator runtime."""
    code = _DYNAMIC_SHARED.sub(
        r"\1* \2 = reinterpret_cast<\1*>(::gnn_emu::dynamic_shared());", code
    )
    trampolines = "".join(_trampoline(name, params) for name, (_, params) in kernels.items())
    return (
        f"{code}\n\n// ---- emulator entry points ----\n"
        f'#include "cuda_emu_runtime.h"\n{trampolines}'
    )


def _digest(*parts: str) -> str:
    key = hashlib.sha256()
    for part in [*parts, *(p.read_text() for p in sorted(INCLUDE.glob("*.h")))]:
        key.update(part.encode())
    return key.hexdigest()[:20]


def _compile(args: list[str]) -> subprocess.CompletedProcess:
    # g++ itself runs without the sanitizer runtime this process may have preloaded
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run(["g++", *args], capture_output=True, text=True, env=env)


def precompiled_header(flags: list[str]) -> Path | None:
    """A folder holding cuda_emu.h.gch built with `flags` (built on first use); None if g++ can't.

    Put on the include path ahead of include/, g++ reads the .gch instead of parsing cuda_emu.h
    and the standard headers again (about 0.5 s of each build); one that does not match the
    flags is ignored by g++, which then reads the header: the library is the same either way.
    """
    header_flags = [f for f in flags if f not in ("-shared", "-include", "cuda_emu.h")]
    folder = BUILD / f"pch-{_digest(' '.join(header_flags))}"
    target = folder / "cuda_emu.h.gch"
    if target.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"cuda_emu.h.{os.getpid()}.{threading.get_ident()}.tmp"
    result = _compile(
        [*header_flags, "-x", "c++-header", str(INCLUDE / "cuda_emu.h"), "-o", str(partial)]
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, target)  # atomic: a concurrent build of the same header is harmless
    return folder


def library_path(code: str, kernels: dict[str, tuple[int, list]], sanitize: str) -> Path:
    """Where the library for this source and sanitizer is cached."""
    key = _digest(translation_unit(code, kernels), " ".join(compile_flags(sanitize)))
    return BUILD / f"{sanitize or 'plain'}-{key}.so"


def build(code: str, kernels: dict[str, tuple[int, list]], sanitize: str | None = None) -> Path:
    """The shared library for this source and sanitizer, compiled unless already cached."""
    sanitize = sanitizer() if sanitize is None else sanitize
    target = library_path(code, kernels, sanitize)
    if target.is_file():
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    unit = translation_unit(code, kernels)
    flags = compile_flags(sanitize)
    # The .cpp stays next to the library: sanitizer reports point into it.
    source = target.with_suffix(".cpp")
    unique = f"{os.getpid()}.{threading.get_ident()}"
    scratch = target.with_suffix(f".{unique}.cpp")
    scratch.write_text(unit)
    os.replace(scratch, source)
    partial = target.with_suffix(f".{unique}.tmp")
    pch = precompiled_header(flags)
    # the .gch's folder ahead of include/: g++ looks for cuda_emu.h.gch where it finds the header
    result = _compile([*([f"-I{pch}"] if pch else []), *flags, "-o", str(partial), str(source)])
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"g++ could not compile the kernels ({source}):\n{result.stderr}")
    os.replace(partial, target)  # atomic: a concurrent build of the same key is harmless
    return target


LANES = {"plain": "", "asan": "address", "tsan": "thread"}  # ci/emulate.sh's lane -> sanitizer


def prebuild(lanes: list[str], jobs: int) -> int:
    """Builds every kernels/*.cu (as gnn hands it to CuPy) for these lanes, `jobs` at a time.

    Tests then find each library cached instead of compiling one at a time as they reach it.
    Returns how many libraries were compiled (the rest were cached).
    """
    import importlib.util
    import time
    from concurrent.futures import ThreadPoolExecutor

    from gnn.backend.kernels import kernel_dir, kernel_source

    spec = importlib.util.spec_from_file_location(
        "gnn_emu_kernels", HERE.parent / "fake_gpu" / "cupy" / "_kernels.py"
    )
    assert spec is not None and spec.loader is not None
    signatures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(signatures)
    sources = [kernel_source(p.stem) for p in sorted(kernel_dir().glob("*.cu"))]
    sanitizers = [LANES[lane] for lane in lanes]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # the headers first (every build of a lane reads its one), then the libraries
        list(pool.map(precompiled_header, [compile_flags(s) for s in sanitizers]))
        work = [(code, signatures.parse(code), s) for s in sanitizers for code in sources]
        cold = [w for w in work if not library_path(*w).is_file()]
        list(pool.map(lambda w: build(*w), cold))
    took = time.monotonic() - start
    print(
        f"emulate: built {len(cold)} of {len(work)} kernel libraries "
        f"({' '.join(lanes)}; {jobs} at a time) in {took:.0f} s",
        flush=True,
    )
    return len(cold)


class _Reports:
    """Sanitizer reports written under GNN_EMU_REPORTS since the last look."""

    def __init__(self) -> None:
        folder = os.environ.get("GNN_EMU_REPORTS")
        self.folder = Path(folder) if folder else None
        self.seen: dict[Path, int] = {}

    def new_text(self) -> str:
        if self.folder is None or not self.folder.is_dir():
            return ""
        text = []
        for path in sorted(self.folder.iterdir()):
            size = path.stat().st_size
            if size > self.seen.get(path, 0):
                with path.open("rb") as f:
                    f.seek(self.seen.get(path, 0))
                    text.append(f.read().decode(errors="replace"))
                self.seen[path] = size
        return "".join(text)


_reports = _Reports()


def _allocation_start(a: np.ndarray) -> int:
    """The address of the allocation an array lives in (the start of its base array)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.__array_interface__["data"][0]


class Library:
    """One compiled kernel source; `launch` runs one of its kernels on the host."""

    def __init__(self, path: Path, kernels: dict[str, tuple[int, list]], sanitize: str) -> None:
        if sanitize and not hasattr(ctypes.CDLL(None), _RUNTIME_SYMBOL[sanitize]):
            raise RuntimeError(
                f"GNN_EMU_SANITIZE={sanitize} needs the sanitizer runtime preloaded "
                f"(LD_PRELOAD=$(g++ -print-file-name=lib{sanitize[0]}san.so)): "
                f"run bash ci/emulate.sh"
            )
        self.path = path
        self.kernels = kernels
        self._lib = ctypes.CDLL(str(path))
        self._lib.gnn_emu_error.restype = ctypes.c_char_p
        self._lib.gnn_emu_alloc.restype = ctypes.c_void_p
        self._lib.gnn_emu_alloc.argtypes = [
            ctypes.c_size_t,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_void_p),
        ]
        self._lib.gnn_emu_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._entry: dict[str, Any] = {}
        for name in kernels:
            fn = getattr(self._lib, f"gnn_emu_launch_{name}")
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p]
            self._entry[name] = fn

    def launch(self, name: str, grid: int, threads: int, shared_mem: int, args: list) -> None:
        """Runs kernel `name`; args are NumPy arrays (pointers) and NumPy scalars, as CuPy gets."""
        params = self.kernels[name][1]
        holders: list[Any] = []
        arrays = [(i, a) for i, a in enumerate(args) if params[i][1]]
        groups = self._copy_in(arrays)
        pointer = {i: p for group in groups for i, p in group["pointers"].items()}
        for i, ((ctype, is_pointer), arg) in enumerate(zip(params, args)):
            holders.append(ctypes.c_void_p(pointer[i]) if is_pointer else _CTYPES[ctype](arg))
        argv = (ctypes.c_void_p * len(holders))(*(ctypes.addressof(h) for h in holders))
        try:
            rc = self._entry[name](grid, threads, shared_mem, argv)
        finally:
            self._copy_out(groups)
        report = _reports.new_text()
        if report:
            raise RuntimeError(f"{name}: sanitizer report during the emulated launch:\n{report}")
        if rc != 0:
            raise RuntimeError(
                f"{name}: emulated launch failed: {self._lib.gnn_emu_error().decode()}"
            )
        _note_launch(name)

    def _copy_in(self, arrays: list[tuple[int, np.ndarray]]) -> list[dict]:
        """Exactly sized copies of the pointer arguments; overlapping arguments share one."""
        spans = sorted((a.__array_interface__["data"][0], a.nbytes, i, a) for i, a in arrays)
        groups: list[dict] = []
        for start, size, i, a in spans:
            if groups and start < groups[-1]["end"]:
                g = groups[-1]
                g["end"] = max(g["end"], start + size)
            else:
                g = {"start": start, "end": start + size, "members": [], "offset": 0}
                g["offset"] = (start - _allocation_start(a)) % 256
                groups.append(g)
            g["members"].append((i, start, a))
        for g in groups:
            size = g["end"] - g["start"]
            base = ctypes.c_void_p()
            buf = self._lib.gnn_emu_alloc(size, g["offset"], ctypes.byref(base))
            if not buf:
                raise MemoryError(f"emulator: cannot allocate {size} bytes")
            ctypes.memmove(buf, g["start"], size)
            g["buffer"], g["base"] = buf, base.value
            g["pointers"] = {i: buf + (start - g["start"]) for i, start, _ in g["members"]}
        return groups

    def _copy_out(self, groups: list[dict]) -> None:
        for g in groups:
            if any(a.flags.writeable for _, _, a in g["members"]):
                ctypes.memmove(g["start"], g["buffer"], g["end"] - g["start"])
            self._lib.gnn_emu_free(g["base"], g["offset"])


_launched: set[tuple[str, str]] = set()


def _note_launch(name: str) -> None:
    """Appends the kernel's name to GNN_EMU_LAUNCHED (a file), once per process and file."""
    log = os.environ.get("GNN_EMU_LAUNCHED")
    if log and (log, name) not in _launched:
        _launched.add((log, name))
        with open(log, "a") as f:
            f.write(name + "\n")


_libraries: dict[Path, Library] = {}


def load(code: str, kernels: dict[str, tuple[int, list]]) -> Library:
    """The loaded library for this kernel source (built on first use, then cached)."""
    sanitize = sanitizer()
    path = build(code, kernels, sanitize)
    lib = _libraries.get(path)
    if lib is None:
        lib = _libraries[path] = Library(path, kernels, sanitize)
    return lib


def main(argv: list[str]) -> int:
    """`prebuild [LANE ...] [--jobs N]`: compile the kernel libraries of those lanes up front."""
    args = list(argv)
    jobs = len(os.sched_getaffinity(0))
    if "--jobs" in args:
        at = args.index("--jobs")
        jobs = int(args[at + 1])
        del args[at : at + 2]
    if not args or args[0] != "prebuild" or any(a not in LANES for a in args[1:]):
        print(f"usage: emulator.py prebuild [{'|'.join(LANES)} ...] [--jobs N]", file=sys.stderr)
        return 2
    prebuild(args[1:] or list(LANES), jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
