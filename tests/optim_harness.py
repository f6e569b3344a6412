"""Shared checks for optimizer tests: every optimizer is run through the same four checks.

Each takes a factory `make(params) -> optimizer` so that one test module can sweep a table of
optimizers. The oracle side of the hand-computed-step tests stays in each test module.
"""

from __future__ import annotations

import numpy as np

import minidl
from minidl import backend
from minidl.nn.module import Parameter


def param(values, device="cpu", dtype=np.float64) -> Parameter:
    """A Parameter holding `values` on `device` (float64 by default for exact checks)."""
    return Parameter(backend.to_device(np.array(values, dtype=dtype), device))


def quadratic(p: Parameter, scales) -> float:
    """f(x) = 0.5 * sum(scales * x^2): fills p.grad, returns f (a convex bowl, minimum at 0)."""
    x = p.data
    p.grad = scales * x
    return float(backend.to_numpy(0.5 * (scales * x * x).sum()))


def rosenbrock(p: Parameter) -> float:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: fills p.grad, returns f (minimum at (1, 1))."""
    x, y = p.data[0], p.data[1]
    xp = backend.xp_of(p.data)
    p.grad = xp.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    return float(backend.to_numpy((1 - x) ** 2 + 100 * (y - x * x) ** 2))


def run(make, p: Parameter, objective, steps: int) -> list[float]:
    """Run `steps` optimizer steps on objective(p); returns the objective before each step.

    An optimizer whose step needs the loss (Eve) gets it through a closure.
    """
    opt = make([p])
    values = []
    for _ in range(steps):
        def closure():
            return objective(p)
        values.append(opt.step(closure))
    return values


def roundtrip_continues_identically(make, p0_values, objective, steps_before=5, steps_after=5,
                                    device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Run A straight through; run B, save its state_dict mid-way into a *fresh* optimizer and
    parameter, and continue. Returns both final parameter arrays (they must be equal bitwise)."""
    pa = param(p0_values, device)
    opt_a = make([pa])
    for _ in range(steps_before + steps_after):
        opt_a.step(lambda: objective(pa))

    pb = param(p0_values, device)
    opt_b = make([pb])
    for _ in range(steps_before):
        opt_b.step(lambda: objective(pb))
    saved = opt_b.state_dict()
    pc = param(backend.to_numpy(pb.data), device)
    opt_c = make([pc])
    opt_c.load_state_dict(saved)
    for _ in range(steps_after):
        opt_c.step(lambda: objective(pc))
    return backend.to_numpy(pa.data), backend.to_numpy(pc.data)


def zero_gradient_stays_finite(make, steps: int = 5, device="cpu") -> np.ndarray:
    """Step with all-zero gradients; returns the parameter (must be finite)."""
    p = param(np.linspace(-1.0, 1.0, 6), device)
    opt = make([p])
    xp = backend.xp_of(p.data)

    def closure():
        p.grad = xp.zeros_like(p.data)
        return 1.0
    for _ in range(steps):
        opt.step(closure)
    return backend.to_numpy(p.data)


__all__ = ["minidl", "param", "quadratic", "rosenbrock", "run",
           "roundtrip_continues_identically", "zero_gradient_stays_finite"]
