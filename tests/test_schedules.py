"""Tests of minidl.optim.schedules: values against torch.optim.lr_scheduler's documented
formulas (written out here), two param groups with their own base lrs, state_dict round trips,
ReduceLROnPlateau's patience and cooldown, argument checks, and AdaBound's bounds following a
schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl import backend
from minidl.optim.bounded import AdaBound
from minidl.optim.cprop import CProp
from minidl.optim.optimizer import Optimizer
from minidl.optim.schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeLR,
    LinearLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
)
from tests.optim_harness import param

BASE_LRS = (0.1, 0.02)


class PlainSGD(Optimizer):
    def __init__(self, params, lr=0.01):
        super().__init__(params, dict(lr=lr))

    def init_state(self, p, group):
        return {}

    def update(self, p, grad, state, group):
        p.data -= group["lr"] * grad


def two_groups(device="cpu"):
    """An optimizer with two groups, lr 0.1 and 0.02."""
    return PlainSGD([{"params": [param([1.0, 2.0], device)], "lr": BASE_LRS[0]},
                     {"params": [param([3.0], device)], "lr": BASE_LRS[1]}])


# name: (make scheduler, lr as a function of (base_lr, epoch): torch's documented formula)
SCHEDULES = {
    "StepLR": (lambda o: StepLR(o, step_size=3, gamma=0.5),
               lambda b, e: b * 0.5 ** math.floor(e / 3)),
    "MultiStepLR": (lambda o: MultiStepLR(o, milestones=[9, 2, 5, 5], gamma=0.3),
                    lambda b, e: b * 0.3 ** sum(m <= e for m in [2, 5, 5, 9])),
    "ExponentialLR": (lambda o: ExponentialLR(o, gamma=0.9), lambda b, e: b * 0.9**e),
    "InverseTimeLR": (lambda o: InverseTimeLR(o, k=0.5), lambda b, e: b / (1 + 0.5 * e)),
    "CosineAnnealingLR": (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
                          lambda b, e: 1e-3 + (b - 1e-3) * (1 + math.cos(math.pi * e / 10)) / 2),
    "LinearLR": (lambda o: LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=4),
                 lambda b, e: b * (0.25 + 0.5 * min(e, 4) / 4)),
    "LinearLR-defaults": (lambda o: LinearLR(o),
                          lambda b, e: b * (1 / 3 + (1 - 1 / 3) * min(e, 5) / 5)),
    "LinearWarmup": (lambda o: LinearWarmup(o, warmup_steps=5, start_factor=0.1),
                     lambda b, e: b * (0.1 + 0.9 * min(e, 5) / 5)),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_values_follow_the_formula_for_each_group(device, name):
    make, formula = SCHEDULES[name]
    opt = two_groups(device)
    sched = make(opt)
    for epoch in range(26):
        if epoch:
            opt.step()
            sched.step()
        want = [formula(b, epoch) for b in BASE_LRS]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-14, atol=0)
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    assert sched.last_epoch == 25
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)


def test_closed_forms_equal_torch_chainable_forms():
    """torch's recursive updates (documented in lr_scheduler) reach the same values."""
    cos = CosineAnnealingLR(two_groups(), T_max=7, eta_min=0.01)
    lr, eta_max, t_max = 0.1, 0.1, 7
    for t in range(1, 30):  # eta_{t} from eta_{t-1}
        if (t - 1 - t_max) % (2 * t_max) == 0:
            lr = lr + (eta_max - 0.01) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            lr = (0.01 + (lr - 0.01) * (1 + math.cos(math.pi * t / t_max))
                  / (1 + math.cos(math.pi * (t - 1) / t_max)))
        cos.step()
        assert cos.get_last_lr()[0] == pytest.approx(lr, rel=1e-12, abs=1e-15)
    step, lr = StepLR(two_groups(), step_size=4, gamma=0.7), 0.1
    for t in range(1, 30):
        lr = lr * 0.7 if t % 4 == 0 else lr
        step.step()
        assert step.get_last_lr()[0] == pytest.approx(lr, rel=1e-13)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip(device, name):
    make, _ = SCHEDULES[name]
    opt_a = two_groups(device)
    sched_a = make(opt_a)
    opt_b = two_groups(device)
    sched_b = make(opt_b)
    for _ in range(7):
        sched_a.step()
        sched_b.step()
    saved_opt, saved_sched = opt_b.state_dict(), sched_b.state_dict()
    assert "optimizer" not in saved_sched
    opt_c = two_groups(device)
    sched_c = make(opt_c)
    opt_c.load_state_dict(saved_opt)
    sched_c.load_state_dict(saved_sched)
    for _ in range(8):
        sched_a.step()
        sched_c.step()
        assert sched_c.get_last_lr() == sched_a.get_last_lr()
        assert [g["lr"] for g in opt_c.param_groups] == sched_a.get_last_lr()


def test_resume_with_last_epoch_needs_initial_lr(device):
    opt = two_groups(device)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt, step_size=2, last_epoch=3)
    sched = StepLR(opt, step_size=2)
    for _ in range(3):
        sched.step()
    resumed = StepLR(opt, step_size=2, last_epoch=3)  # takes step 4 at once, from initial_lr
    assert resumed.last_epoch == 4
    assert resumed.get_last_lr() == pytest.approx([0.1 * 0.1**2, 0.02 * 0.1**2])


# --------------------------------------------------------------------------- ReduceLROnPlateau

def test_plateau_patience_and_cooldown(device):
    opt = two_groups(device)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1, cooldown=1)
    metrics = [10, 9, 9, 9, 9, 9, 9, 9, 5, 5, 5, 5.0]
    # 9 is not below 10 * (1 - 0.1): bad evaluations 1, 2, 3 > patience -> halve at the 4th;
    # the 5th is in cooldown (not counted); the 6th, 7th, 8th are bad again -> halve; the 9th
    # improves; three more bad ones are needed before the next cut
    want = [1, 1, 1, .5, .5, .5, .5, .25, .25, .25, .25, .125]
    for metric, factor in zip(metrics, want):
        sched.step(metric)
        assert sched.get_last_lr() == [b * factor for b in BASE_LRS]
    assert sched.best == 5 and sched.last_epoch == len(metrics)


def test_plateau_max_mode_abs_threshold_min_lr_and_eps(device):
    opt = two_groups(device)
    sched = ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.5,
                              threshold_mode="abs", min_lr=[0.005, 0.0], eps=1e-3)
    sched.step(1.0)   # improves on -inf
    sched.step(1.4)   # not above 1.0 + 0.5: cut at once (patience 0)
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002])
    sched.step(2.0)   # improves
    sched.step(2.0)   # cut: group 0 floors at min_lr; group 1's change 0.0018 > eps
    assert sched.get_last_lr() == pytest.approx([0.005, 0.0002])
    sched.step(2.0)   # group 0 at its floor; group 1's change 0.00018 < eps: skipped
    assert sched.get_last_lr() == pytest.approx([0.005, 0.0002])


def test_plateau_state_dict_round_trip(device):
    opt = two_groups(device)
    sched = ReduceLROnPlateau(opt, patience=1, cooldown=2)
    for m in [3.0, 3.0, 3.0]:
        sched.step(m)
    other = ReduceLROnPlateau(two_groups(device), patience=1, cooldown=2)
    other.load_state_dict(sched.state_dict())
    assert (other.best, other.num_bad_epochs, other.cooldown_counter) == (3.0, 0, 2)


# --------------------------------------------------------------------------- arguments

INVALID = [
    (lambda o: StepLR(o, step_size=0), ValueError, "invalid step_size"),
    (lambda o: StepLR(o, step_size=2.0), TypeError, "step_size must be an integer"),
    (lambda o: StepLR(o, step_size=2, gamma=-0.1), ValueError, "invalid gamma"),
    (lambda o: MultiStepLR(o, milestones=[1.5]), TypeError, "milestones must be an integer"),
    (lambda o: MultiStepLR(o, milestones=[-1]), ValueError, "invalid milestones"),
    (lambda o: ExponentialLR(o, gamma=0.0), ValueError, "invalid gamma"),
    (lambda o: InverseTimeLR(o, k=-1.0), ValueError, "invalid k"),
    (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "invalid T_max"),
    (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=-1.0), ValueError, "invalid eta_min"),
    (lambda o: LinearLR(o, start_factor=0.0), ValueError, "invalid start_factor"),
    (lambda o: LinearLR(o, end_factor=1.5), ValueError, "invalid end_factor"),
    (lambda o: LinearLR(o, total_iters=0), ValueError, "invalid total_iters"),
    (lambda o: LinearWarmup(o, warmup_steps=0), ValueError, "invalid warmup_steps"),
    (lambda o: StepLR(o, step_size=2, last_epoch=-2), ValueError, "invalid last_epoch"),
    (lambda o: ReduceLROnPlateau(o, mode="avg"), ValueError, "invalid mode"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "invalid threshold_mode"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "invalid factor"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "invalid patience"),
    (lambda o: ReduceLROnPlateau(o, cooldown=0.5), TypeError, "cooldown must be an integer"),
    (lambda o: ReduceLROnPlateau(o, threshold=-1.0), ValueError, "invalid threshold"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.0]), ValueError, "min_lr has 1 values"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-1.0), ValueError, "invalid min_lr"),
    (lambda o: ReduceLROnPlateau(o, eps=-1.0), ValueError, "invalid eps"),
]


@pytest.mark.parametrize("make, error, message", INVALID, ids=[m for _, _, m in INVALID])
def test_invalid_arguments_raise(device, make, error, message):
    with pytest.raises(error, match=message):
        make(two_groups(device))


def test_needs_an_optimizer():
    with pytest.raises(TypeError, match="needs an optimizer"):
        StepLR([0.1], step_size=1)
    with pytest.raises(TypeError, match="needs an optimizer"):
        ReduceLROnPlateau(None)
    assert issubclass(ReduceLROnPlateau, LRScheduler)


# --------------------------------------------------------------------------- with optimizers

def test_adabound_bounds_follow_the_scheduled_lr(device):
    """final = final_lr * lr / initial_lr with lr from StepLR; the bounds clip here."""
    grads = [[0.5, -1.2, 3.0], [-0.3, -0.8, 0.05], [0.9, 0.4, 0.02], [0.2, 2.0, -0.01],
             [-0.7, 0.1, 0.3]]
    p = param([1.0, -0.5, 0.25], device)
    opt = AdaBound([p], lr=0.05, gamma=0.5, final_lr=0.1)
    sched = StepLR(opt, step_size=2, gamma=0.1)
    got = []
    for g in grads:
        p.grad = backend.to_device(np.array(g), device)
        opt.step()
        sched.step()
        got.append(backend.to_numpy(p.data).copy())

    b1, b2, x, m, v, want = 0.9, 0.999, [1.0, -0.5, 0.25], [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(grads, start=1):
        lr = 0.05 * 0.1 ** ((t - 1) // 2)  # the lr in force at step t
        final = 0.1 * lr / 0.05
        lower, upper = final * (1 - 1 / (0.5 * t + 1)), final * (1 + 1 / (0.5 * t))
        for i in range(3):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            size = lr * math.sqrt(1 - b2**t) / (1 - b1**t) / (math.sqrt(v[i]) + 1e-8)
            x[i] -= min(max(size, lower), upper) * m[i]
        want.append(list(x))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12, atol=0)
    assert opt.param_groups[0]["initial_lr"] == 0.05


def test_schedules_drive_a_cprop_wrapped_optimizer(device):
    p = param([1.0, 2.0], device)
    base = PlainSGD([p], lr=0.1)
    opt = CProp(base)
    sched = ExponentialLR(opt, gamma=0.5)
    p.grad = backend.to_device(np.array([1.0, -1.0]), device)
    opt.step()
    sched.step()
    assert base.param_groups[0]["lr"] == 0.05 and sched.get_last_lr() == [0.05]
