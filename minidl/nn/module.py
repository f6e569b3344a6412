"""Module, Parameter and Sequential: the containers every layer is built from.

A Module registers the Parameters, buffers (non-trained arrays such as running statistics) and
sub-Modules assigned to its attributes, in assignment order, so `named_parameters()` is stable
and `state_dict()` keys read like attribute paths ("0.weight", "block.bn.running_mean").
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from minidl import backend
from minidl.autograd import Tensor


class Parameter(Tensor):
    """A trainable Tensor (requires_grad=True).

    input_axes: which axes of the parameter index the layer's inputs: Dense weight (in, out) ->
        (0,); Conv2d weight (out, in, kh, kw) -> (1, 2, 3); biases -> (). Per-input algorithms
        (ADAS's step sizes) read this instead of guessing from shapes.
    """

    __slots__ = ("input_axes",)

    def __init__(self, data, input_axes: tuple = (), dtype=None, device=None):
        super().__init__(data, requires_grad=True, dtype=dtype, device=device)
        self.input_axes = tuple(input_axes)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """Returned by the hook registrations of Module; `remove()` unregisters the hook (again: a
    no-op). Also a context manager: `with layer.register_forward_hook(fn): ...` removes the
    hook on leaving the block."""

    _next_id = 0

    def __init__(self, hooks: "OrderedDict[int, object]"):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class Module:
    """Base class of every layer and model.

    Subclasses set Parameters, buffers and sub-Modules as attributes in __init__ and implement
    forward(). Calling the module runs its forward pre-hooks, forward, then its forward hooks
    (PyTorch's order and semantics, see register_forward_pre_hook). `training` switches
    Dropout and BatchNorm (and whatever a hook reads from it); `train()`/`eval()` set it on the
    whole tree.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        is_param, is_module = isinstance(value, Parameter), isinstance(value, Module)
        if is_param or is_module or name not in self._buffers:
            # a buffer given a new array (self.count += 1) stays a buffer
            for registry in (self._parameters, self._modules, self._buffers):
                registry.pop(name, None)
        if is_param:
            self._parameters[name] = value
        elif is_module:
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array) -> None:
        """Register a non-trained array (e.g. running mean) saved in state_dict."""
        self._buffers[name] = True
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:  # a replacement for the positional arguments
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:  # a replacement for the output
                out = result
        return out

    # ------------------------------------------------------------------ hooks
    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """Call `hook(module, args)` before every forward, `args` being the tuple of positional
        arguments (keyword arguments are not passed to hooks, as in PyTorch). A hook that
        returns something other than None replaces the arguments (a non-tuple becomes the only
        argument). Hooks run in registration order; returns a handle whose remove() undoes this.
        """
        return self._add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call `hook(module, args, output)` after every forward (`args`: the positional
        arguments forward received). A hook that returns something other than None replaces
        the output. Hooks run in registration order; returns a handle whose remove() undoes
        this."""
        return self._add_hook(self._forward_hooks, hook)

    @staticmethod
    def _add_hook(hooks: OrderedDict, hook) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(name, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order; shared parameters appear once."""
        seen = set()
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, object]]:
        for mod_name, m in self.named_modules():
            for name in m._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(m, name)

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> "Module":
        """Move every parameter and buffer to `device` in place; returns self."""
        backend.check_device(device)
        for m in self.modules():
            for p in m._parameters.values():
                p.data = backend.to_device(p.data, device)
                if p.grad is not None:
                    p.grad = backend.to_device(p.grad, device)
            for name in m._buffers:
                value = getattr(m, name)
                if value is not None:
                    object.__setattr__(m, name, backend.to_device(value, device))
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, object]":
        """Copies of every parameter's and buffer's array, keyed by dotted name."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = p.data.copy()
        for name, b in self.named_buffers():
            out[name] = b.copy() if hasattr(b, "copy") else b
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays from `state` into the parameters and buffers, in place.

        strict: every key must match (missing and unexpected keys are listed in the error).
        Shapes must always match; values are cast to each parameter's dtype and device.
        Every key and shape is checked before anything is copied, so a state that does not fit
        raises and leaves the module as it was.
        """
        own = dict(self.named_parameters())
        buffers = {}
        for mod_name, m in self.named_modules():
            for name in m._buffers:
                buffers[f"{mod_name}.{name}" if mod_name else name] = (m, name)
        missing = [k for k in list(own) + list(buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for key, value in state.items():
            if key in own:
                target, what = own[key], "parameter"
            elif key in buffers:
                target, what = getattr(*buffers[key]), "buffer"
            else:
                continue
            # a device array has .shape; np.shape would convert it to NumPy (CuPy refuses)
            shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
            if hasattr(target, "shape") and shape != tuple(target.shape):
                raise ValueError(
                    f"state_dict['{key}'] has shape {shape}, "
                    f"{what} has shape {tuple(target.shape)}"
                )
        for key, value in state.items():
            if key in own:
                p = own[key]
                xp = backend.xp_of(p.data)
                p.data[...] = xp.asarray(backend.to_device(value, p.device), dtype=p.dtype)
            elif key in buffers:
                m, name = buffers[key]
                old = getattr(m, name)
                if old is not None and hasattr(old, "shape"):
                    value = backend.to_device(np.asarray(value) if not hasattr(value, "shape")
                                              else value, backend.device_of(old))
                    value = value.astype(old.dtype, copy=True)
                object.__setattr__(m, name, value)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                child_repr = repr(child).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child_repr}")
            lines.append(")")
            return "\n".join(lines)
        return lines[0] + ")"


class Sequential(Module):
    """Modules applied one after another: Sequential(Dense(784, 256), ReLU(), Dense(256, 10))."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
