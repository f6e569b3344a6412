"""ADAS, Adaptive Step Size (Yanai Eliyahu, 2020-21; github.com/YanaiEliyahu/AdasOptimizer).

ADAS learns one step size per layer *input* by gradient descent on the step size itself, and
learns the step size of those step sizes (sigma, the "SSSS") the same way, with a fixed step
kappa at the top. The reference implementation (C++, `struct layer`) also takes each layer's
weight gradient from inputs offset by their running mean; minidl does that with a forward
pre-hook on each layer and an exact correction of the weight gradient at step time
(minidl/optim/input_offsets.py): the layers and their ops know nothing of it.
The reference program also trained a slightly different loss, cross-entropy plus
1e-5/2 |logits|^2 (its output derivative is y - p - 1e-5 z); that is the loss's business, not
the optimizer's, and experiments/adas_mnist.py uses it to reproduce the program's results.

Multi-tensor: `Adas._update_tensor` below is the algorithm for one tensor, but a step does
not loop over tensors. Each parameter group is laid out in flat buffers (the parameters and
their weight-shaped state end to end, the small vectors s, a_s and E end to end, sigma and
its second moment one entry per sigma-unit; see minidl/optim/adas_flat.py), and one step runs
the weight chain over the whole group (on the CPU in blocks of whole rows, so that every sum
h is added exactly as the per-tensor step adds it), the step-size chain once over the group's
small vectors and the sigma chain once over its units. The trajectory is the per-tensor one
bit for bit; the per-tensor form remains for groups that cannot be laid out (tensors whose
step counts differ, mixed dtypes) and as `multi_tensor = False`.

On the GPU each in-place operation is a kernel launch (some 25 per tensor and step in the
per-tensor form). There a group's step is one launch of each fused kernel of `KERNELS` (the
weights of the whole group, then its step sizes), with the sums left to xp reductions: one
per tensor for h and one per tensor for sigma's derivative k, then about ten small operations
over the units, whatever their number. Same operations, order and precision as the xp path.
"""

from __future__ import annotations

import math

from minidl import backend
from minidl.backend import KernelSource
from minidl.nn.module import Module
from minidl.optim.adas_flat import (
    AdasLayout,
    eps_floor,
    normalise_into,
    step_size_index,
)
from minidl.optim.input_offsets import (
    InputStats,
    centred_weight_grad,
    fold_batch_hook,
    weight_and_bias,
)
from minidl.optim.optimizer import Optimizer, check_fused, check_range

# Defaults of the two reference implementations (the authors' C++ program and PyTorch file).
VARIANTS = {
    # adasopt-cpp/main.cpp: input offsets, one sigma per layer (bias = one more input),
    # step sizes 0.1*sqrt(B)/(fan_in+1), no epsilon; beta_2/beta_3 as at its batch size 4
    # (None: scaled to the batch size, see CPP_BATCH).
    "cpp": dict(init_lr=None, beta_2=None, beta_3=None, eps=0.0, offsets=True, layer_sigma=True),
    # adasopt_pytorch.py: plain gradients, one sigma per tensor, step sizes 1e-3, eps 1e-8.
    "pytorch": dict(init_lr=1e-3, beta_2=0.999, beta_3=0.9999, eps=1e-8, offsets=False,
                    layer_sigma=False),
}
INIT_SCALE = 0.1  # C++: initial step size 0.1 * sqrt(batch) / (fan_in + 1)
# The C++ program trains with batches of 4 and decays its running averages once per batch:
# D by 0.99999 and E by 0.9999. With batches of B the same horizon *in samples* is
# decay^(B/4); at B = 32 that is 0.99992 and 0.9992 (the PyTorch file, written for batch 32,
# moved them to 0.9999 and 0.999 by hand).
CPP_BATCH, CPP_BETA_2, CPP_BETA_3 = 4, 0.9999, 0.99999


def _scale_cpp_decays(chosen: dict, batch_size: int) -> dict:
    """`chosen` with a beta_2 / beta_3 of None replaced by the C++ decay at this batch size."""
    scale = batch_size / CPP_BATCH
    if chosen["beta_2"] is None:
        chosen["beta_2"] = CPP_BETA_2**scale
    if chosen["beta_3"] is None:
        chosen["beta_3"] = CPP_BETA_3**scale
    return chosen


def effective_defaults(variant: str = "cpp", batch_size: int = 32) -> dict:
    """The defaults that Adas(..., variant=variant, batch_size=batch_size) resolves its None
    arguments to, for listings (`python -m minidl optimizers`); init_lr None reads as the rule.
    """
    chosen = _scale_cpp_decays(dict(VARIANTS[variant]), batch_size)
    chosen["beta_2"], chosen["beta_3"] = round(chosen["beta_2"], 8), round(chosen["beta_3"], 8)
    if chosen["init_lr"] is None:
        chosen["init_lr"] = f"{INIT_SCALE:g}*sqrt(batch_size)/(fan_in+1)"
    return chosen


# Adas._update_tensor for one element, operation for operation (_normalise inlined). corr is
# sqrt(1 - beta_1^t) times the live scale group['lr']; `lr` holds the step sizes s (a raw
# array: the element's own is lr[lr_index], so one launch covers every tensor of a group, see
# adas_flat.py); update_scale is (1 - beta_3) * corr. The products D * G and E * h come out for
# the caller's sums h and k.
KERNELS = {
    "adas_weight": KernelSource(
        "T grad, raw T lr, int32 lr_index, T one_minus_beta_1, T beta_1, T eps, T corr, "
        "T beta_3, T update_scale",
        "T param, T exp_avg_sq, T update_avg, T update_grad",
        """
T g2 = grad * grad;                       // a <- beta_1 a + (1 - beta_1) G^2
g2 *= one_minus_beta_1;
exp_avg_sq *= beta_1;
exp_avg_sq += g2;
T n = grad / (sqrt(exp_avg_sq) + eps);    // N_W(G) / corr
param -= n * (lr[lr_index] * corr);      // W <- W - s N_W(G)
update_grad = update_avg * grad;          // D G, with D before its update
update_avg *= beta_3;                     // D <- beta_3 D + (1 - beta_3) N_W(G)
update_avg += n * update_scale;
""", "minidl_adas_weight"),
    "adas_lr": KernelSource(
        "T h, T sigma, T one_minus_beta_1, T beta_1, T eps, T corr, T beta_2, "
        "T one_minus_beta_2",
        "T lr, T lr_sq, T lr_update_avg, T update_h",
        """
T h2 = h * h;                             // a_s <- beta_1 a_s + (1 - beta_1) h^2
h2 *= one_minus_beta_1;
lr_sq *= beta_1;
lr_sq += h2;
T n_s = h / (sqrt(lr_sq) + eps);          // n_s = N_s(h)
n_s *= corr;
update_h = lr_update_avg * h;             // E h, with E before its update
lr *= (T)1 + sigma * n_s;                 // s <- s (1 + sigma n_s)
lr_update_avg *= beta_2;                  // E <- beta_2 E + (1 - beta_2) n_s
lr_update_avg += n_s * one_minus_beta_2;
""", "minidl_adas_lr"),
}


class Adas(Optimizer):
    """ADAS: per-input step sizes learned by hypergradient descent (Eliyahu 2020, no paper).

    Normaliser ("Adam without momentum"), one per quantity, with its own second moment a:
        N(d) = d * sqrt(1 - beta_1^t) / (sqrt(a) + eps),   a <- beta_1 a + (1 - beta_1) d^2
    (eps = 0 as in C++: 0/0 gives 0). Per step, for every weight tensor W with gradient G
    (taken from offset inputs when offsets=True) and step sizes s (one per input of W, i.e. per
    entry of W's `input_axes`; one scalar for a bias):
        n   = N_W(G)
        W  <- W - lr * s * n                         (s broadcast over the output axes)
        h   = sum over output axes of (D * G)        (D before its update)
        D  <- beta_3 D + (1 - beta_3) n              (running average of weight updates)
        n_s = N_s(h);   s <- s * (1 + sigma * n_s)   (sigma before its update)
        k   = sum(E * h)                             (E before its update)
        E  <- beta_2 E + (1 - beta_2) n_s            (running average of step-size updates)
    and per sigma-unit (a layer when layer_sigma, else each tensor), with k summed over it:
        sigma <- sigma * (1 + lr3 * N_sigma(k))
    The step sizes s follow the product of the recent update direction and the current
    gradient: they grow while successive gradients agree and shrink when they oscillate.

    Input offsets (offsets=True, the reference): every layer holding one weight with input
    axes and one bias (Dense, Conv2d, or any layer built the same way) gets an InputStats and
    a forward pre-hook; in training mode the hook folds the batch into a running mean mu of
    the layer's inputs (per-sample decay offset_momentum) *before* the forward, and the step
    uses grad_W(x - mu) = grad_W(x) - outer(mu, grad_b) for the weight (bias gradients are
    unchanged; `.grad` itself is never rewritten). A layer without a bias raises a ValueError
    (pass offsets=False). The statistics belong to this optimizer: they are in its
    state_dict; close() (or leaving a `with Adas(...)` block) removes the hooks, and
    load_state_dict registers them again. Eval mode leaves the statistics alone; several
    forwards before one step all join the mean, and the step corrects their summed gradient
    with the mean at step time (input_offsets.py). Two optimizers on one model each keep
    their own statistics and hooks (each forward feeds both).

    Arguments (each variant sets the defaults marked *; an explicit value wins):
        params: a Module (needed for offsets and for one sigma per layer), its parameters,
            or param groups whose 'params' may be Modules. A parameter given without its
            layer is its own sigma-unit and cannot take offsets (a clear ValueError).
        variant: 'cpp' (default; adasopt-cpp/main.cpp) or 'pytorch' (adasopt_pytorch.py).
        lr: the live scale of every step, W <- W - lr * s * n (default 1: the reference).
            It is what schedulers change (StepLR(Adas(model), ...) decays it); the learned
            step sizes s are not touched by a schedule.
        init_lr*: initial step size s; None = 0.1 * sqrt(batch_size) / (fan_in + 1) per layer
            (cpp); 1e-3 for 'pytorch'.
        batch_size: B in the cpp initial step size (default 32).
        lr2: initial sigma, the step size of the step sizes (5e-3).
        lr3: kappa, the fixed step size of sigma (5e-4).
        beta_1: second-moment decay of every normaliser (0.999).
        beta_2*: decay of E, the step-size-update average (cpp 0.9999^(batch_size/4), i.e.
            the C++ value per 4 samples; pytorch 0.999).
        beta_3*: decay of D, the weight-update average (cpp 0.99999^(batch_size/4);
            pytorch 0.9999).
        eps*: normaliser epsilon (cpp 0, pytorch 1e-8).
        offsets*: centre layer inputs for the weight gradient (cpp True, pytorch False).
        offset_momentum: per-sample decay of the input means (0.99999).
        offset_debias: divide the input means by 1 - offset_momentum^count (False, as the
            reference; see InputStats).
        layer_sigma*: one sigma per layer, W and b together (cpp True, pytorch False).
        weight_decay: coupled L2 (not in the reference; default 0).
        fused: None (default) steps each GPU parameter group with two fused kernels (its
            weights, its step sizes) and CPU ones with NumPy; True insists (ValueError on the
            CPU); False never fuses. On the GPU each in-place operation is a kernel launch:
            ~25 per tensor become 2 per group, plus the sums (two per tensor).
    State per tensor: step, exp_avg_sq (a of N_W), update_avg (D), lr (s), lr_sq (a of N_s),
    lr_update_avg (E); per sigma-unit, under its first tensor: sigma, sigma_sq, sigma_step.
    After a step the arrays among them, and p.data, are views into the group's flat buffers
    (multi_tensor, see the module docstring): take p.data again after the first step; a new
    array assigned to p.data or to a state entry (load_state_dict) is noticed at the next step
    and the buffers are rebuilt around it.
    """

    multi_tensor = True  # a group steps at once over flat buffers (optim/adas_flat.py)

    def __init__(self, params, variant: str = "cpp", lr: float = 1.0, init_lr=None,
                 batch_size: int = 32, lr2: float = 5e-3, lr3: float = 5e-4,
                 beta_1: float = 0.999, beta_2: float | None = None,
                 beta_3: float | None = None, eps: float | None = None,
                 offsets: bool | None = None, offset_momentum: float = 0.99999,
                 offset_debias: bool = False, layer_sigma: bool | None = None,
                 weight_decay: float = 0.0, fused: bool | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"unknown Adas variant {variant!r}; valid: {', '.join(VARIANTS)}")
        given = dict(init_lr=init_lr, beta_2=beta_2, beta_3=beta_3, eps=eps, offsets=offsets,
                     layer_sigma=layer_sigma)
        chosen = {k: (VARIANTS[variant][k] if v is None else v) for k, v in given.items()}
        if isinstance(batch_size, int) and batch_size > 0:
            _scale_cpp_decays(chosen, batch_size)
        defaults = dict(chosen, lr=lr, variant=variant, batch_size=batch_size, lr2=lr2,
                        lr3=lr3, beta_1=beta_1, offset_momentum=offset_momentum,
                        offset_debias=offset_debias, weight_decay=weight_decay)
        self._names: dict = {}
        self._unit_of: dict = {}  # id(parameter) -> its sigma-unit (list of parameters)
        self._units: dict = {}  # id(group) -> the group's sigma-units, in order
        self._offsets: list = []  # (layer, weight, bias, InputStats), construction order
        self._offset_of: dict = {}  # id(weight) -> (bias, InputStats)
        self._handles: list = []
        self._grad_out: dict = {}  # id(parameter) -> its slice of the flat gradient
        self._step_index: dict = {}  # per-tensor kernel: (shape, axes, device) -> lr_index
        super().__init__(params, defaults)  # add_param_group builds each group's units
        self.fused = check_fused(fused, self._params())

    # ------------------------------------------------------------------ construction
    def validate(self, group: dict) -> None:
        super().validate({k: v for k, v in group.items() if k != "init_lr"})
        if group["init_lr"] is not None:
            check_range("init_lr", group["init_lr"], 0.0, math.inf, lo_open=True)
        bs = group["batch_size"]
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"invalid batch_size: {bs!r} (must be a positive int)")
        for key in ("lr2", "lr3"):
            check_range(key, group[key], 0.0, math.inf)
        for key in ("beta_1", "beta_2", "beta_3", "offset_momentum"):
            check_range(key, group[key], 0.0, 1.0, hi_open=True)

    def add_param_group(self, group: dict) -> None:
        """Add a group (as torch), with its sigma-units and its layers' input statistics.
        group['params'] may be a Module: its layers are then known (needed for offsets and
        for one sigma per layer)."""
        group = dict(group)
        layers = []
        if isinstance(group.get("params"), Module):
            module = group["params"]
            self._names.update({id(p): n for n, p in module.named_parameters()})
            layers = [m for m in module.modules() if m._parameters]
        super().add_param_group(group)
        try:
            self._build_units(self.param_groups[-1], layers)
        except ValueError:  # a layer that cannot take offsets: the group is not added
            self.param_groups.pop()
            raise

    def _build_units(self, group: dict, layers: list) -> None:
        """Split the group into sigma-units (layers or tensors) and register the offsets'
        forward pre-hooks on its layers."""
        params = {id(p): p for p in group["params"]}
        holder = {id(p): layer for layer in layers for p in layer._parameters.values()
                  if p is not None and id(p) in params}
        if group["offsets"]:
            loose = [i for i, p in enumerate(group["params"]) if id(p) not in holder]
            if loose:
                raise ValueError(
                    f"Adas with input offsets: {self._name(group['params'][loose[0]], loose[0])}"
                    " was given without its layer; pass the Module (Adas(model) or "
                    "{'params': layer}), or offsets=False / variant='pytorch'")
            for layer in dict.fromkeys(holder.values()):
                found, why = weight_and_bias(layer)
                if found is None:
                    name = self._name(next(iter(layer._parameters.values())), 0)
                    raise ValueError(
                        f"Adas with input offsets: the {type(layer).__name__} holding {name} "
                        f"{why}; pass offsets=False or variant='pytorch' for the plain "
                        "algorithm")
        units: dict[int, list] = {}
        for p in group["params"]:
            layer = holder.get(id(p))
            key = id(layer) if (group["layer_sigma"] and layer is not None) else id(p)
            units.setdefault(key, []).append(p)
        self._units[id(group)] = list(units.values())
        for unit in units.values():
            for p in unit:
                self._unit_of[id(p)] = unit
        if group["offsets"]:
            for layer in dict.fromkeys(holder.values()):
                (w, b), _ = weight_and_bias(layer)
                stats = InputStats(tuple(w.shape[a] for a in w.input_axes),
                                   group["offset_momentum"], device=w.device, dtype=w.dtype,
                                   debias=group["offset_debias"])
                self._handles.append(layer.register_forward_pre_hook(fold_batch_hook(stats, w)))
                self._offsets.append((layer, w, b, stats))
                self._offset_of[id(w)] = (b, stats)

    def _name(self, p, i: int) -> str:
        return self._names.get(id(p), f"parameter {i}")

    def _initial_lr(self, group: dict, unit: list) -> float:
        if group["init_lr"] is not None:
            return float(group["init_lr"])
        weights = [p for p in unit if p.input_axes]
        fan_in = 1
        for ax in (weights[0].input_axes if weights else ()):
            fan_in *= weights[0].shape[ax]
        return INIT_SCALE * math.sqrt(group["batch_size"]) / (fan_in + 1)

    def init_state(self, p, group: dict) -> dict:
        """Per tensor: the step sizes s (at their initial value) and the running averages;
        the unit's first tensor also holds the unit's sigma (created with the first tensor of
        the unit that gets a gradient)."""
        xp = backend.xp_of(p.data)
        unit = self._unit_of[id(p)]
        s_shape = tuple(p.shape[a] for a in p.input_axes)
        state = {"step": 0, "exp_avg_sq": xp.zeros_like(p.data),
                 "update_avg": xp.zeros_like(p.data),
                 "lr": xp.full(s_shape, self._initial_lr(group, unit), dtype=p.dtype),
                 "lr_sq": xp.zeros(s_shape, dtype=p.dtype),
                 "lr_update_avg": xp.zeros(s_shape, dtype=p.dtype)}
        head = unit[0]
        if head is p:
            state.update(sigma=xp.asarray(group["lr2"], dtype=p.dtype),
                         sigma_sq=xp.zeros((), dtype=p.dtype), sigma_step=0)
        elif head not in self.state:
            self.state[head] = self.init_state(head, group)
        return state

    # ------------------------------------------------------------------ stepping
    def gradient(self, p, group: dict):
        """p.grad, or for an offset layer's weight the gradient of centred inputs:
        grad_W(x - mu) = grad_W(x) - outer(mu, grad_b) (see minidl.optim.input_offsets)."""
        found = self._offset_of.get(id(p))
        if found is None or found[0].grad is None:
            return p.grad
        b, stats = found
        # into a work array of its own (`update` reads it, never keeps it): the parameter's
        # slice of its group's flat gradient where it has one
        out = self._grad_out.get(id(p))
        if out is None or type(out) is not type(p.data) or out.shape != p.data.shape \
                or out.dtype != p.data.dtype:
            out = self.scratch(p.data, ("centred", id(p)))
        return centred_weight_grad(p.input_axes, p.grad, b.grad, stats.center(), out=out)

    def update_group(self, group: dict, params: list, grads: list, states: list) -> None:
        """One ADAS update of every sigma-unit of the group with a gradient: at once over the
        group's flat buffers (multi_tensor, see adas_flat.py) where the group can be laid out
        so this step, else one tensor at a time."""
        layout = self._layout(group, params, grads, states) if self.multi_tensor else None
        if layout is not None:
            layout.step(self, group, grads)
            return
        given = {id(p): (grad, state) for p, grad, state in zip(params, grads, states)}
        for unit in self._units[id(group)]:
            active = [p for p in unit if id(p) in given]
            if not active:
                continue
            head = self.state[unit[0]]
            k = 0.0
            for p in active:
                grad, state = given[id(p)]
                k = k + self._update_tensor(p, grad, state, group, head["sigma"])
            head["sigma_step"] += 1
            n_k = _normalise(k, head["sigma_sq"], head["sigma_step"], group)
            head["sigma"] = head["sigma"] * (1 + group["lr3"] * n_k)

    def _layout(self, group: dict, params: list, grads: list, states: list):
        """The group's AdasLayout, rebuilt when parameters or states were rebound; None
        where the group cannot step as one this step."""
        layout = self._flat.get(id(group))
        if layout is not None and layout.fits(self, params, states):
            return layout if layout.ready(params, grads) else None
        layout = self._flat[id(group)] = AdasLayout.of(self, group, params, grads, states)
        if layout is not None:  # gradient() writes centred gradients straight there
            self._grad_out.update((id(p), v) for p, v in zip(layout.params, layout.grad_views))
        return layout

    # ------------------------------------------------------------------ state and lifetime
    @property
    def input_stats(self) -> list:
        """The InputStats of the offset layers, in construction order."""
        return [stats for *_, stats in self._offsets]

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["input_stats"] = [stats.state_dict() for stats in self.input_stats]
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the state and the input statistics; the offsets' hooks are registered
        again if close() had removed them."""
        saved = state_dict.get("input_stats", []) if isinstance(state_dict, dict) else None
        if saved is None or len(saved) != len(self._offsets):
            raise ValueError(
                f"state_dict holds {len(saved or [])} input statistics, this Adas has "
                f"{len(self._offsets)}"
            )
        super().load_state_dict(state_dict)
        for stats, s in zip(self.input_stats, saved):
            stats.load_state_dict(s)
        if not self._handles:
            self._handles = [layer.register_forward_pre_hook(fold_batch_hook(stats, w))
                             for layer, w, _, stats in self._offsets]

    def close(self) -> None:
        """Remove the offsets' forward pre-hooks: the statistics stop following the inputs
        (the step still corrects with the last mean; use offsets=False for plain ADAS)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "Adas":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _update_tensor(self, p, grad, state: dict, group: dict, sigma):
        """Weight step, step-size step and running averages of one tensor; returns its share
        sum(E * h) of the sigma derivative k (E before its update)."""
        axes = p.input_axes
        out_axes = tuple(i for i in range(p.ndim) if i not in axes)
        bshape = tuple(n if i in axes else 1 for i, n in enumerate(p.shape))
        state["step"] += 1
        s, upd = state["lr"], state["update_avg"]
        if self.use_fused(p, grad, s, upd, sigma):
            return self._update_tensor_fused(p, grad, state, group, sigma, out_axes, bshape)
        xp = backend.xp_of(p.data)
        tmp, n = self.scratch(p.data, 0), self.scratch(p.data, 1)
        # n = corr * n_raw: the bias correction is folded into the small vector s and into
        # the D update, saving a pass over the weights
        corr = math.sqrt(1 - group["beta_1"] ** state["step"])
        n_raw = _normalise(grad, state["exp_avg_sq"], state["step"], group, out=n, tmp=tmp,
                           corrected=False)
        xp.multiply(n_raw, (s * (corr * group["lr"])).reshape(bshape), out=tmp)
        p.data -= tmp                                    # W <- W - lr * s * n
        xp.multiply(upd, grad, out=tmp)
        h = tmp.sum(axis=out_axes) if out_axes else tmp.copy()   # h = sum_out D * G
        upd *= group["beta_3"]
        n_raw *= (1 - group["beta_3"]) * corr
        upd += n_raw                                     # D <- b3 D + (1 - b3) n
        n_s = _normalise(h, state["lr_sq"], state["step"], group)
        e = state["lr_update_avg"]
        k_part = (e * h).sum()
        s *= 1 + sigma * n_s                             # s <- s (1 + sigma n_s)
        e *= group["beta_2"]
        n_s *= 1 - group["beta_2"]
        e += n_s                                         # E <- b2 E + (1 - b2) n_s
        return k_part

    def _update_tensor_fused(self, p, grad, state: dict, group: dict, sigma, out_axes: tuple,
                             bshape: tuple):
        """_update_tensor (after its step count) as the two GPU kernels of KERNELS; every
        scalar is a host float, so nothing is read back from the device."""
        b1, b2, b3 = group["beta_1"], group["beta_2"], group["beta_3"]
        corr = math.sqrt(1 - b1 ** state["step"])
        eps = group["eps"] or eps_floor(p.dtype)  # as _normalise
        s = state["lr"]
        key = (tuple(p.shape), tuple(p.input_axes), backend.device_of(p.data))
        if key not in self._step_index:
            n_s = s.size
            host = step_size_index([(slice(0, p.data.size), slice(0, n_s), p.shape, bshape)],
                                   p.data.size)
            self._step_index[key] = backend.xp_of(p.data).asarray(host)
        prod = self.scratch(p.data, 0)
        self.kernel(KERNELS["adas_weight"])(
            grad, s.reshape(-1), self._step_index[key], 1 - b1, b1, eps, corr * group["lr"], b3,
            (1 - b3) * corr, p.data, state["exp_avg_sq"], state["update_avg"], prod)
        h = prod.sum(axis=out_axes) if out_axes else prod.copy()  # h = sum_out D * G
        prod = self.scratch(s, 2)
        self.kernel(KERNELS["adas_lr"])(
            h, sigma, 1 - b1, b1, eps, corr, b2, 1 - b2,
            s, state["lr_sq"], state["lr_update_avg"], prod)
        return prod.sum()                                    # sum(E * h)


def _normalise(d, sq, t: int, group: dict, out=None, tmp=None, corrected: bool = True):
    """N(d) = d * sqrt(1 - b^t) / (sqrt(a) + eps) after a <- b a + (1 - b) d^2, updating the
    second moment `sq` in place (`out`, `tmp`: optional work arrays shaped like d;
    corrected=False leaves out the factor sqrt(1 - b^t)). With eps = 0 a zero history gives
    0, not 0/0 = NaN (the C++ reference's NaN-to-zero), by adding adas_flat.eps_floor instead
    of 0."""
    xp = backend.xp_of(sq)
    b = group["beta_1"]
    if out is None:  # fresh 0-d arrays too (NumPy reductions return scalars)
        out, tmp = xp.empty(sq.shape, dtype=sq.dtype), xp.empty(sq.shape, dtype=sq.dtype)
    normalise_into(xp, d, sq, out, tmp, b, group["eps"] or eps_floor(sq.dtype),
                   math.sqrt(1 - b**t) if corrected else None)
    return out
