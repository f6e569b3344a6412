"""Ready-made models for the CLI and the experiments: the MNIST MLP and a LeNet-style conv net.

`MODELS` maps each name to its builder and the input layout it takes ('flat': one vector of
784 pixels per image; 'image': 1x28x28); the CLI's --model choices are its keys.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

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


def mlp_parameter_count(hidden, in_features: int = 784, classes: int = 10) -> int:
    """How many numbers mlp(hidden) holds, computed without building it (to refuse sizes that
    cannot fit in memory before allocating them)."""
    widths = [in_features, *([hidden] if isinstance(hidden, int) else hidden), classes]
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


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


class ModelEntry(NamedTuple):
    """A named model: its builder and the input layout it takes ('flat' or 'image')."""

    build: Callable
    inputs: str


MODELS = {"mlp": ModelEntry(mlp, "flat"), "lenet": ModelEntry(lenet, "image")}


def as_inputs(name: str, images):
    """Images (N, 28, 28) in the layout model `name` takes: (N, 784) or (N, 1, 28, 28)."""
    if MODELS[name].inputs == "flat":
        return images.reshape(len(images), -1)
    return images[:, None]
