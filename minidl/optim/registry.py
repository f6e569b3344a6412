"""The optimizers by name: `OPTIMIZERS` and `create(name, params, **hyperparameters)`.

The CLI (`--optimizer NAME --opt-arg K=V`), the experiments and the docs build optimizers
through `create`, which checks the name and the hyperparameters before constructing anything
and says what is valid when they are not.
"""

from __future__ import annotations

import inspect
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
from minidl.optim.santa import SantaE, SantaSSS
from minidl.optim.sgd import SGD

REQUIRED = "<required>"  # the default shown for a hyperparameter without one


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

def hyperparameters(name_or_factory) -> dict:
    """The hyperparameters of a registered optimizer (by name) or of an optimizer class or
    factory, with their defaults (`REQUIRED` for those without one); presets not applied."""
    factory = (_entry(name_or_factory).factory if isinstance(name_or_factory, str)
               else name_or_factory)
    sig = inspect.signature(factory)
    return {n: (REQUIRED if p.default is p.empty else p.default)
            for n, p in sig.parameters.items()
            if n not in ("params", "base_optimizer") and p.kind is p.POSITIONAL_OR_KEYWORD}


def _entry(name: str) -> Entry:
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid choices: "
                         f"{', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name.lower()]


def create(name: str, params, /, *, dataset_size: int | None = None,
           batch_size: int | None = None, **hyperparameters_):
    """Build the optimizer registered as `name` over `params` (a Module or Parameters).

    The entry's presets apply first, then `hyperparameters_`. Two values that describe the
    training run rather than the algorithm are filled in where an optimizer takes them and
    they were not given: a required `N` (Santa's training-set size) from `dataset_size`, and
    `batch_size` (ADAS's initial step sizes and decays depend on it) from `batch_size`.

    Raises ValueError for an unknown name (listing the valid ones) or a missing required
    hyperparameter, TypeError for an unknown hyperparameter (listing the valid ones), and
    whatever the optimizer raises for a bad value — all before any state is created.

    >>> opt = create("adam", model, lr=1e-3, betas=(0.9, 0.99))
    """
    entry = _entry(name)
    valid = hyperparameters(entry.factory)
    unknown = sorted(set(hyperparameters_) - set(valid))
    if unknown:
        raise TypeError(f"{name} has no hyperparameter {', '.join(unknown)}; "
                        f"valid: {', '.join(valid)}")
    kwargs = {**entry.preset, **hyperparameters_}
    if valid.get("N") == REQUIRED and "N" not in kwargs and dataset_size:
        kwargs["N"] = dataset_size
    if "batch_size" in valid and "batch_size" not in kwargs and batch_size:
        kwargs["batch_size"] = batch_size
    missing = [k for k, v in valid.items() if v == REQUIRED and k not in kwargs]
    if missing:
        raise ValueError(f"{name} needs {', '.join(missing)}")
    return entry.factory(params, **kwargs)


def parse_value(text: str):
    """'0.9' -> 0.9, '3' -> 3, 'true' -> True, 'none' -> None, '0.9,0.99' -> (0.9, 0.99);
    anything else stays a string."""
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t)
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_hyperparameters(pairs) -> dict:
    """['lr=0.1', 'betas=0.9,0.99'] -> {'lr': 0.1, 'betas': (0.9, 0.99)} (see parse_value);
    dashes in names become underscores. ValueError for an item without '='."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"expected NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out
