"""The Adam family as torch.optim has it: Adam (and AMSGrad), AdamW, Adamax, NAdam, RAdam.

Every update follows torch's single-tensor code path operation by operation: the first moment
is torch's lerp_ (m + (1 - beta1) * (g - m)), addcmul_ is v + ((1 - beta2) * g) * g, addcdiv_
is p + (value * m) / denom. Float64 runs therefore agree with torch to the last bit or two
(torch's vectorised CPU kernels fuse some multiply-adds, NumPy cannot). The denominator is
torch's sqrt(v) / c + eps (c = sqrt(1 - beta2^t)) in that order: folding c into eps and the
step size would save a pass but round differently from torch. The hot path (Adam on float32) works in place with
two scratch arrays per step; Python-float coefficients keep float32 arrays float32 (NEP 50).

Adam, AMSGrad and AdamW are elementwise, so each parameter group is updated at once as flat
buffers (`multi_tensor`, minidl/optim/flat.py), bit-identical to the per-parameter loop. On the
GPU each in-place operation is a kernel launch, and launches dominate for all but huge tensors;
there the same operations, in the same order and precision, run as one CuPy ElementwiseKernel
(`KERNELS`, built by minidl.backend; see the `fused` argument) over the group's flat buffers:
one launch per group and step. Scalars (bias corrections, step size) are computed on the host
in Python floats and passed by value.
"""

from __future__ import annotations

from minidl.backend import KernelSource, xp_of
from minidl.optim.optimizer import Optimizer, check_fused, check_flag, check_range, update_moments

# _adam_step for one element, operation for operation. `keep` is AdamW's decoupled decay
# factor 1 - lr * weight_decay (Adam passes 1, and p * 1 == p exactly).
_ADAM_IN = ("T grad, T keep, T one_minus_beta1, T beta2, T one_minus_beta2, "
            "T sqrt_bias_correction2, T eps, T neg_step_size")
_ADAM_MOMENTS = """
param *= keep;
T d = grad - exp_avg;             // m <- m + (1 - beta1)(g - m), as torch's lerp_
d *= one_minus_beta1;
exp_avg += d;
exp_avg_sq *= beta2;              // v <- beta2 v + ((1 - beta2) g) g, as addcmul_
T g2 = grad * one_minus_beta2;
g2 *= grad;
exp_avg_sq += g2;
"""
_ADAM_MAX = """
if (!(max_exp_avg_sq > exp_avg_sq || max_exp_avg_sq != max_exp_avg_sq)) {
    max_exp_avg_sq = exp_avg_sq;  // vmax <- max(vmax, v), NaN-propagating as numpy.maximum
}
"""
_ADAM_STEP = """
T denom = sqrt({v}) / sqrt_bias_correction2 + eps;
param += exp_avg * neg_step_size / denom;
"""
KERNELS = {
    "adam": KernelSource(_ADAM_IN, "T param, T exp_avg, T exp_avg_sq",
                         _ADAM_MOMENTS + _ADAM_STEP.format(v="exp_avg_sq"), "minidl_adam"),
    "adam_amsgrad": KernelSource(
        _ADAM_IN, "T param, T exp_avg, T exp_avg_sq, T max_exp_avg_sq",
        _ADAM_MOMENTS + _ADAM_MAX + _ADAM_STEP.format(v="max_exp_avg_sq"),
        "minidl_adam_amsgrad"),
}


def _adam_step(p, grad, state: dict, group: dict, tmp, denom) -> None:
    """The Adam (or AMSGrad) step shared by Adam and AdamW; see Adam's docstring.
    `tmp` and `denom`: scratch arrays shaped like p (overwritten)."""
    xp = xp_of(p.data)
    beta1, beta2 = (float(b) for b in group["betas"])
    state["step"] += 1
    step = state["step"]
    update_moments(grad, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, tmp)
    v = state["exp_avg_sq"]
    if group["amsgrad"]:
        v_max = state.get("max_exp_avg_sq")
        if v_max is None:  # amsgrad switched on after the first step
            v_max = state["max_exp_avg_sq"] = v.copy()
        v = xp.maximum(v_max, v, out=v_max)
    sqrt_bc2, eps, neg_step_size = _step_scalars(group, step)
    xp.sqrt(v, out=denom)
    denom /= sqrt_bc2
    denom += eps
    xp.multiply(state["exp_avg"], neg_step_size, out=tmp)
    tmp /= denom
    p.data += tmp


def _step_scalars(group: dict, step: int) -> tuple:
    """(sqrt(1 - beta2^t), eps, -lr / (1 - beta1^t)): the host scalars of step t, as torch."""
    beta1, beta2 = (float(b) for b in group["betas"])
    return ((1 - beta2 ** step) ** 0.5, float(group["eps"]),
            -float(group["lr"]) / (1 - beta1 ** step))


def _adam_step_fused(opt: Optimizer, p, grad, state: dict, group: dict, keep: float) -> None:
    """p *= keep, then _adam_step, as one GPU kernel from KERNELS (no device-to-host read)."""
    beta1, beta2 = (float(b) for b in group["betas"])
    state["step"] += 1
    scalars = (keep, 1 - beta1, beta2, 1 - beta2, *_step_scalars(group, state["step"]))
    outs = (p.data, state["exp_avg"], state["exp_avg_sq"])
    if group["amsgrad"]:
        if "max_exp_avg_sq" not in state:  # switched on late: max(0, v) = v, as the xp copy
            state["max_exp_avg_sq"] = xp_of(p.data).zeros_like(p.data)
        opt.kernel(KERNELS["adam_amsgrad"])(grad, *scalars, *outs, state["max_exp_avg_sq"])
    else:
        opt.kernel(KERNELS["adam"])(grad, *scalars, *outs)


class Adam(Optimizer):
    """Adam: D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization",
    arXiv:1412.6980 (ICLR 2015), Algorithm 1. Defaults and trajectory as torch.optim.Adam.

        g_t = grad_t + weight_decay * p                     (coupled L2; see AdamW)
        m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
        amsgrad:  vmax_t = max(vmax_{t-1}, v_t), used in place of v_t below
        p  <- p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    i.e. p <- p - lr * mhat / (sqrt(vhat) + eps): eps OUTSIDE the root of the bias-corrected
    v, exactly the paper's Algorithm 1 (TF/Keras use the "efficient" form, whose eps is
    eps * sqrt(1 - beta2^t)). The first step is ~ -lr * sign(g).

    amsgrad=True is torch's AMSGrad (S. J. Reddi, S. Kale, S. Kumar, "On the Convergence of
    Adam and Beyond", ICLR 2018): the maximum is taken of the UNcorrected v, bias correction
    and a constant lr are kept (the paper's Algorithm 2 has neither; see AMSGrad).

    Args:
        lr: learning rate alpha (default 1e-3).
        betas: (beta1, beta2), decay rates of the moment estimates, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to the root for stability (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).
        amsgrad: use the running maximum of v (default False).
        fused: None (default) updates GPU parameters with one fused kernel (per group, over
            its flat buffers) and CPU ones with NumPy; True insists (ValueError for a CPU
            parameter); False never fuses. On the GPU every in-place operation is a kernel
            launch: one kernel replaces a dozen, with the same operations and rounding (the
            xp path to float32 tolerance).

    State per parameter: step (t), exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (vmax, only
    with amsgrad).
    """

    multi_tensor = True  # elementwise: a group updates as one flat buffer (optim/flat.py)

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, fused: bool | None = None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))
        self.fused = check_fused(fused, self._params())

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_flag("amsgrad", group["amsgrad"])

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        state = {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        return state

    def update(self, p, grad, state: dict, group: dict) -> None:
        _adam_step(p, grad, state, group, self.scratch(p.data, 0), self.scratch(p.data, 1))

    def fused_update(self, p, grad, state: dict, group: dict) -> None:
        _adam_step_fused(self, p, grad, state, group, keep=1.0)


class AMSGrad(Adam):
    """AMSGrad as torch.optim.Adam(amsgrad=True): Adam dividing by the running maximum of v.

    S. J. Reddi, S. Kale, S. Kumar, "On the Convergence of Adam and Beyond", ICLR 2018,
    arXiv:1904.09237. Equations, defaults and state: see Adam with amsgrad=True

        vmax_t = max(vmax_{t-1}, v_t)
        p <- p - lr / (1 - beta1^t) * m_t / (sqrt(vmax_t) / sqrt(1 - beta2^t) + eps)

    This is the practical form (bias-corrected m, max of the uncorrected v, constant lr). The
    paper's Algorithm 2 (no bias correction, lr / sqrt(t)) takes ~3.16x larger first steps.

    Args:
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the root, outside it (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).
        fused: one GPU kernel per group, as Adam (default None: on for GPU parameters).

    State per parameter: step, exp_avg (m), exp_avg_sq (v), max_exp_avg_sq (vmax).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=True, fused=fused)


class AdamW(Adam):
    """AdamW: I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization",
    arXiv:1711.05101 (ICLR 2019). Defaults and trajectory as torch.optim.AdamW.

        p <- p * (1 - lr * weight_decay)          (decoupled: the decay bypasses m and v)
        then the Adam step of Adam's docstring with g_t = grad_t (no L2 term).

    As torch, the decay is scaled by the current lr (the paper scales it by the schedule
    multiplier eta_t alone). Default weight_decay is 1e-2, not 0.

    Args:
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the root, outside it (default 1e-8).
        weight_decay: decoupled decay factor lambda (default 1e-2).
        amsgrad: use the running maximum of v, as Adam (default False).
        fused: one GPU kernel per group, the decay included, as Adam (default None: on
            for GPU parameters).

    State per parameter: as Adam.
    """

    coupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, fused=fused)

    def update(self, p, grad, state: dict, group: dict) -> None:
        decay = float(group["lr"]) * float(group["weight_decay"])
        if decay:
            p.data *= 1 - decay
        _adam_step(p, grad, state, group, self.scratch(p.data, 0), self.scratch(p.data, 1))

    def fused_update(self, p, grad, state: dict, group: dict) -> None:
        decay = float(group["lr"]) * float(group["weight_decay"])
        _adam_step_fused(self, p, grad, state, group, keep=1 - decay)


class Adamax(Optimizer):
    """Adamax, the infinity-norm variant of Adam: D. P. Kingma, J. Ba, arXiv:1412.6980, section
    7.1 (Algorithm 2). Defaults and trajectory as torch.optim.Adamax.

        g_t = grad_t + weight_decay * p
        m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        u_t = max(beta2 * u_{t-1}, |g_t| + eps)               (eps INSIDE the max)
        p  <- p - lr / (1 - beta1^t) * m_t / u_t

    The paper has no eps; torch's (kept here) keeps coordinates whose gradients have all been
    zero finite instead of 0/0. u needs no bias correction. First step ~ -lr * sign(g).

    Args:
        lr: learning rate (default 2e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to |g| inside the max (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).

    State per parameter: step, exp_avg (m), exp_inf (u).
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_inf": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        m, u = state["exp_avg"], state["exp_inf"]
        tmp = xp.subtract(grad, m)
        tmp *= 1 - beta1
        m += tmp
        u *= beta2
        xp.abs(grad, out=tmp)
        tmp += float(group["eps"])
        xp.maximum(u, tmp, out=u)
        step_size = float(group["lr"]) / (1 - beta1 ** state["step"])
        xp.multiply(m, -step_size, out=tmp)
        tmp /= u
        p.data += tmp


class NAdam(Optimizer):
    """NAdam (Adam with Nesterov momentum): T. Dozat, "Incorporating Nesterov Momentum into
    Adam", ICLR 2016 workshop (OpenReview OM0jvwB8jIp57ZJjtNEZ). Defaults and trajectory as
    torch.optim.NAdam.

        g_t      = grad_t + weight_decay * p
        mu_t     = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))      (momentum schedule)
        P_t      = mu_1 * mu_2 * ... * mu_t                             (state mu_product)
        m_t      = beta1 * m_{t-1} + (1 - beta1) * g_t                 (constant beta1, as torch)
        v_t      = beta2 * v_{t-1} + (1 - beta2) * g_t^2
        d_t      = sqrt(v_t / (1 - beta2^t)) + eps                      (eps OUTSIDE the root)
        p       <- p - lr * (1 - mu_t) / (1 - P_t) * g_t / d_t
                     - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m_t / d_t

    With the default momentum_decay 4e-3 (Keras' schedule_decay) the momentum starts near
    0.45 (mu_1 = 0.45007) and only reaches ~0.81 after 10^4 steps; the first step is
    ~ -1.0565 * lr * sign(g). momentum_decay=0 gives mu = beta1 / 2, not beta1.

    Args:
        lr: learning rate (default 2e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the root (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).
        momentum_decay: psi >= 0 of the momentum schedule (default 4e-3).

    State per parameter: step, mu_product (P_t, a Python float), exp_avg (m), exp_avg_sq (v).
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay))

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("momentum_decay", group["momentum_decay"], 0.0, float("inf"))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "mu_product": 1.0, "exp_avg": xp.zeros_like(p.data),
                "exp_avg_sq": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        lr, psi = float(group["lr"]), float(group["momentum_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        step = state["step"]
        bias_correction2 = 1 - beta2 ** step
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        state["mu_product"] *= mu
        mu_product = state["mu_product"]
        tmp = self.scratch(p.data)
        update_moments(grad, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, tmp)
        denom = state["exp_avg_sq"] / bias_correction2
        xp.sqrt(denom, out=denom)
        denom += float(group["eps"])
        xp.multiply(grad, -lr * (1.0 - mu) / (1.0 - mu_product), out=tmp)
        tmp /= denom
        p.data += tmp
        xp.multiply(state["exp_avg"], (-lr * mu_next) / (1.0 - mu_product * mu_next), out=tmp)
        tmp /= denom
        p.data += tmp


class RAdam(Optimizer):
    """RAdam (rectified Adam): L. Liu, H. Jiang, P. He, W. Chen, X. Liu, J. Gao, J. Han, "On the
    Variance of the Adaptive Learning Rate and Beyond", ICLR 2020, arXiv:1908.03265.
    Defaults and trajectory as torch.optim.RAdam.

        g_t     = grad_t + weight_decay * p
        m_t, v_t as Adam;  mhat_t = m_t / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t   = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            l_t = sqrt(1 - beta2^t) / (sqrt(v_t) + eps)                (eps OUTSIDE the root)
            p  <- p - lr * mhat_t * l_t * r_t
        else:
            p  <- p - lr * mhat_t                   (un-adapted SGD-with-momentum step)

    As torch: threshold rho_t > 5 (the paper says > 4; the official code >= 5 and skips the
    update below it), so with beta2 = 0.999 the first five steps are plain momentum steps (the
    first one is exactly -lr * g_1) and step 6 is the first rectified one (r_6 = 0.0258).

    Args:
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the root (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).

    State per parameter: step, exp_avg (m), exp_avg_sq (v).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "exp_avg": xp.zeros_like(p.data), "exp_avg_sq": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        step = state["step"]
        tmp = self.scratch(p.data)
        update_moments(grad, state["exp_avg"], state["exp_avg_sq"], beta1, beta2, tmp)
        bias_correction2 = 1 - beta2 ** step
        xp.divide(state["exp_avg"], 1 - beta1 ** step, out=tmp)  # mhat
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        tmp *= lr
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = xp.sqrt(state["exp_avg_sq"])
            adaptive += float(group["eps"])
            # torch evaluates scalar / tensor as reciprocal(tensor) * scalar
            xp.reciprocal(adaptive, out=adaptive)
            adaptive *= bias_correction2 ** 0.5
            tmp *= adaptive
            tmp *= rect
        p.data -= tmp
