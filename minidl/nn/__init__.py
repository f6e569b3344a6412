"""Neural-network building blocks: Module, Parameter, layers, initialisers, losses."""

from minidl.nn import functional, init
from minidl.nn.conv import AvgPool2d, Conv2d, MaxPool2d
from minidl.nn.extra import (
    ELU,
    GELU,
    BCELoss,
    BCEWithLogitsLoss,
    Hardtanh,
    L1Loss,
    LayerNorm,
    LogSigmoid,
    LogSoftmax,
    NLLLoss,
    ReLU6,
    SiLU,
    SmoothL1Loss,
    Softplus,
)
from minidl.nn.layers import (
    CrossEntropyLoss,
    Dense,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from minidl.nn.module import Module, Parameter, RemovableHandle, Sequential
from minidl.nn.norm import BatchNorm1d, BatchNorm2d, Dropout

__all__ = [
    "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
    "CrossEntropyLoss", "Dense", "Dropout", "ELU", "Flatten", "GELU", "Hardtanh", "Identity",
    "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "LogSigmoid",
    "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "NLLLoss", "Parameter", "ReLU", "ReLU6",
    "RemovableHandle", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softplus",
    "Tanh", "functional", "init",
]
