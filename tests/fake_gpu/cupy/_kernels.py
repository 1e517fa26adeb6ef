"""gnn's CUDA kernels for the fake CuPy's RawModule: a launch check, then NumPy stand-ins or the
real kernel code on the CPU emulator.

A launch is checked as the GPU would take it. Grid and block must be 1-tuples within the kernel's
`__launch_bounds__`; the softmax-CE kernels also need whole warps, and their reduce one block.
Every argument is checked against the C parameter list parsed from the source:
- a pointer needs a C-contiguous device array of the pointee's type (integers of the same size
  pass: the error slots are int64 on the host and unsigned in the kernel);
- `long long` needs an np.int64, `int` an np.int32 and `float` an np.float32 (CuPy would pass a
  Python int as 64 bits and a Python float as a double, which the kernel would misread).

Then, with GNN_FAKE_CUDA=1, a stand-in writes what the kernel writes by calling the op's
reference (gnn/backend/fused/<op>.py) on flat views of the arguments: that checks gnn's launch
code and everything around it, not the CUDA code. With GNN_FAKE_CUDA=emulate, the kernel
source that RawModule was given is compiled with g++ against tests/cuda_cpu (a CUDA-on-CPU
emulator) and the launch runs the kernel code itself, one host thread per CUDA thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

EMULATE = os.environ.get("GNN_FAKE_CUDA") == "emulate"
_emulator: Any = None


def emulator() -> Any:
    """tests/cuda_cpu/emulator.py, loaded by path (tests/cuda_cpu is not a package on sys.path)."""
    global _emulator
    if _emulator is None:
        path = Path(__file__).resolve().parents[2] / "cuda_cpu" / "emulator.py"
        spec = importlib.util.spec_from_file_location("gnn_cuda_cpu_emulator", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _emulator = module
    return _emulator


_SIGNATURE = re.compile(
    r'extern "C" __global__ void __launch_bounds__\((\d+)(?:,\s*\d+)?\)\s*(\w+)\(([^)]*)\)'
)
_POINTEE = {
    "float": np.float32,
    "double": np.float64,
    "__half": np.float16,
    "long long": np.int64,
    "unsigned long long": np.uint64,
    "int": np.int32,
}
_SCALAR = {"long long": np.int64, "int": np.int32, "float": np.float32, "double": np.float64}
try:  # bfloat16 kernels (kernels/*_bf16.cu) take ml_dtypes' bfloat16 arrays
    import ml_dtypes

    _POINTEE["__nv_bfloat16"] = ml_dtypes.bfloat16
except ImportError:
    pass


def parse(code: str) -> dict[str, tuple[int, list[tuple[str, bool]]]]:
    """{kernel name: (max threads, [(C type, is pointer), ...])} for every extern "C" kernel."""
    kernels = {}
    for bound, name, params in _SIGNATURE.findall(code):
        parsed = []
        for param in params.split(","):
            words = param.replace("__restrict__", " ").replace("const", " ").replace("*", " * ")
            words = words.split()[:-1]  # drop the parameter's name
            pointer = "*" in words
            parsed.append((" ".join(w for w in words if w != "*"), pointer))
        kernels[name] = (int(bound), parsed)
    return kernels


def _check_arg(kernel: str, i: int, ctype: str, pointer: bool, arg: Any, ndarray: type) -> None:
    where = f"{kernel}: argument {i} ({ctype}{' *' if pointer else ''})"
    if pointer:
        if not isinstance(arg, ndarray):
            raise TypeError(f"{where} needs a cupy.ndarray, got {type(arg).__name__}")
        want = np.dtype(_POINTEE[ctype])
        got = arg.dtype
        same_int = want.kind in "iu" and got.kind in "iu" and want.itemsize == got.itemsize
        if got != want and not same_int:
            raise TypeError(f"{where} needs {want} data, got {got}")
        if not arg.flags.c_contiguous:
            raise ValueError(f"{where} is not C-contiguous: the kernel would read the wrong data")
        return
    want = _SCALAR[ctype]
    if type(arg) is not want:
        raise TypeError(f"{where} needs a numpy.{want.__name__}, got {type(arg).__name__} {arg!r}")


class Function:
    """One kernel of a fake RawModule: checks a launch, then runs the stand-in or the emulator."""

    def __init__(
        self, name: str, bound: int, params: list, ndarray: type, unwrap: Any, library: Any = None
    ) -> None:
        stem = re.sub(r"_(f32|f16|bf16)$", "", name)
        if library is None and stem not in _STAND_INS:
            raise AttributeError(f"the fake CuPy has no stand-in for kernel {name!r}")
        self.name, self.bound, self.params, self.stem = name, bound, params, stem
        self._ndarray, self._unwrap, self._library = ndarray, unwrap, library

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0, **kw) -> None:
        for what, dims in (("grid", grid), ("block", block)):
            if not (isinstance(dims, tuple) and len(dims) == 1 and type(dims[0]) is int):
                raise TypeError(f"{self.name}: this launch code passes {what} as a 1-tuple of int")
        blocks, threads = grid[0], block[0]
        if not 1 <= blocks <= 2**31 - 1:
            raise ValueError(f"{self.name}: grid of {blocks} blocks")
        if not 1 <= threads <= self.bound:
            raise ValueError(f"{self.name}: {threads} threads, __launch_bounds__ {self.bound}")
        if self.stem.startswith(("softmax_ce", "layer_norm", "attention")) and threads % 32:
            raise ValueError(f"{self.name}: {threads} threads is not whole warps")
        if self.stem == "softmax_ce_reduce" and blocks != 1:
            raise ValueError(f"{self.name}: needs exactly one block, got {blocks}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} parameters")
        for i, ((ctype, pointer), arg) in enumerate(zip(self.params, args)):
            _check_arg(self.name, i, ctype, pointer, arg, self._ndarray)
        import cupy

        if cupy._active:  # one launch; each array argument counted once, read or written
            cupy._record("launch", self.name, sum(a.nbytes for a in cupy._arrays(list(args))))
        if cupy._graphs._capture is None:
            self._run(blocks, threads, int(shared_mem), args)
        else:  # recorded as well while the stream captures (replayed on the same memory)
            cupy._graphs.run(lambda: self._run(blocks, threads, int(shared_mem), args), None)

    def _run(self, blocks: int, threads: int, shared_mem: int, args: tuple) -> None:
        if self._library is not None:
            host = [self._unwrap(a) if isinstance(a, self._ndarray) else a for a in args]
            self._library.launch(self.name, blocks, threads, shared_mem, host)
            return
        flat = [self._unwrap(a).reshape(-1) if isinstance(a, self._ndarray) else a for a in args]
        stand_in = _STAND_INS[self.stem]
        # a stand-in that reads tensors through a pointer table learns their dtype from the name
        kw = {"suffix": self.name[len(self.stem) + 1 :]} if stand_in in _BY_SUFFIX else {}
        with np.errstate(all="ignore"):
            stand_in(*flat, **kw)


# ---- the stand-ins: arguments as in the kernels, pointers as flat NumPy views -------------------
# Each calls the op's reference (gnn/backend/fused/<op>.py) on float32 copies, as the kernels
# compute in float32, so every formula has one Python statement of it: the reference's.

F32 = np.float32


def _fused(op: str) -> Any:
    """gnn/backend/fused/<op>.py (imported when a kernel first runs, as gnn is by then)."""
    return importlib.import_module(f"gnn.backend.fused.{op}")


def _relu_backward(y: np.ndarray, gy: np.ndarray, gx: np.ndarray, n: np.int64) -> None:
    gx[:n] = _fused("relu").reference_backward(np, y[:n].astype(F32), gy[:n].astype(F32))


def _sigmoid_forward(x: np.ndarray, y: np.ndarray, n: np.int64) -> None:
    y[:n] = _fused("sigmoid").reference(np, x[:n].astype(F32)).astype(y.dtype)


def _sigmoid_backward(y: np.ndarray, gy: np.ndarray, gx: np.ndarray, n: np.int64) -> None:
    gx[:n] = (
        _fused("sigmoid").reference_backward(np, y[:n].astype(F32), gy[:n].astype(F32))
    ).astype(gx.dtype)


def _report(err: np.ndarray, labels: np.ndarray, c: int, ignore_index: int, slot: int) -> None:
    """As report_bad_label: the first bad label and its context, and a count in `slot`."""
    if labels.size == 0:
        return
    if err[0] == 0:
        err[0], err[1], err[2], err[3] = 1, labels[0], c, ignore_index
    err[slot] += labels.size


def _rows(target: np.ndarray, n: int, c: int, ignore_index: int) -> tuple:
    """Labels, with bad ones (not a class, not ignore_index) replaced by ignore_index; bad mask."""
    t = target[:n]
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    return np.where(bad, ignore_index, t), bad


def _class_weight(weight: np.ndarray, has_weight: Any, c: int) -> np.ndarray | None:
    return weight[:c] if has_weight else None


def _softmax_ce_forward(
    logits, target, weight, weight_sum, has_weight, n, c, ignore_index, eps, lse, row_loss, err
) -> None:
    n, c, ignore_index = int(n), int(c), int(ignore_index)
    z = logits[: n * c].reshape(n, c).astype(F32)
    t, bad = _rows(target, n, c, ignore_index)
    ce = _fused("softmax_cross_entropy")
    spec = ce.Spec(_class_weight(weight, has_weight, c), ignore_index, "none", float(eps))
    loss, saved = ce.reference(np, z, t, spec)
    lse[:n] = saved.lse
    row_loss[:n] = np.where(bad, np.nan, loss)
    _report(err, target[:n][bad], c, ignore_index, slot=4)


def _softmax_ce_reduce(
    row_loss, target, weight, has_weight, n, c, ignore_index, mean, loss, denom
) -> None:
    # A sum of the row losses and of the counted rows' weights (no formula of the op's own).
    n, c = int(n), int(c)
    t, bad = _rows(target, n, c, int(ignore_index))
    counted = (t != ignore_index) & ~bad
    w = _class_weight(weight, has_weight, c)
    total = row_loss[:n].astype(np.float64).sum()
    weights = (w[t[counted]] if w is not None else np.ones(int(counted.sum()))).astype(np.float64)
    value = total / weights.sum() if mean else total
    loss[0] = F32(value)
    denom[0] = F32(weights.sum())


def _softmax_ce_backward(
    logits,
    target,
    weight,
    weight_sum,
    has_weight,
    lse,
    gloss,
    gloss_stride,
    denom,
    mean,
    n,
    c,
    ignore_index,
    eps,
    glogits,
    err,
) -> None:
    n, c, ignore_index = int(n), int(c), int(ignore_index)
    z = logits[: n * c].reshape(n, c).astype(F32)
    t, bad = _rows(target, n, c, ignore_index)
    ce = _fused("softmax_cross_entropy")
    spec = ce.Spec(_class_weight(weight, has_weight, c), ignore_index, "none", float(eps))
    # the kernel's per-row scale: the row's (or the one) upstream gradient, over denom for "mean"
    scale = gloss[np.arange(n) * int(gloss_stride)].astype(F32)
    if mean:
        scale = scale / denom[0]
    g = ce.reference_backward(np, z, t, ce.Saved(lse[:n].astype(F32)), scale, spec)
    g[bad] = np.nan
    _report(err, target[:n][bad], c, ignore_index, slot=5)
    glogits[: n * c] = g.reshape(-1).astype(glogits.dtype)


def _layer_norm_forward(x, weight, bias, has_weight, has_bias, n, d, eps, y, mean, rstd) -> None:
    n, d = int(n), int(d)
    w = weight[:d].astype(F32) if has_weight else None
    b = bias[:d].astype(F32) if has_bias else None
    rows = x[: n * d].reshape(n, d).astype(F32)
    out, saved = _fused("layer_norm").reference(np, rows, w, b, float(eps))
    y[: n * d] = out.reshape(-1).astype(y.dtype)
    mean[:n], rstd[:n] = saved.mean, saved.rstd


def _layer_norm_backward_x(x, gy, weight, has_weight, mean, rstd, n, d, gx) -> None:
    n, d = int(n), int(d)
    w = weight[:d].astype(F32) if has_weight else None
    rows = [a[: n * d].reshape(n, d).astype(F32) for a in (x, gy)]
    ln = _fused("layer_norm")
    saved, needs = ln.Saved(mean[:n], rstd[:n]), ln.Needs(True, False, False)
    g, _, _ = ln.reference_backward(np, *rows, saved, w, needs)
    gx[: n * d] = g.reshape(-1).astype(gx.dtype)


def _layer_norm_backward_wb(x, gy, mean, rstd, n, d, need_w, need_b, gweight, gbias) -> None:
    n, d = int(n), int(d)
    rows = [a[: n * d].reshape(n, d).astype(F32) for a in (x, gy)]
    ln = _fused("layer_norm")
    saved, needs = ln.Saved(mean[:n], rstd[:n]), ln.Needs(False, bool(need_w), bool(need_b))
    _, gw, gb = ln.reference_backward(np, *rows, saved, None, needs)
    if need_w:
        gweight[:d] = gw.astype(gweight.dtype)
    if need_b:
        gbias[:d] = gb.astype(gbias.dtype)


def _gelu_module() -> Any:
    import gnn.backend.fused.gelu as gelu
    from gnn.backend.numpy import NumpyBackend

    return gelu, NumpyBackend().erf


def _bias_gelu_forward(x, bias, has_bias, approx_tanh, n, d, y) -> None:
    gelu, erf = _gelu_module()
    n, d = int(n), int(d)
    b = bias[:d].astype(F32) if has_bias else None
    spec = gelu.GeluSpec("tanh" if approx_tanh else "none")
    out, _ = gelu.reference(np, x[: n * d].reshape(n, d).astype(F32), b, spec, erf)
    y[: n * d] = out.reshape(-1).astype(y.dtype)


def _bias_gelu_backward(
    x, bias, gy, has_bias, approx_tanh, n, d, chunks, need_bias, gx, partial
) -> None:
    gelu, erf = _gelu_module()
    n, d, chunks = int(n), int(d), int(chunks)
    b = bias[:d].astype(F32) if has_bias else None
    spec = gelu.GeluSpec("tanh" if approx_tanh else "none")
    saved = gelu.GeluSaved(x[: n * d].reshape(n, d).astype(F32), b)
    g = gy[: n * d].reshape(n, d).astype(F32)
    g, gb = gelu.reference_backward(np, g, saved, spec, (True, bool(need_bias)), erf)
    gx[: n * d] = g.reshape(-1).astype(gx.dtype)
    if need_bias:  # the whole sum in chunk 0's partials, zeros in the others
        partial[: chunks * d] = 0.0
        partial[:d] = gb


def _bias_gelu_backward_bias(partial, chunks, d, gbias) -> None:
    d, chunks = int(d), int(chunks)
    gbias[:d] = partial[: chunks * d].reshape(chunks, d).sum(axis=0).astype(gbias.dtype)


def _lstm_rows(a: np.ndarray, batch: int, width: int, present: Any = 1) -> np.ndarray | None:
    """The first batch * width elements as (batch, width) float32 rows; None when absent."""
    return a[: batch * width].reshape(batch, width).astype(F32) if present else None


def _lstm_cell_forward(
    xw, rec, b_ih, b_hh, c_prev, has_rec, has_bias, has_c_prev, batch, hidden, gates, c, h
) -> None:
    b, n = int(batch), int(hidden)
    lstm = _fused("lstm")
    bias = lstm.Bias(b_ih[: 4 * n].astype(F32), b_hh[: 4 * n].astype(F32)) if has_bias else None
    step = lstm.StepIn(
        _lstm_rows(xw, b, 4 * n),
        _lstm_rows(rec, b, 4 * n, has_rec),
        _lstm_rows(c_prev, b, n, has_c_prev),
        bias,
    )
    res = lstm.reference(np, step)
    for dst, src in ((gates, res.gates), (c, res.c), (h, res.h)):
        dst[: src.size] = src.reshape(-1).astype(dst.dtype)


def _lstm_cell_backward(
    gates, c, c_prev, has_c_prev, gy_h, gh_rec, has_rec, gc_in, batch, hidden, gc_out, dgates
) -> None:
    b, n = int(batch), int(hidden)
    lstm = _fused("lstm")
    grad = lstm.GradIn(
        _lstm_rows(gates, b, 4 * n),
        _lstm_rows(c, b, n),
        _lstm_rows(c_prev, b, n, has_c_prev),
        _lstm_rows(gy_h, b, n),
        _lstm_rows(gh_rec, b, n, has_rec),
        _lstm_rows(gc_in, b, n),
    )
    res = lstm.reference_backward(np, grad)
    for dst, src in ((dgates, res.dgates), (gc_out, res.gc_prev)):
        dst[: src.size] = src.reshape(-1).astype(dst.dtype)


def _attention_view(batch_heads: Any, heads: Any, rows: Any, dim: Any, group: tuple) -> Any:
    """An argument group (buffer, offset, batch / head / row strides) as a (B, H, rows, D) view."""
    from numpy.lib.stride_tricks import as_strided

    buf, off, *strides = group
    shape = (int(batch_heads) // int(heads), int(heads), int(rows), int(dim))
    item = buf.itemsize
    return as_strided(buf[int(off) :], shape, tuple(int(s) * item for s in strides) + (item,))


def _attention_forward(*a: Any) -> None:
    from gnn.backend.fused import attention as fa

    heads, bh, lq, lk, dim, scale, causal = a[21:]
    q, k, v, out = (
        _attention_view(bh, heads, n, dim, a[i : i + 5])
        for i, n in ((0, lq), (5, lk), (10, lk), (15, lq))
    )
    f64 = np.float64
    spec = fa.Spec(float(scale), bool(causal))
    saved = fa.reference(np, q.astype(f64), k.astype(f64), v.astype(f64), spec)
    out[...] = saved.out
    a[20][: int(bh) * int(lq)] = saved.lse.reshape(-1)


def _attention_backward(*a: Any, dq: bool) -> None:
    from gnn.backend.fused import attention as fa

    heads, bh, lq, lk, dim, scale, causal = a[-7:]
    rows = (lq, lk, lk, lq, lq, lq) if dq else (lq, lk, lk, lq, lk, lk)
    views = [_attention_view(bh, heads, n, dim, a[5 * i : 5 * i + 5]) for i, n in enumerate(rows)]
    lse, delta = a[-9], a[-8]
    n = int(bh) * int(lq)
    q, k, v = (x.astype(np.float64) for x in views[:3])
    spec = fa.Spec(float(scale), bool(causal))
    shape = q.shape[:-1]
    if dq:  # dq kernel: q, k, v, out, gout, gq
        gout = views[4].astype(np.float64)
        delta[:n] = fa.reference_delta(views[3].astype(np.float64), gout).reshape(-1)
    else:  # dkdv kernel: q, k, v, gout, gk, gv
        gout = views[3].astype(np.float64)
    row_lse, row_delta = lse[:n].reshape(shape), delta[:n].reshape(shape)
    gq, gk, gv = fa.reference_grads(np, q, k, v, row_lse, row_delta, gout, spec)
    if dq:
        views[5][...] = gq
    else:
        views[4][...] = gk
        views[5][...] = gv


def _adam_step(
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, clock, n, beta1, beta2, eps,
    weight_decay, maximize, amsgrad, decoupled,
) -> None:  # fmt: skip
    from gnn.backend.fused import optim

    n = int(n)
    spec = optim.AdamSpec(
        float(beta1), float(beta2), float(eps), float(weight_decay), bool(amsgrad),
        bool(decoupled), bool(maximize),
    )  # fmt: skip
    vmax = max_exp_avg_sq[:n] if amsgrad else None
    arrays = optim.AdamArrays(param[:n], grad[:n], exp_avg[:n], exp_avg_sq[:n], vmax)
    optim.adam_reference(np, spec, arrays, float(lr[0]), int(clock[0]) + 1)
    clock[0] += 1  # the kernel counts its own steps


def _sgd_step(
    param, grad, momentum_buffer, lr, n, momentum, dampening, weight_decay, maximize, nesterov,
    new_buffer,
) -> None:  # fmt: skip
    from gnn.backend.fused import optim

    n = int(n)
    spec = optim.SGDSpec(
        float(momentum), float(dampening), float(weight_decay), bool(nesterov), bool(maximize)
    )
    buf = momentum_buffer[:n] if momentum else None
    arrays = optim.SGDArrays(param[:n], grad[:n], buf, bool(new_buffer))
    optim.sgd_reference(np, spec, arrays, float(lr[0]))


def _rmsprop_step(
    param, grad, square_avg, grad_avg, momentum_buffer, lr, n, alpha, eps, weight_decay, momentum,
    maximize, centered,
) -> None:  # fmt: skip
    from gnn.backend.fused import optim

    n = int(n)
    spec = optim.RMSpropSpec(
        float(alpha), float(eps), float(weight_decay), float(momentum), bool(centered),
        bool(maximize),
    )  # fmt: skip
    ga = grad_avg[:n] if centered else None
    buf = momentum_buffer[:n] if momentum > 0 else None
    arrays = optim.RMSpropArrays(param[:n], grad[:n], square_avg[:n], ga, buf)
    optim.rmsprop_reference(np, spec, arrays, float(lr[0]))


def _clip_module() -> Any:
    import gnn.backend.fused.clip_grad_norm as clip

    return clip


def _table_arrays(table, count, suffix) -> list:
    """The arrays a multi-tensor kernel's table points at ([pointers..., sizes...]), as NumPy."""
    import ctypes

    dtype = np.dtype(_POINTEE[{"f32": "float", "f16": "__half", "bf16": "__nv_bfloat16"}[suffix]])
    out = []
    for t in range(int(count)):
        ptr, n = int(table[t]), int(table[int(count) + t])
        buf = (ctypes.c_byte * (n * dtype.itemsize)).from_address(ptr)
        out.append(np.frombuffer(buf, dtype=dtype))
    return out


def _clip_norm_partial(table, count, norm_inf, partial, suffix) -> None:
    clip = _clip_module()
    norm_type = np.inf if norm_inf else 2.0
    grads = [g.astype(F32) for g in _table_arrays(table, count, suffix)]
    total = clip.total_norm(np, grads, norm_type)  # the whole group's, in the first block's slot
    partial[:] = 0.0
    partial[0] = total if norm_inf else total * total


def _clip_norm_scale(table, count, partial, parts, norm_inf, max_norm, total, suffix) -> None:
    clip = _clip_module()
    norms = partial[: int(parts)] if norm_inf else np.sqrt(partial[: int(parts)])
    t = clip.combine(np, norms, np.inf if norm_inf else 2.0)
    total[0] = t
    coef = clip.coefficient(np, F32(t), float(max_norm))
    if coef != 1.0:
        for g in _table_arrays(table, count, suffix):
            g[:] = (g.astype(F32) * coef).astype(g.dtype)


def _conv_window(ints: tuple) -> Any:
    """The Window of gnn/backend/fused/conv.py from a kernel's 14 int arguments."""
    return _fused("conv").Window(*(int(v) for v in ints))


def _conv_im2col(x, *rest) -> None:
    *ints, cols = rest
    g = _conv_window(ints)
    xs = x[: g.n * g.c * g.h * g.w].reshape(g.n, g.c, g.h, g.w).astype(F32)
    out = _fused("conv").reference_im2col(np, xs, g).reshape(-1)
    cols[: out.size] = out


def _conv_col2im(cols, *rest) -> None:
    *ints, x = rest
    g = _conv_window(ints)
    size = g.c * g.kh * g.kw * g.n * g.oh * g.ow
    out = _fused("conv").reference_col2im(np, cols[:size].astype(F32), g).reshape(-1)
    x[: out.size] = out


def _conv_to_image(y2, bias, has_bias, n, o, p, y) -> None:
    n, o, p = int(n), int(o), int(p)
    b = bias[:o].astype(F32) if has_bias else None
    out = _fused("conv").reference_to_image(np, y2[: o * n * p].reshape(o, n * p).astype(F32), b, n)
    y[: out.size] = out.reshape(-1)


def _conv_to_rows(gy, n, o, p, need_bias, gy2, gbias) -> None:
    n, o, p = int(n), int(o), int(p)
    rows = gy[: n * o * p].reshape(n, o, p).astype(F32)
    out, gb = _fused("conv").reference_to_rows(np, rows, bool(need_bias))
    gy2[: out.size] = out.reshape(-1)
    if need_bias:
        gbias[:o] = gb


def _max_pool_forward(x, *rest) -> None:
    *ints, idx, y = rest
    g = _conv_window(ints)
    xs = x[: g.n * g.c * g.h * g.w].reshape(g.n, g.c, g.h, g.w).astype(F32)
    out, arg = _fused("conv").reference_max_pool(np, xs, g)
    y[: out.size] = out.reshape(-1)
    idx[: arg.size] = arg.reshape(-1)


def _max_pool_backward(gy, idx, *rest) -> None:
    *ints, gx = rest
    g = _conv_window(ints)
    m = g.n * g.c * g.oh * g.ow
    shape = (g.n, g.c, g.oh, g.ow)
    ref = _fused("conv").reference_max_pool_backward
    out = ref(np, gy[:m].reshape(shape).astype(F32), idx[:m].reshape(shape), g)
    gx[: out.size] = out.reshape(-1)


def _clip_norm_table(table, count, first, k, *pointers_and_sizes) -> None:
    count, first, k = int(count), int(first), int(k)
    table[first : first + k] = pointers_and_sizes[:k]
    table[count + first : count + first + k] = pointers_and_sizes[16 : 16 + k]


_BY_SUFFIX = (_clip_norm_partial, _clip_norm_scale)


_STAND_INS = {
    "clip_norm_partial": _clip_norm_partial,
    "clip_norm_table": _clip_norm_table,
    "clip_norm_scale": _clip_norm_scale,
    "adam_step": _adam_step,
    "sgd_step": _sgd_step,
    "rmsprop_step": _rmsprop_step,
    "attention_forward": _attention_forward,
    "attention_backward_dq": lambda *a: _attention_backward(*a, dq=True),
    "attention_backward_dkdv": lambda *a: _attention_backward(*a, dq=False),
    "bias_gelu_forward": _bias_gelu_forward,
    "bias_gelu_backward": _bias_gelu_backward,
    "bias_gelu_backward_bias": _bias_gelu_backward_bias,
    "layer_norm_forward": _layer_norm_forward,
    "layer_norm_backward_x": _layer_norm_backward_x,
    "layer_norm_backward_wb": _layer_norm_backward_wb,
    "lstm_cell_forward": _lstm_cell_forward,
    "lstm_cell_backward": _lstm_cell_backward,
    "relu_backward": _relu_backward,
    "sigmoid_forward": _sigmoid_forward,
    "sigmoid_backward": _sigmoid_backward,
    "softmax_ce_forward": _softmax_ce_forward,
    "softmax_ce_reduce": _softmax_ce_reduce,
    "softmax_ce_backward": _softmax_ce_backward,
    "conv_im2col": _conv_im2col,
    "conv_col2im": _conv_col2im,
    "conv_to_image": _conv_to_image,
    "conv_to_rows": _conv_to_rows,
    "max_pool_forward": _max_pool_forward,
    "max_pool_backward": _max_pool_backward,
}
