"""Per-coordinate step sizes from squared-gradient statistics: Adagrad, RMSprop, Adadelta
(as torch.optim), RMSpropGraves and SMORMS3 (as Chainer).

The torch classes follow torch's single-tensor code path operation by operation (an EMA written
as torch's lerp_ is m + w * (g - m), addcmul_ is s + (w * a) * b, addcdiv_ is p + (w * a) / b),
so float64 runs agree with torch to the last bit or two (torch's vectorised CPU kernels fuse
some multiply-adds, NumPy cannot). Updates are in place on p.data and the state; `grad` is never
written (it may be p.grad itself).
"""

from __future__ import annotations

from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer, check_flag, check_range


def _buffer(state: dict, key: str, like):
    """state[key]; created as zeros when a group switched the option on after its first step."""
    buf = state.get(key)
    if buf is None:
        buf = state[key] = xp_of(like).zeros_like(like)
    return buf


class Adagrad(Optimizer):
    """Adagrad: J. Duchi, E. Hazan, Y. Singer, "Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization", JMLR 12:2121-2159, 2011. Defaults and trajectory as
    torch.optim.Adagrad.

        g_t  = grad_t + weight_decay * p
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s_t  = s_{t-1} + g_t^2,            s_0 = initial_accumulator_value
        p   <- p - lr_t * g_t / (sqrt(s_t) + eps)          (eps OUTSIDE the root)

    The first step is ~ -lr * sign(g). TF/Keras start the accumulator at 0.1; pass
    initial_accumulator_value=0.1 for their first steps.

    Args:
        lr: learning rate (default 1e-2).
        lr_decay: built-in 1/t decay of the learning rate (default 0).
        weight_decay: coupled L2 penalty added to the gradient (default 0).
        initial_accumulator_value: s_0 >= 0 (default 0).
        eps: added to sqrt(s_t) for stability (default 1e-10).

    State per parameter: step (t), sum (s_t).
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("lr_decay", group["lr_decay"], 0.0, float("inf"))
        check_range("initial_accumulator_value", group["initial_accumulator_value"],
                    0.0, float("inf"))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0,
                "sum": xp.full_like(p.data, float(group["initial_accumulator_value"]))}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        state["step"] += 1
        clr = float(group["lr"]) / (1 + (state["step"] - 1) * float(group["lr_decay"]))
        tmp = grad * grad
        state["sum"] += tmp
        std = xp.sqrt(state["sum"])
        std += float(group["eps"])
        xp.multiply(grad, -clr, out=tmp)
        tmp /= std
        p.data += tmp


class RMSprop(Optimizer):
    """RMSprop: T. Tieleman, G. Hinton, Coursera "Neural Networks for Machine Learning",
    lecture 6.5, 2012 (unpublished); centered form: A. Graves, arXiv:1308.0850, 2013.
    Defaults and trajectory as torch.optim.RMSprop.

        g_t = grad_t + weight_decay * p
        v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2
        centered:  gbar_t = alpha * gbar_{t-1} + (1 - alpha) * g_t
                   d_t = sqrt(v_t - gbar_t^2) + eps                 (eps OUTSIDE the root)
        otherwise: d_t = sqrt(v_t) + eps
        momentum > 0:  b_t = momentum * b_{t-1} + g_t / d_t,   p <- p - lr * b_t
        otherwise:     p <- p - lr * g_t / d_t

    All buffers start at zero, so the first step is ~ -lr / sqrt(1 - alpha) * sign(g)
    (= -10 lr sign(g) at alpha 0.99). TF/Keras put eps inside the root; RMSpropGraves below
    is the centered form with eps inside and lr inside the momentum buffer.

    Args:
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average, in [0, 1] (default 0.99).
        eps: added to the root (default 1e-8).
        weight_decay: coupled L2 penalty added to the gradient (default 0).
        momentum: momentum factor >= 0 (default 0).
        centered: divide by the estimated standard deviation instead of the RMS (default False).

    State per parameter: step, square_avg (v), momentum_buffer (b, when momentum > 0),
    grad_avg (gbar, when centered).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("alpha", group["alpha"], 0.0, 1.0)
        check_flag("centered", group["centered"])

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        state = {"step": 0, "square_avg": xp.zeros_like(p.data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(p.data)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(p.data)
        return state

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        lr, alpha, momentum = float(group["lr"]), float(group["alpha"]), float(group["momentum"])
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        tmp = grad * (1 - alpha)
        tmp *= grad
        v += tmp
        if group["centered"]:
            gbar = _buffer(state, "grad_avg", p.data)
            xp.subtract(grad, gbar, out=tmp)
            tmp *= 1 - alpha
            gbar += tmp
            denom = gbar * gbar
            xp.subtract(v, denom, out=denom)
            xp.sqrt(denom, out=denom)
        else:
            denom = xp.sqrt(v)
        denom += float(group["eps"])
        if momentum > 0:
            buf = _buffer(state, "momentum_buffer", p.data)
            buf *= momentum
            xp.divide(grad, denom, out=tmp)
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
            p.data -= tmp
        else:
            xp.multiply(grad, -lr, out=tmp)
            tmp /= denom
            p.data += tmp


class Adadelta(Optimizer):
    """Adadelta: M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701,
    2012 (Algorithm 1). Defaults and trajectory as torch.optim.Adadelta.

        g_t     = grad_t + weight_decay * p
        v_t     = rho * v_{t-1} + (1 - rho) * g_t^2
        delta_t = sqrt(u_{t-1} + eps) / sqrt(v_t + eps) * g_t         (eps INSIDE both roots)
        u_t     = rho * u_{t-1} + (1 - rho) * delta_t^2
        p      <- p - lr * delta_t

    The paper has no learning rate (lr=1 is the paper's update) and uses rho=0.95; torch's
    default rho is 0.9. u accumulates the unscaled delta, so with lr != 1 it is not the RMS of
    the actual steps (as torch). The first step is ~ sqrt(eps / (1 - rho)) * lr * sign(g),
    3.16e-3 at rho 0.9: why Adadelta starts slowly.

    Args:
        lr: scale of the step (default 1.0).
        rho: decay of both running averages, in [0, 1] (default 0.9).
        eps: inside both roots; sets the initial step size (default 1e-6).
        weight_decay: coupled L2 penalty added to the gradient (default 0).

    State per parameter: step, square_avg (v), acc_delta (u).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("rho", group["rho"], 0.0, 1.0)

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"step": 0, "square_avg": xp.zeros_like(p.data),
                "acc_delta": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        rho, eps = float(group["rho"]), float(group["eps"])
        state["step"] += 1
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        tmp = grad * (1 - rho)
        tmp *= grad
        v += tmp
        std = v + eps
        xp.sqrt(std, out=std)
        delta = u + eps
        xp.sqrt(delta, out=delta)
        delta /= std
        delta *= grad
        u *= rho
        xp.multiply(delta, 1 - rho, out=tmp)
        tmp *= delta
        u += tmp
        delta *= float(group["lr"])
        p.data -= delta


class RMSpropGraves(Optimizer):
    """Graves' RMSprop with momentum: A. Graves, "Generating Sequences With Recurrent Neural
    Networks", arXiv:1308.0850, 2013, eqs (38)-(41). Defaults and trajectory as Chainer's
    RMSpropGraves (torch has no exact equivalent: RMSprop(centered=True, momentum=0.9) puts eps
    outside the root and lr outside the buffer).

        g_t     = grad_t + weight_decay * p
        n_t     = alpha * n_{t-1} + (1 - alpha) * g_t^2                     (38)
        gbar_t  = alpha * gbar_{t-1} + (1 - alpha) * g_t                    (39)
        delta_t = momentum * delta_{t-1} - lr * g_t / sqrt(n_t - gbar_t^2 + eps)   (40)
        p      <- p + delta_t                                               (41)

    Graves' symbols: aleph = alpha = 0.95, beth = momentum = 0.9, gimel = lr = 1e-4,
    daleth = eps = 1e-4 (INSIDE the root). Unlike seed 002's version, the momentum term is kept.

    Args:
        lr: learning rate (default 1e-4).
        alpha: decay of both running averages, in [0, 1] (default 0.95).
        momentum: decay of the step delta, >= 0 (default 0.9).
        eps: inside the root (default 1e-4).
        weight_decay: coupled L2 penalty added to the gradient (default 0; not in the paper).

    State per parameter: square_avg (n), grad_avg (gbar), delta.
    """

    def __init__(self, params, lr: float = 1e-4, alpha: float = 0.95, momentum: float = 0.9,
                 eps: float = 1e-4, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps,
                                      weight_decay=weight_decay))

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("alpha", group["alpha"], 0.0, 1.0)

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"square_avg": xp.zeros_like(p.data), "grad_avg": xp.zeros_like(p.data),
                "delta": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        alpha = float(group["alpha"])
        n, gbar, delta = state["square_avg"], state["grad_avg"], state["delta"]
        # Chainer's order: n += ((1 - alpha) * g) * g;  gbar += (1 - alpha) * g
        n *= alpha
        tmp = grad * (1 - alpha)
        gbar *= alpha
        gbar += tmp
        tmp *= grad
        n += tmp
        denom = gbar * gbar
        xp.subtract(n, denom, out=denom)
        denom += float(group["eps"])
        xp.sqrt(denom, out=denom)
        xp.multiply(grad, float(group["lr"]), out=tmp)
        tmp /= denom
        delta *= float(group["momentum"])
        delta -= tmp
        p.data += delta


class SMORMS3(Optimizer):
    """SMORMS3 ("squared mean over root mean squared cubed"): S. Funk, "RMSprop loses to
    SMORMS3 - Beware the Epsilon!", sifter.org blog, 2015-04-20 (no paper). Defaults and
    trajectory as Chainer's SMORMS3.

        g_t  = grad_t + weight_decay * p
        r    = 1 / (mem + 1)                          (weight of the NEW gradient; 1/2 at t=1)
        m    = (1 - r) * m + r * g_t
        m2   = (1 - r) * m2 + r * g_t^2
        x    = m^2 / (m2 + eps)
        p   <- p - g_t * min(lr, x) / (sqrt(m2) + eps)     (eps OUTSIDE the root)
        mem <- 1 + mem * (1 - x)

    with mem_0 = 1, m_0 = m2_0 = 0. The memory length grows while gradients agree (x small)
    and collapses toward 1 when they are noisy. Unlike seed 002's version: per-parameter state,
    mem_0 = 1, Funk's recursion and r as the new gradient's weight, eps = 1e-16 outside.

    Args:
        lr: largest step factor (default 1e-3).
        eps: added to m2 and to sqrt(m2) (default 1e-16).
        weight_decay: coupled L2 penalty added to the gradient (default 0; not in the post).

    State per parameter: mem, exp_avg (Funk's g), exp_avg_sq (Funk's g2).
    """

    def __init__(self, params, lr: float = 1e-3, eps: float = 1e-16, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        return {"mem": xp.ones_like(p.data), "exp_avg": xp.zeros_like(p.data),
                "exp_avg_sq": xp.zeros_like(p.data)}

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        eps = float(group["eps"])
        mem, m, m2 = state["mem"], state["exp_avg"], state["exp_avg_sq"]
        r = mem + 1
        xp.divide(1, r, out=r)
        keep = 1 - r
        m *= keep
        m2 *= keep
        r *= grad
        m += r
        r *= grad
        m2 += r
        x = m * m
        denom = m2 + eps
        x /= denom
        xp.minimum(x, float(group["lr"]), out=denom)
        denom *= grad
        step = xp.sqrt(m2)
        step += eps
        xp.divide(denom, step, out=step)
        p.data -= step
        xp.subtract(1, x, out=x)
        mem *= x
        mem += 1
