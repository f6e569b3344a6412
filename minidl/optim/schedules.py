"""Learning-rate schedules for any optimizer, with torch.optim.lr_scheduler's semantics.

A schedule edits `group['lr']` of every param group in place and records the starting value in
`group['initial_lr']` (the base lr it scales). Call `scheduler.step()` once per epoch (or per
iteration, as the schedule intends) *after* `optimizer.step()`:

    opt = Adam(model.parameters(), lr=1e-3)
    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(model, opt)     # calls opt.step()
        sched.step()

`last_epoch` counts the scheduler's steps (-1: fresh; creating the scheduler takes step 0 and
sets the lr to its value there); `get_last_lr()` returns the lrs it set last; `state_dict()` /
`load_state_dict()` save the scheduler separately from the optimizer. Values come from closed
forms in `last_epoch` and the base lrs (torch's documented formulas), so they do not drift;
unlike torch's chainable form, a schedule therefore does not compose with another one editing
the same lr. `ReduceLROnPlateau` is stepped with a metric instead.
"""

from __future__ import annotations

import bisect
import copy
import math

import numpy as np

from minidl.optim.optimizer import check_range


class LRScheduler:
    """Base class: subclasses implement `lr_at(base_lr, epoch) -> float`.

    optimizer: anything with `param_groups` (an Optimizer, or a wrapper such as CProp).
    last_epoch: -1 for a fresh schedule; otherwise the epoch to resume from, in which case
        every group must already hold 'initial_lr' (saved with the optimizer's state).
    """

    needs_metric = False  # True where step() takes the monitored metric (ReduceLROnPlateau)

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__} needs an optimizer (with param_groups), "
                            f"got {type(optimizer).__name__}")
        _check_int("last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{i}] has no 'initial_lr': resuming a schedule "
                               f"(last_epoch={last_epoch}) needs the optimizer's saved state")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set every group's lr to the schedule's value there."""
        self.last_epoch += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The lr of each group as last set by this scheduler."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (torch's convention)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(copy.deepcopy(state_dict))


class StepLR(LRScheduler):
    """lr = base_lr * gamma^floor(epoch / step_size): decay by gamma every step_size epochs
    (cs231n's "step decay"). step_size: integer >= 1; gamma (0.1) > 0."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        _check_int("step_size", step_size, 1)
        check_range("gamma", gamma, 0.0, math.inf, lo_open=True, hi_open=True)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma^(number of milestones <= epoch): decay by gamma at each milestone
    (a milestone listed twice decays twice, as torch's). milestones: integers >= 0;
    gamma (0.1) > 0."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        milestones = list(milestones)
        for m in milestones:
            _check_int("milestones", m, 0)
        check_range("gamma", gamma, 0.0, math.inf, lo_open=True, hi_open=True)
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma^epoch. cs231n's exponential decay base_lr * e^(-k t) is
    gamma = e^(-k). gamma > 0."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        check_range("gamma", gamma, 0.0, math.inf, lo_open=True, hi_open=True)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


class InverseTimeLR(LRScheduler):
    """lr = base_lr / (1 + k * epoch): the "1/t decay" of the cs231n notes (CS231n, "Neural
    Networks Part 3: Learning and Evaluation", annealing the learning rate: alpha = alpha_0 /
    (1 + k t), t counting iterations or epochs). torch spells it LambdaLR(lambda t: 1/(1+k*t)).
    k >= 0."""

    def __init__(self, optimizer, k: float, last_epoch: int = -1):
        check_range("k", k, 0.0, math.inf, hi_open=True)
        self.k = k
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr / (1 + self.k * epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (Loshchilov &
    Hutter, SGDR, arXiv:1608.03983, without restarts): from base_lr at epoch 0 down to eta_min
    at epoch T_max, and back up along the same cosine after it, as torch's.
    T_max: integer >= 1; eta_min (0) >= 0."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        _check_int("T_max", T_max, 1)
        check_range("eta_min", eta_min, 0.0, math.inf, hi_open=True)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + cos) / 2


class LinearLR(LRScheduler):
    """lr = base_lr * (start_factor + (end_factor - start_factor) * min(epoch, total_iters) /
    total_iters): a linear ramp of the factor over total_iters epochs, constant after.
    With end_factor = 1 it is a linear warmup to base_lr (see LinearWarmup).
    start_factor (1/3) in (0, 1]; end_factor (1) in [0, 1]; total_iters (5): integer >= 1."""

    def __init__(self, optimizer, start_factor: float = 1 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        check_range("start_factor", start_factor, 0.0, 1.0, lo_open=True)
        check_range("end_factor", end_factor, 0.0, 1.0)
        _check_int("total_iters", total_iters, 1)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        ramp = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * ramp)


class LinearWarmup(LinearLR):
    """Linear warmup: lr = base_lr * (start_factor + (1 - start_factor) * min(epoch,
    warmup_steps) / warmup_steps), i.e. LinearLR(start_factor, end_factor=1, total_iters=
    warmup_steps). Usually stepped per iteration. warmup_steps: integer >= 1; start_factor
    (1/3, torch LinearLR's default) in (0, 1]."""

    def __init__(self, optimizer, warmup_steps: int, start_factor: float = 1 / 3,
                 last_epoch: int = -1):
        _check_int("warmup_steps", warmup_steps, 1)
        super().__init__(optimizer, start_factor, 1.0, warmup_steps, last_epoch)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` when a metric has stopped improving (torch's semantics).

    step(metric) once per evaluation. The metric improves when (mode 'min') it is below
    best * (1 - threshold) ('rel') or best - threshold ('abs'); for mode 'max', above
    best * (1 + threshold) or best + threshold. After more than `patience` evaluations in a row
    without improvement, every group's lr becomes max(lr * factor, min_lr) (a change smaller
    than eps is skipped), and `cooldown` evaluations follow during which bad evaluations are
    not counted. Does not record initial_lr (it scales the current lr, not a base lr).

    mode ('min' | 'max'); factor (0.1) in [0, 1); patience (10): integer >= 0;
    threshold (1e-4) >= 0; threshold_mode ('rel' | 'abs'); cooldown (0): integer >= 0;
    min_lr (0): >= 0, one number or one per group; eps (1e-8) >= 0.
    """

    needs_metric = True

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0.0, eps: float = 1e-8):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"ReduceLROnPlateau needs an optimizer (with param_groups), got "
                            f"{type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"invalid mode: {mode!r} (must be 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"invalid threshold_mode: {threshold_mode!r} (must be 'rel' or "
                             "'abs')")
        check_range("factor", factor, 0.0, 1.0, hi_open=True)
        _check_int("patience", patience, 0)
        check_range("threshold", threshold, 0.0, math.inf, hi_open=True)
        _check_int("cooldown", cooldown, 0)
        check_range("eps", eps, 0.0, math.inf, hi_open=True)
        n = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(min_lrs) != n:
            raise ValueError(f"min_lr has {len(min_lrs)} values, optimizer has {n} param groups")
        for value in min_lrs:
            check_range("min_lr", value, 0.0, math.inf, hi_open=True)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lrs, self.eps = cooldown, min_lrs, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def is_better(self, current: float, best: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return current < best * (1 - self.threshold)
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (1 + self.threshold)
        return current > best + self.threshold

    def step(self, metric) -> None:
        """Record one evaluation of the metric (a number or a one-element Tensor/array)."""
        current = float(metric.item() if hasattr(metric, "item") else metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad evaluations during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new


def _check_int(name: str, value, lo: int) -> None:
    """Raise unless value is an integer >= lo (bool excluded), naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < lo:
        raise ValueError(f"invalid {name}: {value} (must be >= {lo})")


__all__ = ["CosineAnnealingLR", "ExponentialLR", "InverseTimeLR", "LRScheduler", "LinearLR",
           "LinearWarmup", "MultiStepLR", "ReduceLROnPlateau", "StepLR"]
