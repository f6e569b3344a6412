"""Neural-network building blocks: Module, Parameter, layers, initialisers, losses."""

from minidl.nn.module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential"]
