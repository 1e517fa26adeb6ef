"""model.summary(): a table of the layers, their output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

from gnn import creation
from gnn.config import no_grad
from gnn.nn.module import Module
from gnn.tensor import Tensor


def _count(module: Module) -> tuple[int, int]:
    """(trainable, non-trainable) numbers: frozen parameters and buffers count as the latter."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen + sum(b.numel() for _, b in module.named_buffers())


def _shape_text(out: Any) -> str:
    """(None, 8) for a Tensor of shape (B, 8); tuples of outputs (RNNs) shape by shape."""
    if isinstance(out, Tensor):
        dims = ", ".join(["None", *map(str, out.shape[1:])])
        return f"({dims}{',' if out.ndim == 1 else ''})"
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_text(o) for o in out) + "]"
    return "?"


def output_shapes(
    model: Module, layers: list[Module], shape: tuple, device: Any, dtype: Any
) -> dict[int, str]:
    """id(layer) -> its output shape, from one zero sample through the model.

    A forward hook on each layer records what it returns (so this works for any Module, not only
    Sequential); a layer called twice reports its last call. The hooks are removed afterwards.
    """
    shapes: dict[int, str] = {}

    def record(module: Module, args: tuple, out: Any) -> None:
        shapes[id(module)] = _shape_text(out)

    handles = [m.register_forward_hook(record) for m in layers]
    was = model.training
    model.eval()
    try:
        with no_grad():
            model(creation.zeros((1, *shape), dtype=dtype, device=device))
    except Exception:
        shapes = {}
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return shapes


def table(name: str, rows: list[tuple[str, str, str]], total: tuple[int, int]) -> str:
    """The summary text: one row per layer (label, output shape, parameters), then totals."""
    w0 = max(len("Layer (type)"), *(len(r[0]) for r in rows)) + 2
    w1 = max(len("Output Shape"), *(len(r[1]) for r in rows)) + 2
    line = "=" * (w0 + w1 + 12)
    text = [
        f'Model: "{name}"',
        line,
        f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>10}",
    ]
    text += [line, *(f"{a:<{w0}}{b:<{w1}}{c:>10}" for a, b, c in rows), line]
    text += [
        f"Total params: {total[0] + total[1]:,}",
        f"Trainable params: {total[0]:,}",
        f"Non-trainable params: {total[1]:,}",
        line,
    ]
    return "\n".join(text)


def summary_text(model: Module, body: Module, shape: tuple | None, device: Any, dtype: Any) -> str:
    """The table for `body` (the layers listed), probed through `model` with a zero sample."""
    children = list(body.named_children()) or [("", body)]
    layers = [m for _, m in children]
    shapes = output_shapes(model, layers, shape, device, dtype) if shape else {}
    rows = []
    for label, m in children:
        t, f = _count(m)
        kind = type(m).__name__
        rows.append((f"{label} ({kind})" if label else kind, shapes.get(id(m), "?"), f"{t + f:,}"))
    return table(type(body).__name__, rows, _count(body))
