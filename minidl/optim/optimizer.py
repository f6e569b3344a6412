"""Optimizer: the torch.optim contract (param groups, lazy per-parameter state, step, zero_grad,
state_dict) around one readable per-parameter update.

A subclass is its docstring (the algorithm, paper, defaults, state keys) plus::

    def __init__(self, params, lr=..., ...):  # named hyperparameters, then
        super().__init__(params, dict(lr=lr, ...))
    def init_state(self, p, group) -> dict     # zeros_like(p.data) etc., on p's device
    def update(self, p, grad, state, group)    # the equations, updating p.data in place

The step is one seam for every optimizer. `Optimizer.step` evaluates the closure, switches
off the graph, creates missing state (`init_state`), adds coupled L2 weight decay
(g + weight_decay * p, unless the class sets `coupled_weight_decay = False` or the group's
`decoupled` is True), calls `before_update` with every group's gradients, and then calls
`update_group(group, params, grads, states)` once per parameter group, with every parameter of
the group that has a gradient. Subclasses never override `step`:

* the default `update_group` loops over the parameters and calls `fused_update` (when the
  class defines one and `use_fused` says the parameter qualifies: the GPU kernel path) or
  `update` (the xp path);
* an algorithm that couples its parameters (ADAS's per-layer step sizes, Adai's global mean)
  overrides `update_group` instead (ADAS then lays the group out in flat buffers of its own,
  minidl/optim/adas_flat.py);
* an elementwise algorithm sets `multi_tensor = True`: the default `update_group` then lays
  the group out in flat buffers (minidl.optim.flat: every p.data and state array becomes a
  view of one contiguous buffer per quantity) and runs the same `update` (or `fused_update`,
  one GPU launch) once over the buffers, bit-identical to the per-parameter loop.

`grad` never aliases `p.grad` when it was changed (decay, `gradient` corrections): `p.grad`
itself is never modified, it may be shared with other arrays.

Capability flags, declared here once and read by training loops without guessing:
`needs_closure` (step must be given a closure that recomputes the loss) and
`coupled_weight_decay`. `group['lr']` is always the live learning rate that schedulers set.
Parameters must be float32 or float64: in float16, eps = 1e-8 and the squared gradients of the
adaptive methods underflow to 0 and their divisions give inf/NaN, so optimizers refuse it at
construction (keep float32 master weights instead).
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Callable

import numpy as np

from minidl import backend
from minidl.autograd import Tensor, enable_grad, no_grad
from minidl.nn.module import Module
from minidl.optim.flat import FlatGroup, FlatParameter

# generic hyperparameter ranges, checked for every group that has the key
_RANGES = {
    "lr": (0.0, math.inf, "lr must be >= 0"),
    "eps": (0.0, math.inf, "eps must be >= 0"),
    "weight_decay": (0.0, math.inf, "weight_decay must be >= 0"),
    "momentum": (0.0, math.inf, "momentum must be >= 0"),
    "dampening": (0.0, 1.0, "dampening must be in [0, 1]"),
}


def check_range(name: str, value, lo: float, hi: float, lo_open: bool = False,
                hi_open: bool = False) -> None:
    """Raise ValueError naming the hyperparameter unless lo <= value <= hi (open ends optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"invalid {name}: {value} (must be a finite number)")
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if too_low or too_high:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"invalid {name}: {value} (must be in {lb}{lo}, {hi}{rb})")


def check_flag(name: str, value) -> None:
    """Raise TypeError naming the hyperparameter unless it is True or False (NumPy's bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"invalid {name}: {value!r} ({name} must be True or False)")


class Optimizer:
    """Base class of all optimizers (torch.optim conventions).

    params: an iterable of Parameters, a Module (its parameters), or an iterable of dicts
        (param groups), each with 'params' and any per-group hyperparameter overrides.
    defaults: the hyperparameters every group gets unless it overrides them.
    """

    coupled_weight_decay = True  # False where the algorithm decouples decay (AdamW)
    needs_closure = False  # True where step() must re-evaluate the model (L-BFGS)
    fused: bool | None = False  # None or True where a subclass has GPU kernels (see use_fused)
    # a method (p, grad, state, group) doing `update` as GPU kernels; None: no kernel
    fused_update = None
    # True where `update` is elementwise with scalars shared by the group (see flat.py)
    multi_tensor = False

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self._scratch: dict = {}
        self._flat: dict = {}  # id(group) -> FlatGroup (a layout cache, rebuilt when stale)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        if isinstance(params, Module):  # one group; add_param_group sees the Module itself
            params = [{"params": params}]
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Parameters or dicts, got one Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with optional per-group hyperparameters."""
        group = dict(group)
        params = group["params"]
        if isinstance(params, Module):
            params = params.parameters()
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer params must be Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError("optimizer got a tensor that does not require grad")
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(
                    f"{type(self).__name__} needs float32 or float64 parameters, got one of "
                    f"dtype {p.dtype} (in float16 eps and squared gradients underflow to 0); "
                    "keep float32 parameters"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameters {sorted(unknown)}; "
                f"valid: {sorted(self.defaults)}"
            )
        self.validate(group)
        self.param_groups.append(group)

    def validate(self, group: dict) -> None:
        """Check the group's hyperparameters; subclasses extend this for their own."""
        for key, (lo, hi, _) in _RANGES.items():
            if key in group:
                check_range(key, group[key], lo, hi)
        if "betas" in group:
            betas = group["betas"]
            if not isinstance(betas, (tuple, list)):
                raise TypeError(f"betas must be a tuple, got {betas!r}")
            # the signature's default says how many the algorithm has
            default = inspect.signature(type(self).__init__).parameters["betas"].default
            if len(betas) != len(default):
                raise ValueError(f"betas must be {len(default)} values (default "
                                 f"{tuple(default)}), got {tuple(betas)!r}")
            for i, b in enumerate(betas):
                check_range(f"betas[{i}]", b, 0.0, 1.0, hi_open=True)

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (to None by default, as torch >= 2.0)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = backend.xp_of(p.grad).zeros_like(p.grad)

    def init_state(self, p, group: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, p, grad, state: dict, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_group(self, group: dict, params: list, grads: list, states: list) -> None:
        """Update every parameter of `group` that has a gradient (params, their gradients with
        any coupled decay, their states: three parallel lists). Default: the whole group at
        once over flat buffers where the class is `multi_tensor` and the group can be laid out
        flat (see FlatGroup.of), else one parameter at a time; each through the class's GPU
        kernel (`fused_update`) where `use_fused` allows it."""
        flat = self._flat_group(group, params, grads, states) if self.multi_tensor else None
        if flat is not None:
            buffers = [buf for buf, _ in flat.buffers.values()]
            fused = (self.fused_update is not None
                     and self.use_fused(FlatParameter(flat.data), flat.grad, *buffers))
            flat.step(self.fused_update if fused else self.update, group, grads)
            return
        for p, grad, state in zip(params, grads, states):
            if self.fused_update is not None and self.use_fused(p, grad, *_arrays(state)):
                self.fused_update(p, grad, state, group)
            else:
                self.update(p, grad, state, group)

    def _flat_group(self, group: dict, params: list, grads: list, states: list):
        """The group's FlatGroup, rebuilt when parameters or states were rebound; None where
        the group cannot be laid out flat this step."""
        flat = self._flat.get(id(group))
        if flat is None or not flat.fits(params, states):
            flat = self._flat[id(group)] = FlatGroup.of(params, grads, states)
        return flat

    def gradient(self, p, group: dict):
        """The gradient this step uses for `p`, before weight decay: p.grad. A subclass may
        return a corrected copy (ADAS's input offsets); p.grad itself is never modified."""
        return p.grad

    def scratch(self, like, slot: int = 0):
        """A reusable work array shaped like `like` (one per shape, dtype, device and slot), so
        that a step allocates nothing on the hot path: fresh multi-megabyte arrays cost page
        faults on every step. Not part of the state: its content is garbage between calls."""
        key = (like.shape, like.dtype.str, backend.device_of(like), slot)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = backend.xp_of(like).empty_like(like)
        return buf

    def use_fused(self, p, *arrays) -> bool:
        """Whether this step updates `p` with one fused GPU kernel instead of the chain of xp
        operations: `fused` is not False, p lives on CuPy, and p and `arrays` (its gradient and
        state) share one dtype, float32 or float64. With fused=True a parameter that does not
        qualify raises instead of falling back."""
        if not backend.is_cupy_array(p.data):
            if self.fused:
                raise ValueError(
                    "fused=True needs every parameter on the GPU, but one lives on the CPU; "
                    "move it to 'cuda' or pass fused=None (auto)"
                )
            return False
        if self.fused is False:
            return False
        dtype = p.data.dtype
        ok = dtype in (np.float32, np.float64) and all(a.dtype == dtype for a in arrays)
        if not ok and self.fused:
            raise TypeError(
                f"fused=True needs float32 or float64 parameters whose gradient and state "
                f"share their dtype; got {dtype} with {[str(a.dtype) for a in arrays]}"
            )
        return ok

    def kernel(self, source: backend.KernelSource):
        """The GPU kernel compiled from `source` (cached by the backend)."""
        return backend.elementwise_kernel(*source)

    @staticmethod
    def evaluate_closure(closure: Callable | None):
        """The closure's loss, computed with gradients enabled (None without a closure)."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns the closure's loss.
        Subclasses customise `update`, `update_group` or `gradient`, never this method."""
        loss = self.evaluate_closure(closure)
        with no_grad():
            batches = []
            for group in self.param_groups:
                active = [p for p in group["params"] if p.grad is not None]
                if not active:
                    continue
                for p in active:  # state first: a subclass may create several at once
                    if p not in self.state:
                        self.state[p] = self.init_state(p, group)
                grads = [self.gradient(p, group) for p in active]
                wd = group.get("weight_decay", 0.0)
                if wd and self.coupled_weight_decay and not group.get("decoupled", False):
                    grads = [g + wd * p.data for p, g in zip(active, grads)]
                batches.append((group, active, grads, [self.state[p] for p in active]))
            self.before_update(loss, batches)
            for batch in batches:
                self.update_group(*batch)
        return loss

    def before_update(self, loss, batches: list) -> None:
        """Called once per step with the closure's loss (None without one) and, per group with
        gradients, (group, params, grads, states), before any parameter changes: the place for
        quantities shared by all groups (Eve's loss feedback, Adai's mean second moment)."""

    # ------------------------------------------------------------------ state
    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """{'state': {index: {key: value}}, 'param_groups': [{..., 'params': [indices]}]}.

        Parameters are replaced by their position in group order; arrays are copied.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = []
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        state = {index[id(p)]: copy_state(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state_dict: group count and sizes must match; floating arrays are cast to
        each parameter's dtype and moved to its device."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict needs a dict with 'state' and "
                f"'param_groups' (from state_dict()), got "
                f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)}"
            )
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(groups)} parameter groups, optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"parameter group {i}: state_dict has {len(saved['params'])} parameters, "
                    f"optimizer has {len(own['params'])}"
                )
        params = self._params()
        for i, s in state_dict["state"].items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"state_dict has state for parameter {i}, optimizer has "
                                 f"{len(params)} parameters")
            self.check_saved_state(params[int(i)], s, int(i))
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.deepcopy(v)
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = copy_state(s, like=p.data)

    def check_saved_state(self, p, state: dict, index: int) -> None:
        """Raise ValueError if a saved per-parameter state cannot belong to `p`: an array with
        as many axes as p must have p's shape (moments, buffers). Called for every parameter
        before anything is loaded."""
        for key, value in state.items():
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) == p.ndim and tuple(shape) != tuple(p.shape):
                raise ValueError(f"state_dict: state '{key}' of parameter {index} has shape "
                                 f"{tuple(shape)}, the parameter has shape {tuple(p.shape)}")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def check_fused(fused, params) -> bool | None:
    """Validate an optimizer's `fused` argument and return it: None (auto: fused kernels for
    parameters on the GPU), True (always; every parameter must be on the GPU) or False."""
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f"fused must be None, True or False, got {fused!r}")
    if fused:
        on_cpu = [i for i, p in enumerate(params) if not backend.is_cupy_array(p.data)]
        if on_cpu:
            raise ValueError(
                f"fused=True runs the update as a CuPy kernel, but parameter {on_cpu[0]} lives "
                "on the CPU; move the model to 'cuda' first or pass fused=None (auto)"
            )
    return fused


def update_moments(grad, m, v, beta1: float, beta2: float, tmp=None) -> None:
    """In place, the two running moments of Adam and its relatives:
        m <- m + (1 - beta1)(g - m)   (= beta1 m + (1 - beta1) g, as torch's lerp computes it)
        v <- beta2 v + ((1 - beta2) g) g
    `tmp`: an optional scratch array shaped like m (overwritten), to avoid temporaries."""
    xp = backend.xp_of(m)
    tmp = xp.subtract(grad, m, out=tmp)
    tmp *= 1 - beta1
    m += tmp
    v *= beta2
    xp.multiply(grad, 1 - beta2, out=tmp)
    tmp *= grad
    v += tmp


def _arrays(state: dict) -> list:
    """The arrays (NumPy or CuPy) among a state's values."""
    return [v for v in state.values() if isinstance(v, np.ndarray) or backend.is_cupy_array(v)]


def copy_state(value, like=None):
    """Deep copy of a state value; with `like`, floating arrays move to its device and dtype."""
    if isinstance(value, dict):
        return {k: copy_state(v, like) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copy_state(v, like) for v in value)
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        if like is not None:
            value = backend.to_device(value, backend.device_of(like))
            if value.dtype.kind == "f" and value.ndim > 0:
                return value.astype(like.dtype, copy=True)
        return value.copy()
    return copy.deepcopy(value)
