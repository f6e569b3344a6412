"""Neural-network building blocks: Module, Parameter, layers, initialisers, losses."""

from minidl.nn import init
from minidl.nn.conv import AvgPool2d, Conv2d, MaxPool2d
from minidl.nn.layers import (
    CrossEntropyLoss,
    Dense,
    Flatten,
    Identity,
    LeakyReLU,
    MSELoss,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from minidl.nn.module import Module, Parameter, RemovableHandle, Sequential
from minidl.nn.norm import BatchNorm1d, BatchNorm2d, Dropout

Linear = Dense  # PyTorch's name for the same layer

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dense", "Dropout",
    "Flatten", "Identity", "LeakyReLU", "Linear", "MSELoss",
    "MaxPool2d", "Module", "Parameter", "ReLU", "RemovableHandle", "Sequential", "Sigmoid",
    "Softmax", "Tanh", "init",
]
