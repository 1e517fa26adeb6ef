"""L-BFGS (PyTorch's algorithm and defaults: two-loop recursion, optional strong-Wolfe search).

Works on one flat vector of all parameters; every step re-evaluates the model through the
closure, so step() requires one. The line search follows Nocedal and Wright, "Numerical
Optimization" (2nd ed.), algorithms 3.5 and 3.6, with cubic interpolation (their eq. 3.59).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from gnn.config import enable_grad, no_grad
from gnn.optim.optimizer import Optimizer, check_range
from gnn.tensor import Tensor


def _cubic_min(
    x1: float, f1: float, g1: float, x2: float, f2: float, g2: float, bounds: Any = None
) -> float:
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to bounds
    (default: between x1 and x2); the middle of the bounds when the cubic has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(disc)
    if x1 <= x2:
        t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
    else:
        t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
    return min(max(t, lo), hi)


def _strong_wolfe(
    evaluate: Callable[[float], tuple[float, Any]],
    t: float,
    d: Any,
    f: float,
    g: Any,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Any, float, int]:
    """A step t along d meeting the strong Wolfe conditions: (loss, grad, t, evaluations)."""

    d_norm = float(abs(d).max())
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    # Bracketing: grow t until an interval holding a good step is found.
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            b_f, b_g, b_gtd = [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, b_f, b_g, b_gtd = [t], [f_new], [g_new], [gtd_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            b_f, b_g, b_gtd = [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        lo, hi = t + 0.01 * (t - t_prev), t * 10.0
        t_next = _cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(lo, hi))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, b_f, b_g, b_gtd = [0.0, t], [f, f_new], [g, g_new], [gtd, gtd_new]

    # Zoom: shrink the bracket until a step satisfies both conditions.
    stalled = False
    low, high = (0, 1) if b_f[0] <= b_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_min(bracket[0], b_f[0], b_gtd[0], bracket[1], b_f[1], b_gtd[1])
        top, bottom = max(bracket), min(bracket)
        margin = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < margin:
            # Too near an end: step back inside unless the last try was already near one.
            if stalled or t >= top or t <= bottom:
                t = top - margin if abs(t - top) < abs(t - bottom) else bottom + margin
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= b_f[low]:
            bracket[high], b_f[high], b_g[high], b_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if b_f[0] <= b_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], b_f[high] = bracket[low], b_f[low]
                b_g[high], b_gtd[high] = b_g[low], b_gtd[low]
            bracket[low], b_f[low], b_g[low], b_gtd[low] = t, f_new, g_new, gtd_new
    return b_f[low], b_g[low], bracket[low], evals


def _dot(a: Any, b: Any) -> float:
    return float(a.dot(b))


class LBFGS(Optimizer):
    """Limited-memory BFGS: step(closure) runs up to max_iter quasi-Newton iterations.

    The closure must clear the gradients, compute the loss, call backward() and return the loss.
    line_search_fn=None takes fixed steps of lr; "strong_wolfe" searches each step. All
    parameters form one group (as in PyTorch); the state lives with the first parameter.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change, history_size=history_size,
            line_search_fn=line_search_fn,
        )  # fmt: skip
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: all parameters must be in one param group")
        self._params: list[Tensor] = self.param_groups[0]["params"]

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        for name in ("max_iter", "max_eval", "history_size"):
            v = group[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LBFGS: {name} must be an integer >= 1, got {v!r}")
        check_range("LBFGS", "tolerance_grad", group["tolerance_grad"], 0.0)
        check_range("LBFGS", "tolerance_change", group["tolerance_change"], 0.0)
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(
                f"LBFGS: line_search_fn must be None or 'strong_wolfe', "
                f"got {group['line_search_fn']!r}"
            )

    # ---- state dicts: the state is flat vectors over all parameters, not one per parameter -------

    def checked_state(self, state_dict: Any) -> tuple[list[dict[str, Any]], dict]:
        """(new param groups, new state) from a saved state dict, all checked; changes nothing."""
        who = "LBFGS.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ValueError(f"{who}: expected a dict, got {type(state_dict).__name__}")
        saved = state_dict.get("state", {})
        if not isinstance(saved, dict):
            raise ValueError(f"{who}: 'state' must be a dict, got {type(saved).__name__}")
        new_groups, _ = super().checked_state({**state_dict, "state": {}})
        new_state: dict[Tensor, dict[str, Any]] = {}
        first = state_dict["param_groups"][0]["params"][0] if self._params else None
        entry = saved.get(first, saved.get(str(first)))
        if entry is not None:
            new_state[self._params[0]] = self._checked_entry(entry, who)
        return new_groups, new_state

    def _checked_entry(self, entry: Any, who: str) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise ValueError(f"{who}: the saved state must be a dict")
        first = self._params[0]
        n = sum(p.numel() for p in self._params)

        def count(key: str) -> int:
            v = entry.get(key, 0)
            v = v.item() if hasattr(v, "item") else v
            if isinstance(v, bool) or not float(v).is_integer() or v < 0:
                raise ValueError(f"{who}: state {key!r} must be an integer >= 0, got {v!r}")
            return int(v)

        def number(key: str, v: Any) -> float | None:
            if v is None:
                return None
            v = v.item() if hasattr(v, "item") else v
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{who}: state {key!r} must be a number, got {v!r}")
            return float(v)

        def vector(key: str, v: Any) -> Tensor | None:
            if v is None:
                return None
            arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
            if arr.shape != (n,) or arr.dtype.kind != "f":
                raise ValueError(
                    f"{who}: state {key!r} must be a float vector of the {n} parameter values, "
                    f"got {arr.dtype} of shape {arr.shape}"
                )
            return Tensor.wrap(first.backend.asarray(arr, dtype=first.dtype).copy(), first.backend)

        out: dict[str, Any] = {"func_evals": count("func_evals"), "n_iter": count("n_iter")}
        for key in ("d", "prev_flat_grad"):
            if key in entry:
                out[key] = vector(key, entry[key])
        for key in ("t", "H_diag", "prev_loss"):
            if key in entry:
                out[key] = number(key, entry[key])
        lists = {k: entry.get(k, []) for k in ("old_dirs", "old_stps", "ro")}
        if not all(isinstance(v, (list, tuple)) for v in lists.values()) or (
            len({len(v) for v in lists.values()}) != 1
        ):
            raise ValueError(f"{who}: old_dirs, old_stps and ro must be lists of one length")
        out["old_dirs"] = [vector("old_dirs", v) for v in lists["old_dirs"]]
        out["old_stps"] = [vector("old_stps", v) for v in lists["old_stps"]]
        out["ro"] = [number("ro", v) for v in lists["ro"]]
        return out  # PyTorch's scratch list "al" is not state: it is dropped

    # ---- the parameters as one flat vector -----------------------------------------------------

    def _flat_grad(self) -> Any:
        xp = self._params[0].backend.xp
        parts = [
            xp.zeros(p.numel(), dtype=p.dtype) if p.grad is None else p.grad.array.reshape(-1)
            for p in self._params
        ]
        return xp.concatenate(parts)

    def _add_to_params(self, step: float, d: Any) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.array += step * d[offset : offset + n].reshape(p.shape)
            offset += n

    def _set_params(self, values: list[Any]) -> None:
        for p, v in zip(self._params, values):
            p.array[...] = v

    def _evaluate(self, closure: Callable[[], Any]) -> float:
        with enable_grad():
            return float(closure())

    # ---- the step ------------------------------------------------------------------------------

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run up to max_iter iterations through `closure`; returns the first loss it gave."""
        if closure is None:
            raise RuntimeError(
                "LBFGS.step needs a closure that clears the gradients, computes the loss, calls "
                "backward() and returns the loss"
            )
        self._follow_parameters()
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        first = self._params[0]
        state = self.state.setdefault(first, {"func_evals": 0, "n_iter": 0})

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if float(abs(flat_grad).max()) <= tol_grad:  # already at an optimum
            return orig_loss

        d = _raw(state.get("d"))
        t = state.get("t")
        old_dirs = [_raw(v) for v in state.get("old_dirs", [])]
        old_stps = [_raw(v) for v in state.get("old_stps", [])]
        ro = list(state.get("ro", []))
        h_diag = state.get("H_diag")
        prev_flat_grad = _raw(state.get("prev_flat_grad"))
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                # Update the curvature pairs, then the two-loop recursion for d = -H g.
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(y, s)
                if ys > 1e-10:  # skip pairs that would break positive definiteness
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / _dot(y, y)
                alphas = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    alphas[i] = _dot(old_stps[i], q) * ro[i]
                    q = q - alphas[i] * old_dirs[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    beta = _dot(old_dirs[i], r) * ro[i]
                    r = r + (alphas[i] - beta) * old_stps[i]
                d = r
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = _dot(flat_grad, d)
            if gtd > -tol_change:  # not a descent direction
                break

            if group["line_search_fn"] == "strong_wolfe":
                start = [p.array.copy() for p in self._params]
                step_dir = d

                def along(step: float, _start: list = start, _d: Any = step_dir) -> tuple:
                    self._add_to_params(step, _d)
                    value = self._evaluate(closure)
                    grad = self._flat_grad()
                    self._set_params(_start)
                    return value, grad

                loss, flat_grad, t, ls_evals = _strong_wolfe(
                    along, t, d, loss, flat_grad, gtd, tolerance_change=tol_change
                )
                self._add_to_params(t, d)
                converged = float(abs(flat_grad).max()) <= tol_grad
            else:
                self._add_to_params(t, d)
                ls_evals = 0
                converged = False
                if n_iter != max_iter:
                    loss = self._evaluate(closure)
                    flat_grad = self._flat_grad()
                    converged = float(abs(flat_grad).max()) <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if float(abs(d * t).max()) <= tol_change:  # the step no longer moves
                break
            if abs(loss - prev_loss) < tol_change:  # the loss no longer changes
                break

        be = first.backend
        state["d"] = _wrap(d, be)
        state["t"] = t
        state["old_dirs"] = [_wrap(v, be) for v in old_dirs]
        state["old_stps"] = [_wrap(v, be) for v in old_stps]
        state["ro"] = ro
        state["H_diag"] = h_diag
        state["prev_flat_grad"] = _wrap(prev_flat_grad, be)
        state["prev_loss"] = prev_loss
        return orig_loss


def _raw(value: Any) -> Any:
    return value.array if isinstance(value, Tensor) else value


def _wrap(value: Any, be: Any) -> Any:
    return None if value is None else Tensor.wrap(value, be)
