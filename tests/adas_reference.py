"""The per-tensor ADAS step as minidl had it before the multi-tensor layout, frozen as the
oracle of tests/test_adas_flat.py.

`ReferenceAdas` is `Adas` with the step of that version: one tensor at a time, ~15 NumPy
passes over each weight (or, for a GPU tensor, two fused kernels per tensor), the centred
weight gradient formed in `gradient`. Construction, state creation, the input statistics and
the state dict are the library's own. The code below is a verbatim copy; do not "improve" it:
the library's multi-tensor step must reproduce it bit for bit on the CPU.
"""

from __future__ import annotations

import math

import numpy as np

from minidl import backend
from minidl.backend import KernelSource
from minidl.optim.adas import Adas
from minidl.optim.input_offsets import centred_weight_grad

KERNELS = {
    "adas_weight": KernelSource(
        "T grad, T lr, T one_minus_beta_1, T beta_1, T eps, T corr, T beta_3, T update_scale",
        "T param, T exp_avg_sq, T update_avg, T update_grad",
        """
T g2 = grad * grad;                       // a <- beta_1 a + (1 - beta_1) G^2
g2 *= one_minus_beta_1;
exp_avg_sq *= beta_1;
exp_avg_sq += g2;
T n = grad / (sqrt(exp_avg_sq) + eps);    // N_W(G) / corr
param -= n * (lr * corr);                 // W <- W - s N_W(G)
update_grad = update_avg * grad;          // D G, with D before its update
update_avg *= beta_3;                     // D <- beta_3 D + (1 - beta_3) N_W(G)
update_avg += n * update_scale;
""", "minidl_ref_adas_weight"),
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
""", "minidl_ref_adas_lr"),
}


class ReferenceAdas(Adas):
    """Adas stepping one tensor at a time, as before the multi-tensor layout."""

    def gradient(self, p, group: dict):
        for _, w, b, stats in self._offsets:
            if w is p and b.grad is not None:
                return centred_weight_grad(w.input_axes, p.grad, b.grad, stats.center(),
                                           out=self.scratch(p.data, ("centred", id(p))))
        return p.grad

    def update_group(self, group: dict, params: list, grads: list, states: list) -> None:
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

    def _update_tensor(self, p, grad, state: dict, group: dict, sigma):
        axes = p.input_axes
        out_axes = tuple(i for i in range(p.ndim) if i not in axes)
        bshape = tuple(n if i in axes else 1 for i, n in enumerate(p.shape))
        state["step"] += 1
        s, upd = state["lr"], state["update_avg"]
        if self.use_fused(p, grad, s, upd, sigma):
            return self._update_tensor_fused(p, grad, state, group, sigma, out_axes, bshape)
        xp = backend.xp_of(p.data)
        tmp, n = self.scratch(p.data, 0), self.scratch(p.data, 1)
        corr = math.sqrt(1 - group["beta_1"] ** state["step"])
        n_raw = _normalise(grad, state["exp_avg_sq"], state["step"], group, out=n, tmp=tmp,
                           corrected=False)
        xp.multiply(n_raw, (s * (corr * group["lr"])).reshape(bshape), out=tmp)
        p.data -= tmp
        xp.multiply(upd, grad, out=tmp)
        h = tmp.sum(axis=out_axes) if out_axes else tmp.copy()
        upd *= group["beta_3"]
        n_raw *= (1 - group["beta_3"]) * corr
        upd += n_raw
        n_s = _normalise(h, state["lr_sq"], state["step"], group)
        e = state["lr_update_avg"]
        k_part = (e * h).sum()
        s *= 1 + sigma * n_s
        e *= group["beta_2"]
        n_s *= 1 - group["beta_2"]
        e += n_s
        return k_part

    def _update_tensor_fused(self, p, grad, state: dict, group: dict, sigma, out_axes: tuple,
                             bshape: tuple):
        b1, b2, b3 = group["beta_1"], group["beta_2"], group["beta_3"]
        corr = math.sqrt(1 - b1 ** state["step"])
        eps = group["eps"] or _eps_floor(p.dtype)
        s = state["lr"]
        prod = self.scratch(p.data, 0)
        self.kernel(KERNELS["adas_weight"])(
            grad, s.reshape(bshape), 1 - b1, b1, eps, corr * group["lr"], b3, (1 - b3) * corr,
            p.data, state["exp_avg_sq"], state["update_avg"], prod)
        h = prod.sum(axis=out_axes) if out_axes else prod.copy()
        prod = self.scratch(s, 2)
        self.kernel(KERNELS["adas_lr"])(
            h, sigma, 1 - b1, b1, eps, corr, b2, 1 - b2,
            s, state["lr_sq"], state["lr_update_avg"], prod)
        return prod.sum()


def _eps_floor(dtype) -> float:
    return math.sqrt(float(np.finfo(dtype).tiny))


def _normalise(d, sq, t: int, group: dict, out=None, tmp=None, corrected: bool = True):
    xp = backend.xp_of(sq)
    b = group["beta_1"]
    if out is None:
        out, tmp = xp.empty(sq.shape, dtype=sq.dtype), xp.empty(sq.shape, dtype=sq.dtype)
    xp.multiply(d, d, out=tmp)
    tmp *= 1 - b
    sq *= b
    sq += tmp
    eps = group["eps"] or _eps_floor(sq.dtype)
    out = xp.sqrt(sq, out=out)
    out += eps
    xp.divide(d, out, out=out)
    if corrected:
        out *= math.sqrt(1 - b**t)
    return out
