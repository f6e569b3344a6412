"""Ready-made models for the CLI and the experiments: the MNIST MLP and a LeNet-style conv net."""

from __future__ import annotations

from minidl.nn import layers
from minidl.nn.module import Sequential

ACTIVATIONS = {"relu": layers.ReLU, "tanh": layers.Tanh, "sigmoid": layers.Sigmoid,
               "leaky_relu": layers.LeakyReLU}


def mlp(hidden=(256,), in_features: int = 784, classes: int = 10, activation: str = "relu",
        init: str = "torch") -> Sequential:
    """Multi-layer perceptron: Dense -> activation for each hidden size, then Dense to logits.

    mlp() is the 784-256-10 ReLU network of the ADAS MNIST experiment.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    hidden = [hidden] if isinstance(hidden, int) else list(hidden)
    if any(h <= 0 for h in hidden):
        raise ValueError(f"hidden sizes must be positive, got {hidden}")
    mods, width = [], in_features
    for h in hidden:
        mods += [layers.Dense(width, h, init=init), ACTIVATIONS[activation]()]
        width = h
    mods.append(layers.Dense(width, classes, init=init))
    return Sequential(*mods)


def lenet(classes: int = 10) -> Sequential:
    """LeNet-5-style conv net for 1x28x28 inputs (LeCun et al. 1998, with ReLU and max-pooling):
    conv 1->6 5x5 pad 2, pool 2 -> conv 6->16 5x5, pool 2 -> 400 -> 120 -> 84 -> classes."""
    from minidl.nn.conv import Conv2d, MaxPool2d  # noqa: PLC0415

    return Sequential(
        Conv2d(1, 6, 5, padding=2), layers.ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5), layers.ReLU(), MaxPool2d(2),
        layers.Flatten(),
        layers.Dense(400, 120), layers.ReLU(),
        layers.Dense(120, 84), layers.ReLU(),
        layers.Dense(84, classes),
    )


MODELS = {"mlp": mlp, "lenet": lenet}
