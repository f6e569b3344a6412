"""Optimizers (torch.optim conventions), learning-rate schedules and ADAS.

`OPTIMIZERS` maps the names used by the CLI and the experiments to (class or factory, preset
hyperparameters); `python -m minidl optimizers` prints it.
"""

from typing import Callable, NamedTuple

from minidl.optim.adagrad import SMORMS3, Adadelta, Adagrad, RMSprop, RMSpropGraves
from minidl.optim.adai import Adai
from minidl.optim.adam import AMSGrad, Adam, Adamax, AdamW, NAdam, RAdam
from minidl.optim.adas import Adas
from minidl.optim.adashift import AdaShift
from minidl.optim.bounded import AdaBound, AMSBound
from minidl.optim.cprop import CProp
from minidl.optim.eve import Eve
from minidl.optim.lbfgs import LBFGS
from minidl.optim.optimizer import Optimizer, check_range
from minidl.optim.santa import SantaE, SantaSSS
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
from minidl.optim.sgd import SGD


def cprop_sgd(params, lr: float = 1e-3, momentum: float = 0.0, beta: float = 0.999,
              c: float = 1.0, eps: float = 1e-8, cdf: str = "bft") -> CProp:
    """CProp-scaled SGD (phizaz/cprop's CPropSGD): CProp(SGD(params, lr, momentum), beta, c)."""
    return CProp(SGD(params, lr=lr, momentum=momentum), beta=beta, c=c, eps=eps, cdf=cdf)


def cprop_adam(params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), beta: float = 0.999,
               c: float = 1.0, eps: float = 1e-8, cdf: str = "bft") -> CProp:
    """CProp-scaled Adam (phizaz/cprop's CPropAdam): CProp(Adam(params, lr, betas), beta, c)."""
    return CProp(Adam(params, lr=lr, betas=betas), beta=beta, c=c, eps=eps, cdf=cdf)


class Entry(NamedTuple):
    """A named optimizer: how to build it, preset hyperparameters, a one-line summary."""

    factory: Callable
    preset: dict
    summary: str


OPTIMIZERS = {
    "sgd": Entry(SGD, {}, "plain stochastic gradient descent (Robbins & Monro 1951)"),
    "momentum": Entry(SGD, {"momentum": 0.9}, "SGD with heavy-ball momentum (Polyak 1964)"),
    "nesterov": Entry(SGD, {"momentum": 0.9, "nesterov": True},
                      "SGD with Nesterov momentum (Sutskever et al. 2013 form)"),
    "adagrad": Entry(Adagrad, {}, "per-coordinate steps from summed squared gradients (2011)"),
    "rmsprop": Entry(RMSprop, {}, "steps scaled by a running RMS of gradients (Hinton 2012)"),
    "adadelta": Entry(Adadelta, {}, "RMSprop with unit-correcting update RMS (Zeiler 2012)"),
    "rmspropgraves": Entry(RMSpropGraves, {}, "centred RMSprop with momentum (Graves 2013)"),
    "smorms3": Entry(SMORMS3, {}, "RMSprop with adaptive memory length (Funk 2015)"),
    "adam": Entry(Adam, {}, "momentum + RMS scaling with bias correction (Kingma & Ba 2014)"),
    "amsgrad": Entry(AMSGrad, {}, "Adam with the running maximum of v (Reddi et al. 2018)"),
    "adamw": Entry(AdamW, {}, "Adam with decoupled weight decay (Loshchilov & Hutter 2017)"),
    "adamax": Entry(Adamax, {}, "Adam with the infinity norm (Kingma & Ba 2014)"),
    "nadam": Entry(NAdam, {}, "Adam with Nesterov momentum (Dozat 2016)"),
    "radam": Entry(RAdam, {}, "Adam with a rectified warm-up of v (Liu et al. 2019)"),
    "eve": Entry(Eve, {}, "Adam scaled by the relative change of the loss (Hayashi et al. 2016)"),
    "santa-e": Entry(SantaE, {}, "annealed thermostat SG-MCMC, Euler integrator (Chen 2016)"),
    "santa-sss": Entry(SantaSSS, {}, "annealed thermostat SG-MCMC, split integrator (Chen 2016)"),
    "adabound": Entry(AdaBound, {}, "Adam clipped into bounds that close on SGD (Luo 2019)"),
    "amsbound": Entry(AMSBound, {}, "AMSGrad clipped into closing bounds (Luo et al. 2019)"),
    "adashift": Entry(AdaShift, {}, "v from gradients n steps old, decorrelated (Zhou 2018)"),
    "cprop-sgd": Entry(cprop_sgd, {}, "SGD scaled by gradient-sign confidence (Preechakul 2019)"),
    "cprop-adam": Entry(cprop_adam, {}, "Adam scaled by gradient-sign confidence (2019)"),
    "adai": Entry(Adai, {}, "adaptive inertia: per-coordinate momentum (Xie et al. 2020)"),
    "lbfgs": Entry(LBFGS, {}, "limited-memory quasi-Newton with a closure (Liu & Nocedal 1989)"),
    "adas": Entry(Adas, {}, "per-input step sizes by hypergradient, input offsets (Eliyahu)"),
    "adas-pytorch": Entry(Adas, {"variant": "pytorch"},
                          "ADAS as the authors' PyTorch file: no offsets (Eliyahu 2021)"),
}

__all__ = [
    "AMSBound", "AMSGrad", "AdaBound", "AdaShift", "Adadelta", "Adagrad", "Adai", "Adam",
    "AdamW", "Adamax", "Adas", "CProp", "Entry", "CosineAnnealingLR", "Eve", "ExponentialLR",
    "InverseTimeLR", "LBFGS", "LRScheduler", "LinearLR", "LinearWarmup", "MultiStepLR", "NAdam",
    "OPTIMIZERS", "Optimizer", "RAdam", "RMSprop", "RMSpropGraves", "ReduceLROnPlateau", "SGD",
    "SMORMS3", "SantaE", "SantaSSS", "StepLR", "check_range", "cprop_adam", "cprop_sgd",
]
