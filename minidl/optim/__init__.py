"""Optimizers (torch.optim conventions), learning-rate schedules and ADAS.

`OPTIMIZERS` maps the names used by the CLI and the experiments to (class or factory, preset
hyperparameters); `create(name, params, **hyperparameters)` builds one by name, and
`python -m minidl optimizers` prints them all.
"""

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
from minidl.optim.registry import (
    OPTIMIZERS,
    Entry,
    cprop_adam,
    cprop_sgd,
    create,
    hyperparameters,
    parse_hyperparameters,
)
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


__all__ = [
    "AMSBound", "AMSGrad", "AdaBound", "AdaShift", "Adadelta", "Adagrad", "Adai", "Adam",
    "AdamW", "Adamax", "Adas", "CProp", "Entry", "CosineAnnealingLR", "Eve", "ExponentialLR",
    "InverseTimeLR", "LBFGS", "LRScheduler", "LinearLR", "LinearWarmup", "MultiStepLR", "NAdam",
    "OPTIMIZERS", "Optimizer", "RAdam", "RMSprop", "RMSpropGraves", "ReduceLROnPlateau", "SGD",
    "SMORMS3", "SantaE", "SantaSSS", "StepLR", "check_range", "cprop_adam", "cprop_sgd",
    "create", "hyperparameters", "parse_hyperparameters",
]
