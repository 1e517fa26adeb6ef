"""Fused multi-tensor steps: a group's parameters, gradients and state in flat buffers.

A group that takes the flat path (`foreach=True` / `fused=True`, or the backend's default) is
split into parts, one per backend and dtype. Each part owns three kinds of contiguous 1-D buffers:

- `flat`: the parameters. Each Parameter's `.array` becomes a view into it (same shape, values
  copied once), so the forward pass, `Module.load_state_dict` (which copies in place) and in-place
  edits through `p.data` all read and write the flat buffer.
- `grad_flat`: the gradients. Each parameter's view into it is its gradient home
  (`gnn.autograd.set_home`): backward offers it to the op that makes the parameter's first gradient
  of a step, and an op that writes the gradient there (Linear, LayerNorm, Embedding, ...) makes
  `p.grad` a Tensor over the home itself; the step then copies only the gradients that are not
  in their home yet (one copy each). `zero_grad` sets `p.grad` to None (or zeros it) as before,
  and a gradient a user kept from an earlier step never changes: its home is not offered again
  while that Tensor lives, and is moved to a new buffer before a copy would overwrite it.
- `state_flat[key]`: each state array (exp_avg, exp_avg_sq, momentum_buffer, ...); the optimizer's
  per-parameter state dicts hold views into them, so `state_dict()` stays PyTorch's format.

The update itself is the optimizer's `update_flat(param, grad, state, group, clock)`, called once
per part with Tensors over the whole flat buffers. Adam, SGD and RMSprop run their rule from
gnn/backend/fused/optim.py there: on CUDA one kernel launch per part (kernels/optim.cu), which reads
the learning rate and the step count from the part's `clock` in device memory, so the launch bakes
no per-step host value; elsewhere the reference, the per-parameter path's ufuncs on whole buffers
(the same results bit for bit). Offsets are aligned to 256 bytes (the gaps stay zero, and zero
stays zero under every rule here).

Flattening happens at the first step that takes the flat path and again whenever a parameter's
array is no longer its view (`Module.to`, `p.data = t`) or a state array is no longer its view
(`Optimizer.load_state_dict`, a state moved with its parameter): identity checks, no copies. Only
parameters with a gradient are flattened (those without one are skipped, as on the per-parameter
path), and again when that set changes; parameters whose step counts differ (one missed steps) go
into different parts. A part whose states do not line up (different keys) takes the per-parameter
path, on the same views, in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnn.autograd import home_of, set_home
from gnn.backend.fused.optim import DeviceClock
from gnn.tensor import Tensor

if TYPE_CHECKING:
    from gnn.optim.optimizer import Optimizer

_ALIGN_BYTES = 256


class FlatPart:
    """Parameters of one backend and dtype, their gradients and state, in flat buffers."""

    def __init__(self, params: list[Tensor]) -> None:
        be = params[0].backend
        dtype = params[0].array.dtype
        xp = be.xp
        align = max(1, _ALIGN_BYTES // dtype.itemsize)
        offsets, total = [], 0
        for p in params:
            offsets.append(total)
            total += -(-p.array.size // align) * align
        self.be, self.params, self.offsets, self.total = be, params, offsets, max(total, 1)
        self.flat = xp.zeros(self.total, dtype=dtype)
        self.views = self._views(self.flat)
        for p, view in zip(params, self.views):
            view[...] = p.array
            p.array = view
        self._new_grad_flat()  # after the views: a home holds while p.array is its view
        self.flat_param = Tensor.wrap(self.flat, be)
        self.clock = DeviceClock()  # lr and step count on the device, for the fused kernels
        self.state_flat: dict[str, Any] = {}
        self.state_views: dict[str, list[Any]] = {}
        self.flat_state: dict[str, Any] = {}

    def _new_grad_flat(self) -> None:
        """A (new) flat gradient buffer; its views become the parameters' gradient homes."""
        self.grad_flat = self.be.xp.zeros(self.total, dtype=self.flat.dtype)
        self.grad_views = self._views(self.grad_flat)
        for p, view in zip(self.params, self.grad_views):
            set_home(p, view)

    def gather_grads(self) -> None:
        """Copy into grad_flat the gradients that autograd did not already write into their home;
        a home that a kept earlier gradient still wraps gets a new buffer first."""
        views, params = self.grad_views, self.params
        # Each p.grad is set (the ignores below): a part holds only parameters that had a gradient
        # when _parts made it, and is remade when that changes; a check per parameter would cost
        # the hot path for what mypy cannot follow.
        todo = [i for i, (v, p) in enumerate(zip(views, params)) if p.grad.array is not v]  # type: ignore[union-attr]
        if not todo:
            return
        for i in todo:
            entry = home_of(params[i])
            kept = None if entry is None or entry[1] is None else entry[1]()
            if kept is not None and kept is not params[i].grad:
                self._new_grad_flat()
                views, todo = self.grad_views, list(range(len(params)))
                break
        for i in todo:
            views[i][...] = params[i].grad.array  # type: ignore[union-attr]

    def _views(self, buffer: Any) -> list[Any]:
        return [
            buffer[o : o + p.array.size].reshape(p.array.shape)
            for p, o in zip(self.params, self.offsets)
        ]

    def current(self) -> bool:
        """Whether every parameter's array is still its view into `flat`."""
        return all(p.array is v for p, v in zip(self.params, self.views))

    def state_current(self, states: list[dict[str, Any]]) -> bool:
        """Whether the per-parameter states hold exactly the flat state's views, key for key."""
        keys = self.state_views.keys()
        for s in states:
            tensors = [k for k, v in s.items() if isinstance(v, Tensor)]
            if len(tensors) != len(keys):
                return False
        return all(
            s[k].array is v
            for k, views in self.state_views.items()
            for s, v in zip(states, views)
            if k in s
        ) and all(k in s for s in states for k in keys)

    def adopt_state(self, states: list[dict[str, Any]]) -> bool:
        """Copy the per-parameter state arrays into flat buffers and hand out views; False (and
        nothing changed) when the states do not line up (different keys, shapes or backends)."""
        keys = [k for k, v in states[0].items() if isinstance(v, Tensor)]
        for s, p in zip(states, self.params):
            if sorted(k for k, v in s.items() if isinstance(v, Tensor)) != sorted(keys):
                return False
            for k in keys:
                a = s[k].array
                if (
                    s[k].backend is not self.be
                    or a.shape != p.array.shape
                    or a.dtype != self.flat.dtype
                ):
                    return False
        xp = self.be.xp
        self.state_flat, self.state_views, self.flat_state = {}, {}, {}
        for k in keys:
            buffer = xp.zeros(self.total, dtype=self.flat.dtype)
            views = self._views(buffer)
            for s, view in zip(states, views):
                view[...] = s[k].array
                s[k] = Tensor.wrap(view, self.be)
            self._keep(k, buffer, views)
        return True

    def _keep(self, key: str, buffer: Any, views: list[Any]) -> None:
        self.state_flat[key] = buffer
        self.state_views[key] = views
        self.flat_state[key] = Tensor.wrap(buffer, self.be)

    def adopt_new(self, flat_state: dict[str, Any], states: list[dict[str, Any]]) -> None:
        """State the update created on the flat buffers (SGD's first momentum buffer): hand out
        views of it to every parameter's state."""
        for k, v in flat_state.items():
            if isinstance(v, Tensor) and k not in self.state_flat:
                views = self._views(v.array)
                for s, view in zip(states, views):
                    s[k] = Tensor.wrap(view, self.be)
                self._keep(k, v.array, views)


def wants_flat(opt: Optimizer, group: dict[str, Any]) -> bool:
    """Whether this group takes the flat path: foreach/fused as asked, else the backend's
    default (on for CUDA, where it saves launches; see DEFAULT_ON for the CPU)."""
    if not opt.supports_flat:
        return False
    fused, foreach = group.get("fused"), group.get("foreach")
    if fused or foreach:
        return True
    if fused is False or foreach is False:
        return False
    params = group["params"]
    return bool(params) and params[0].backend.name in DEFAULT_ON


#: Backends on which foreach=None/fused=None take the flat path.
DEFAULT_ON = frozenset({"cuda"})


def _parts(opt: Optimizer, group: dict[str, Any]) -> list[FlatPart]:
    """The flat parts of the group's parameters that have a gradient, one per backend, dtype and
    step count; (re)built when that set, the group's parameters or their arrays changed, or a
    part's step counts parted ways (a loaded state)."""
    cache: dict[int, tuple[list[Tensor], list[bool], list[FlatPart]]] = opt.__dict__.setdefault(
        "_flat_parts", {}
    )
    params, state = group["params"], opt.state
    has_grad = [p.grad is not None for p in params]
    entry = cache.get(id(group))
    if entry is not None:
        known, mask, parts = entry
        if (
            mask == has_grad
            and len(known) == len(params)
            and all(a is b for a, b in zip(known, params))
            and all(part.current() and _one_step(opt, part.params) for part in parts)
        ):
            return parts
    by_kind: dict[tuple[int, Any, int], list[Tensor]] = {}
    for p, g in zip(params, has_grad):
        if g:
            s = state.get(p)
            step = s.get("step", 0) if s is not None and opt.counts_steps else 0
            by_kind.setdefault((id(p.backend), p.array.dtype, step), []).append(p)
    parts = [FlatPart(ps) for ps in by_kind.values()]
    cache[id(group)] = (list(params), has_grad, parts)
    return parts


def _one_step(opt: Optimizer, params: list[Tensor]) -> bool:
    """Whether the parameters' step counts are all the same (a part's bias corrections)."""
    if not opt.counts_steps:
        return True
    state = opt.state
    steps = {s["step"] if (s := state.get(p)) is not None else 0 for p in params}
    return len(steps) == 1


def flat_step(opt: Optimizer, group: dict[str, Any]) -> None:
    """One step of a group on the flat path (the per-parameter path for a part that cannot)."""
    all_state, counts = opt.state, opt.counts_steps
    for part in _parts(opt, group):
        params = part.params
        part.clock.read_lr = False  # until a kernel reads lr from the clock in this step
        states: list[Any] = []  # one step count in a part: _parts saw to it
        for p in params:
            s = all_state.get(p)
            if s is None:
                s = opt.init_state(p, group)
                if s is not None:
                    all_state[p] = s
            states.append(s)
        stateless = all(s is None for s in states)
        if not stateless and (
            any(s is None for s in states)
            or not (part.state_current(states) or part.adopt_state(states))
        ):
            opt._update_params(group, params)  # states that do not line up
            continue
        part.gather_grads()
        flat_state: dict[str, Any] | None = None
        if not stateless:
            flat_state = part.flat_state
            if counts:
                for s in states:
                    s["step"] += 1
                flat_state["step"] = states[0]["step"]
        opt.update_flat(part.flat_param, part.grad_flat, flat_state, group, part.clock)
        if flat_state is not None:
            part.adopt_new(flat_state, states)
            if counts and part.be.name == "cuda" and part.clock.host_steps != flat_state["step"]:
                part.clock.count(part.be.xp, flat_state["step"])  # the rule's kernel did not
