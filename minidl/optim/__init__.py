"""Optimizers (torch.optim conventions), learning-rate schedules and ADAS."""

from minidl.optim.optimizer import Optimizer, check_range

__all__ = ["Optimizer", "check_range"]
