"""CProp: scales any optimizer's update, element by element, by how consistently the gradient
has kept its sign (Preechakul & Kijsirikul 2019, arXiv:1912.11493). A wrapper, not a subclass:
`CProp(Adam(model), beta=0.999)` steps the base optimizer and then shrinks its update."""

from __future__ import annotations

import math
from collections.abc import Callable


from minidl.backend import xp_of
from minidl.optim.optimizer import check_range, copy_state

_CDFS = ("bft", "bfo", "logistic")


class CProp:
    """CProp: K. Preechakul, B. Kijsirikul, "CProp: Adaptive Learning Rate Scaling from Past
    Gradient Conformity", arXiv:1912.11493 (2019). The wrapper of the official code
    (phizaz/cprop `CProp(optimizer, beta=0.999, c=1, eps=1e-8, cdf='bft')`).

    Per element, from the raw gradient g = p.grad (before any weight decay of the base), with
    zero-initialised m, v and a per-parameter step count t:

        m <- beta*m + (1-beta)*g                v <- beta*v + (1-beta)*g^2
        b = 1 - beta^t    m_hat = m/b    v_hat = v/b    n = b/(1-beta)  (effective sample size)
        se = sqrt(max(v_hat - m_hat^2, 0) / (n - 1 + eps)) + eps     (standard error of m_hat)
        P  = probability that X < 0 for X ~ Normal(m_hat, se^2), approximated by `cdf`
        s  = min(2c * |P - 1/2|, 1)                                  (the confidence in [0, 1])
        p  <- p_before + s * (p_after - p_before)

    i.e. the base optimizer's update (whatever it is: SGD, Adam, its weight decay) is
    multiplied element-wise by s. At t = 1, n = 1 so se = eps and s = 1: the first step is the
    base's. A gradient whose sign keeps flipping gets s ~ 0; a consistent one gets s = 1.

    cdf approximations of P with z = -m_hat/se (all logistic, so 2|P - 1/2| = |tanh(x/2)|,
    computed in that form: no overflow, no cancellation near P = 1/2):
        'bft' (default): 1/(1 + exp(-0.07056 z^3 - 1.5976 z))  (Bowling et al. 2009, best fit 2)
        'bfo': 1/(1 + exp(-1.702 z))                            (best fit 1)
        'logistic': the logistic cdf of the same variance, 1/(1 + exp(pi m_hat/(sqrt(3) se)))
    The exact normal cdf ('normal' in the official code) needs erf, which NumPy lacks; 'bft'
    is within 1.4e-4 of it.

    Hyperparameters (the wrapper's, shared by all groups): beta (0.999) in [0, 1), the decay
    of m and v (0.999-0.9999 for longer runs); c (1) >= 0, the confidence gain (3-5 for better
    generalisation, per the authors); eps (1e-8) > 0; cdf ('bft').
    param_groups, zero_grad and add_param_group are the base optimizer's (schedulers work as
    usual). state: CProp's own, per parameter: step, exp_avg (m), exp_avg_sq (v).
    """

    @property
    def needs_closure(self) -> bool:
        """The base optimizer's flag: CProp only rescales the step it takes."""
        return self.base.needs_closure

    def __init__(self, base_optimizer, beta: float = 0.999, c: float = 1.0, eps: float = 1e-8,
                 cdf: str = "bft"):
        if not hasattr(base_optimizer, "param_groups") or not hasattr(base_optimizer, "step"):
            raise TypeError(f"CProp wraps an optimizer, got {type(base_optimizer).__name__}")
        self.base = base_optimizer
        self.defaults = dict(beta=beta, c=c, eps=eps, cdf=cdf)
        self._validate(self.defaults)
        self.state: dict = {}

    @staticmethod
    def _validate(hyper: dict) -> None:
        check_range("beta", hyper["beta"], 0.0, 1.0, hi_open=True)
        check_range("c", hyper["c"], 0.0, math.inf)
        # eps > 0: at t = 1 it is the whole divisor n - 1 + eps
        check_range("eps", hyper["eps"], 0.0, math.inf, lo_open=True)
        if hyper["cdf"] not in _CDFS:
            raise ValueError(f"invalid cdf: {hyper['cdf']!r} (valid: {_CDFS}; 'normal' is not "
                             "offered: NumPy has no erf)")

    @property
    def param_groups(self) -> list:
        return self.base.param_groups

    def add_param_group(self, group: dict) -> None:
        self.base.add_param_group(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none)

    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def step(self, closure: Callable | None = None):
        """Step the base optimizer (with the closure, if any), then scale its update."""
        before = [p.data.copy() for p in self._params()]
        loss = self.base.step(closure)
        for p, old in zip(self._params(), before):
            if p.grad is None:
                continue
            scale = self._confidence(p)
            p.data -= old      # the base's update ...
            p.data *= scale    # ... scaled ...
            p.data += old      # ... from where it started
        return loss

    def _confidence(self, p):
        """s = min(2c|P - 1/2|, 1), updating the running moments of p.grad."""
        xp = xp_of(p.data)
        beta, c, eps = self.defaults["beta"], self.defaults["c"], self.defaults["eps"]
        grad = p.grad
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {"step": 0, "exp_avg": xp.zeros_like(p.data),
                                     "exp_avg_sq": xp.zeros_like(p.data)}
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta
        m += (1 - beta) * grad
        v *= beta
        v += (1 - beta) * grad * grad

        b = 1 - beta ** state["step"]
        m_hat = m / b
        var = v / b
        var -= m_hat * m_hat
        xp.clip(var, 0, xp.inf, out=var)  # clip: faster than maximum in NumPy
        var /= b / (1 - beta) - 1 + eps
        se = xp.sqrt(var, out=var)
        se += eps
        z = xp.divide(m_hat, se, out=m_hat)  # the sign of z does not matter: |tanh| is even
        # half of the logistic argument x (halving the constants is exact)
        cdf = self.defaults["cdf"]
        if cdf == "bft":
            # |z| >= 100 already gives tanh = 1 exactly; clipping keeps z^3 finite in float32
            xp.clip(z, -100, 100, out=z)
            half_x = (0.07056 / 2 * z * z + 1.5976 / 2) * z
        elif cdf == "bfo":
            half_x = (1.702 / 2) * z
        else:  # logistic with the same variance: scale se * sqrt(3)/pi
            half_x = (math.pi / math.sqrt(3) / 2) * z
        s = xp.tanh(half_x, out=half_x)
        xp.abs(s, out=s)
        s *= c
        return xp.clip(s, 0, 1, out=s)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """{'base': the base's state_dict, 'state': {index: CProp state}, 'cprop': hyperparameters}
        with parameters numbered in group order, as the base does."""
        index = {id(p): i for i, p in enumerate(self._params())}
        own = {index[id(p)]: copy_state(s) for p, s in self.state.items() if id(p) in index}
        return {"base": self.base.state_dict(), "state": own, "cprop": dict(self.defaults)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the base's state and CProp's own (arrays moved to each parameter's device
        and cast to its dtype)."""
        self._validate(state_dict["cprop"])
        self.base.load_state_dict(state_dict["base"])
        self.defaults = dict(state_dict["cprop"])
        params = self._params()
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = copy_state(s, like=p.data)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"CProp({hyper}) wrapping {self.base!r}"

