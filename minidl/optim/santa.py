"""Santa: Stochastic AnNealing Thermostats with Adaptive momentum (Chen, Carlson, Gan, Li &
Carin, "Bridging the Gap between Stochastic Gradient MCMC and Stochastic Optimization",
AISTATS 2016, arXiv:1512.07962): SantaE (Euler integrator, the paper's Algorithm 1) and SantaSSS
(the symmetric-splitting integrator of the supplement).

Both explore with annealed thermostat noise for the first `burnin` steps, then refine as
preconditioned momentum SGD with a per-element friction. The noise comes from the optimizer's
own counter-based generator (minidl.backend.Generator), drawn on each parameter's device; its
state is two integers (seed, counter), saved in state_dict, so a resumed run continues
bit-identically and a run on the GPU draws the same numbers as on the CPU.
"""

from __future__ import annotations

import math

import numpy as np

from minidl import backend
from minidl.backend import xp_of
from minidl.optim.optimizer import Optimizer, check_flag, check_range

_COMMON_DOC = """
    Notation: eta = lr; N = training-set size; F = N * (mean minibatch loss) is the paper's
    minibatch estimate of the full-data energy. p.grad is the gradient of the *mean* minibatch
    loss (what minidl's losses give), so f = N * grad is the paper's f~_t = grad F(theta_{t-1})
    (pass N=1 if p.grad already is the full-data gradient). Coupled weight decay enters grad,
    i.e. a Gaussian prior N*weight_decay/2*|theta|^2 on F. beta_t = t^gamma is the inverse
    temperature (annealing); zeta ~ N(0, I) fresh each exploration step.

    Initialisation (first step that sees a gradient): u_0 = sqrt(eta) * N(0, I),
    alpha_0 = sqrt(eta) * C, v_0 = 0. Every step:
        v_t = sigma*v + (1-sigma)/N^2 * f*f        g_t = 1 / sqrt(lambd + sqrt(v_t))
    Exploration while t < burnin (steps 1 .. burnin-1), refinement after. The noise is
        sqrt(2 eta^(3/2) g_{t-1}/beta_t) * zeta_t
    as the paper's variables give it (u = h*p, alpha = h*Xi, eta = h^2 for the step h of the
    SDE: a momentum noise of variance 2 h G_2/beta becomes 2 h^3 g/beta in u) and as the
    authors' Caffe and MATLAB code draw it. (Written as sqrt(2 eta g_{t-1}/beta_t), as some
    summaries have it, the thermostat would settle at alpha ~ g instead of sqrt(eta)*g, the
    scale of alpha_0 = sqrt(eta)*C, and SantaE's Euler step diverges as soon as g > 2.)
    g_0 is taken equal to g_1, so the preconditioner-drift term (eta/beta_t)(1 - g_{t-1}/g_t)/u
    vanishes at t = 1: taking g_0 = 0 instead would add a spurious eta/(beta_1 u_0) kick there.
    Where u_{t-1} is exactly 0 that term is taken as 0 (it is undefined there).
"""

_HYPER_DOC = """
    Hyperparameters (defaults of the official Caffe MNIST solver, whose C and sigma are marked
    "same as in the paper"; lr, N and burnin are problem-specific):
        lr (required): step size eta; >= 0. u gathers -eta*N*g*grad each step, so eta*N acts
            as the learning rate of a preconditioned momentum SGD and eta is tiny for large N
            (the authors' Caffe MNIST run: eta = 5e-7/60000).
        N (required): training-set size; > 0 (1: p.grad is already the full-data gradient).
        burnin (10000, Caffe's `explore`): exploration lasts while t < burnin.
        C (1000): initial friction alpha_0 = sqrt(eta) * C; >= 0.
        sigma (0.999): decay of the squared-gradient average v; in [0, 1).
        lambd (1e-8): the paper's lambda inside the preconditioner; > 0 (named as torch's ASGD,
            `lambda` being a Python keyword).
        gamma (0.5): annealing exponent, beta_t = t^gamma (0.5 in the authors' MATLAB and
            Theano code, 2 in their Caffe config); >= 0. A number rather than a function keeps
            the optimizer serialisable.
        weight_decay (0): coupled L2 penalty; >= 0.
        seed (None): seed of the noise generator; None draws one from minidl's stream
            (so minidl.manual_seed makes runs reproducible). Not a per-group setting.
        preconditioner_drift (True): keep the term (eta/beta_t)(1 - g_{t-1}/g_t)/u_{t-1} of
            exploration. It divides by the momentum, so an element whose u passes close to 0
            gets a huge kick, which SantaE's Euler step (1 - alpha) can turn into an overflow;
            the authors' MATLAB and PyTorch code omit it, their Caffe solver makes it optional.
            False drops it (it vanishes anyway once the preconditioner settles, g_{t-1} = g_t).
    State per parameter: step, momentum_buffer (u), alpha, exp_avg_sq (v), precond (g_{t-1}).
    Global: the noise generator's {'seed', 'counter'}, saved by state_dict under 'rng'.
"""


class _Santa(Optimizer):
    """Shared parts of SantaE and SantaSSS: hyperparameters, state, preconditioner, noise."""

    def __init__(self, params, lr: float, N: float, burnin: int = 10000, C: float = 1000.0,
                 sigma: float = 0.999, lambd: float = 1e-8, gamma: float = 0.5,
                 weight_decay: float = 0.0, seed: int | None = None,
                 preconditioner_drift: bool = True):
        super().__init__(params, dict(lr=lr, N=N, burnin=burnin, C=C, sigma=sigma, lambd=lambd,
                                      gamma=gamma, weight_decay=weight_decay,
                                      preconditioner_drift=preconditioner_drift))
        if seed is None:
            seed = backend.get_rng().randbits()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
                or not 0 <= seed < 2**64:
            raise ValueError(f"invalid seed: {seed!r} (must be an integer in [0, 2^64) or None)")
        self.seed = int(seed)
        self.rng = backend.Generator(self.seed)

    def validate(self, group: dict) -> None:
        super().validate(group)
        check_range("N", group["N"], 0.0, math.inf, lo_open=True)
        burnin = group["burnin"]
        if isinstance(burnin, bool) or not isinstance(burnin, (int, np.integer)) or burnin < 0:
            raise ValueError(f"invalid burnin: {burnin!r} (must be an integer >= 0)")
        check_range("C", group["C"], 0.0, math.inf)
        check_range("sigma", group["sigma"], 0.0, 1.0, hi_open=True)
        check_range("lambd", group["lambd"], 0.0, math.inf, lo_open=True)
        check_range("gamma", group["gamma"], 0.0, math.inf)
        check_flag("preconditioner_drift", group["preconditioner_drift"])

    def _normal(self, p):
        """zeta ~ N(0, I) shaped like p, from the optimizer's generator, drawn on p's device."""
        return self.rng.standard_normal(p.shape, p.data.dtype, backend.device_of(p.data))

    def init_state(self, p, group: dict) -> dict:
        xp = xp_of(p.data)
        root_eta = math.sqrt(group["lr"])
        return {
            "step": 0,
            "momentum_buffer": root_eta * self._normal(p),
            "alpha": xp.full_like(p.data, root_eta * group["C"]),
            "exp_avg_sq": xp.zeros_like(p.data),
            "precond": None,
        }

    def _precondition(self, grad, state: dict, group: dict):
        """v <- sigma*v + (1-sigma)*grad^2 and g = 1/sqrt(lambd + sqrt(v)); returns (g, g_prev).

        (1-sigma)/N^2 * f*f with f = N*grad is (1-sigma)*grad^2: computed without the N^2."""
        xp = xp_of(grad)
        sigma = group["sigma"]
        v = state["exp_avg_sq"]
        v *= sigma
        v += (1 - sigma) * grad * grad
        g = xp.sqrt(v)
        g += group["lambd"]
        xp.sqrt(g, out=g)
        xp.divide(1.0, g, out=g)
        g_prev = g if state["precond"] is None else state["precond"]
        state["precond"] = g
        return g, g_prev

    def _drift_and_noise(self, p, u, g, g_prev, eta: float, beta: float, group: dict):
        """(eta/beta)(1 - g_{t-1}/g_t)/u_{t-1} + sqrt(2 eta^(3/2) g_{t-1}/beta) * zeta, without
        the first (drift) term when group['preconditioner_drift'] is False."""
        xp = xp_of(u)
        out = xp.sqrt((2 * eta**1.5 / beta) * g_prev) * self._normal(p)
        if group["preconditioner_drift"]:
            # dividing by inf instead of 0 gives the term 0 where u_{t-1} == 0, without a warning
            safe_u = xp.where(u == 0, xp.inf, u)
            out += (eta / beta) * (1 - g_prev / g) / safe_u
        return out

    def state_dict(self) -> dict:
        """The base state_dict plus 'rng': the noise generator's {'seed', 'counter'}."""
        state = super().state_dict()
        state["rng"] = self.rng.get_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        rng = backend.Generator(0)
        rng.set_state(state_dict["rng"])  # checked before anything is loaded
        super().load_state_dict(state_dict)
        self.rng, self.seed = rng, rng.seed


class SantaE(_Santa):
    __doc__ = """SantaE: Santa with the Euler integrator, Chen, Carlson, Gan, Li & Carin,
    AISTATS 2016, arXiv:1512.07962, Algorithm 1.
    """ + _COMMON_DOC + """
    Exploration (t < burnin):
        alpha_t = alpha_{t-1} + (u_{t-1}*u_{t-1} - eta/beta_t)
        u_t = (eta/beta_t)(1 - g_{t-1}/g_t)/u_{t-1} + sqrt(2 eta^(3/2) g_{t-1}/beta_t) * zeta_t
    Refinement: alpha_t = alpha_{t-1}, u_t = 0. Then, in both stages:
        u_t = u_t + (1 - alpha_t) * u_{t-1} - eta * g_t * f
        theta_t = theta_{t-1} + g_t * u_t
    With burnin = 0 this is preconditioned momentum SGD with friction alpha = sqrt(eta)*C.
    The Euler factor (1 - alpha) needs alpha < 2, and in exploration the thermostat drives
    alpha towards sqrt(eta)*g, with g up to 1/sqrt(lambd) where gradients vanish: keep
    sqrt(eta/lambd) well below 2, or use SantaSSS, whose exp(-alpha/2) cannot overshoot.
    """ + _HYPER_DOC

    def update(self, p, grad, state: dict, group: dict) -> None:
        eta = group["lr"]
        state["step"] += 1
        t = state["step"]
        beta = t ** group["gamma"]
        u, alpha = state["momentum_buffer"], state["alpha"]
        g, g_prev = self._precondition(grad, state, group)
        if t < group["burnin"]:
            u_new = self._drift_and_noise(p, u, g, g_prev, eta, beta, group)
            alpha += u * u - eta / beta
            u_new += (1 - alpha) * u
        else:
            u_new = (1 - alpha) * u
        u_new -= (eta * group["N"]) * g * grad
        p.data += g * u_new
        state["momentum_buffer"] = u_new


class SantaSSS(_Santa):
    __doc__ = """SantaSSS: Santa with the symmetric-splitting integrator, Chen, Carlson, Gan,
    Li & Carin, AISTATS 2016, arXiv:1512.07962 (supplementary material).
    """ + _COMMON_DOC + """
    Every step starts with a half step theta = theta_{t-1} + g_t * u_{t-1}/2. Exploration:
        alpha = alpha_{t-1} + (u_{t-1}^2 - eta/beta_t)/2
        u = exp(-alpha/2) * u_{t-1}
        u = u - eta g_t f + sqrt(2 eta^(3/2) g_{t-1}/beta_t) zeta_t
              + (eta/beta_t)(1 - g_{t-1}/g_t)/u_{t-1}
        u_t = exp(-alpha/2) * u
        alpha_t = alpha + (u_t^2 - eta/beta_t)/2
    Refinement: alpha_t = alpha_{t-1},
        u_t = exp(-alpha_t/2) * (exp(-alpha_t/2) * u_{t-1} - eta g_t f).
    Then theta_t = theta + g_t * u_t/2. (The authors' MATLAB code is SSS-like but drops the
    (1 - g_{t-1}/g_t) term, splits the force into two halves and smooths the gradient; this
    follows the paper.)
    """ + _HYPER_DOC

    def update(self, p, grad, state: dict, group: dict) -> None:
        xp = xp_of(p.data)
        eta = group["lr"]
        state["step"] += 1
        t = state["step"]
        beta = t ** group["gamma"]
        u, alpha = state["momentum_buffer"], state["alpha"]
        g, g_prev = self._precondition(grad, state, group)
        p.data += g * u / 2
        force = (eta * group["N"]) * g * grad
        if t < group["burnin"]:
            alpha += (u * u - eta / beta) / 2
            decay = xp.exp(-alpha / 2)
            u_new = decay * u - force + self._drift_and_noise(p, u, g, g_prev, eta, beta, group)
            u_new *= decay
            alpha += (u_new * u_new - eta / beta) / 2
        else:
            decay = xp.exp(-alpha / 2)
            u_new = decay * u - force
            u_new *= decay
        p.data += g * u_new / 2
        state["momentum_buffer"] = u_new
