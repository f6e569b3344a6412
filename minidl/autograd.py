"""Autograd: Tensor, Function (a forward/backward pair), backward over a sorted graph, no_grad.

A `Tensor` wraps one array of the backend (numpy or cupy) in `.data`. Every differentiable
operation is a `Function` subclass whose `forward` takes raw arrays and whose `backward` returns
one gradient per input, already reduced to that input's shape. `Function.apply` runs the forward
pass and, when gradients are wanted, links the output to its inputs. `Tensor.backward()` sorts
that graph topologically (`graph_order`, an iterative post-order, so graphs of any depth work)
and runs the backward functions in reverse order, summing the gradients of a tensor used
several times before passing them on, and accumulating into `.grad` of the leaves.

`.grad` is a raw array (not a Tensor), so optimizers work on arrays without indirection.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from minidl import backend
from minidl.backend import device_of, to_device, to_numpy, xp_of
from minidl.tensor_methods import TensorMethods

_grad_enabled = True


# --------------------------------------------------------------------------- grad mode


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def _recreate_cm(self):
        # as a decorator, each call gets its own context (recursion must restore correctly)
        return _GradMode(self.enabled)

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


def no_grad() -> _GradMode:
    """Context manager and decorator: operations inside record no graph (evaluation, updates)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager and decorator: record a graph again inside a no_grad block."""
    return _GradMode(True)


# --------------------------------------------------------------------------- Function


class Function:
    """One differentiable operation: `forward` on arrays, `backward` returning input gradients.

    Subclasses implement::

        def forward(self, *arrays, **params) -> array
        def backward(self, grad_out) -> tuple of arrays (or None), one per positional input

    `forward` may keep what backward needs with `save_for_backward` or plain attributes;
    `self.needs_input_grad[i]` tells backward which gradients are wanted at all.
    Inputs that are Python scalars are passed to forward as they are and get no gradient.
    """

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    def forward(self, *args, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params) -> "Tensor":
        """Run forward on the inputs' arrays and, if any input requires grad, record the node."""
        fn = cls()
        args = []
        device = dtype = None
        requires_grad = False
        for x in inputs:
            if isinstance(x, Tensor):
                d = x.data
                dev = device_of(d)
                if device is None:
                    device = dev
                elif dev != device:
                    raise RuntimeError(
                        f"{cls.__name__}: inputs on different devices ({device} and {dev}); "
                        "move them with .to(device) first"
                    )
                dtype = _common_float_dtype(cls, dtype, d)
                requires_grad = requires_grad or x.requires_grad
                args.append(d)
            elif isinstance(x, np.generic):
                # a NumPy scalar would upcast float32 data (NEP 50); a Python scalar does not
                args.append(x.item())
            else:
                dtype = _common_float_dtype(cls, dtype, x)
                args.append(x)
        out = fn.forward(*args, **params)
        if isinstance(out, np.generic):  # NumPy reductions return scalars, not 0-d arrays
            out = np.asarray(out)
        requires_grad = requires_grad and _grad_enabled
        if requires_grad:
            fn.inputs = inputs
            fn.needs_input_grad = tuple(
                isinstance(x, Tensor) and x.requires_grad for x in inputs
            )
            fn.freed = False
            return Tensor._make(out, True, fn)
        return Tensor._make(out, False, None)


def _common_float_dtype(cls, dtype, array):
    """The floating dtype shared by a Function's inputs so far, `array` included: `dtype` (None
    before the first floating input), or array's own. Mixed float32/float64 inputs raise early
    rather than letting NumPy promote silently; non-floating arrays and scalars don't count."""
    own = getattr(array, "dtype", None)
    if own is None or own.kind != "f":
        return dtype
    if dtype is None:  # tested first: NumPy dtypes compare equal to None (as float64)
        return own
    if own == dtype:
        return dtype
    raise TypeError(f"{cls.__name__}: inputs have different dtypes ({dtype} and {own}); "
                    "convert one with .astype()")


def _free(fn: Function, hollow: dict) -> None:
    """Empty a node once its backward has run, keeping the shape of the graph (as PyTorch).

    Generic on purpose: forward may stash arrays in `saved` or in any attribute (masks, index
    arrays, softmax outputs), so every attribute goes. `inputs` would keep the input tensors,
    their arrays and everything computed before them alive; each input is replaced by a
    stand-in with its shape, dtype, device and producer but no values (a zero-strided view of
    one zero), so the graph can still be printed. Leaves that require a gradient are the
    user's parameters and stay themselves. `freed` makes a second backward raise clearly.
    """
    inputs = tuple(_hollow(x, hollow) for x in fn.inputs)
    vars(fn).clear()
    fn.inputs, fn.freed = inputs, True


_ZEROS: dict = {}  # (array type, dtype, shape) -> a read-only zero-strided view of one zero


def _empty_like(data):
    """A value-free array with data's shape, dtype and device: a zero-strided view of a single
    zero. Training repeats the same shapes every step, so the broadcast views are made once
    and each stand-in is a fresh view of the cached one (a distinct object per input)."""
    key = (type(data), data.dtype, data.shape)
    view = _ZEROS.get(key)
    if view is None:
        if len(_ZEROS) > 1024:  # shapes that keep changing: start over rather than grow
            _ZEROS.clear()
        xp = xp_of(data)
        view = _ZEROS[key] = xp.broadcast_to(xp.zeros((), dtype=data.dtype), data.shape)
    return view.view()


def _hollow(x, memo: dict):
    """x's value-free stand-in (one per object: a tensor used twice stays one node)."""
    if isinstance(x, Tensor):
        if x._ctx is None and x._requires_grad:
            return x
        data = x.data
    elif isinstance(x, np.ndarray) or backend.is_cupy_array(x):
        data = x  # a constant array input, e.g. class targets
    else:
        return x  # a number costs nothing
    # the memo holds x itself until this backward ends, so its id cannot be reused meanwhile
    # (a weak reference would do, but CuPy-like arrays need not support one)
    held, stand_in = memo.get(id(x), (None, None))
    if held is not x:
        stand_in = _empty_like(data)
        if isinstance(x, Tensor):
            stand_in = Tensor._make(stand_in, x._requires_grad, x._ctx)
        memo[id(x)] = (x, stand_in)
    return stand_in


def graph_order(tensor: "Tensor") -> list:
    """The tensors of the graph ending at `tensor`, each after all of its inputs.

    An iterative depth-first post-order (no recursion, so graphs of any depth work): a tensor
    is marked when it is expanded, its inputs are pushed (first argument on top, so inputs come
    in argument order), and it is emitted only after every one of them has been emitted.
    backward() runs the list in reverse, so every consumer of a tensor has added its gradient
    before that tensor passes the sum on. Marking tensors when they are pushed instead is
    wrong: in x * sigmoid(x), x is pushed as Mul's input, then reached again from Sigmoid and
    skipped there, so it is emitted before Sigmoid and Sigmoid's contribution arrives too late.
    The graph printer (minidl.graph) lists nodes in this same order.
    """
    order, expanded = [], set()
    stack = [(tensor, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in expanded:
            continue
        expanded.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for x in reversed(t._ctx.inputs):
                if isinstance(x, Tensor) and id(x) not in expanded:
                    stack.append((x, False))
    return order


# --------------------------------------------------------------------------- Tensor


def _as_array(data, dtype, device):
    """Convert user data to a backend array: Python floats get the default float dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_cupy_array(data) or isinstance(data, np.ndarray):
        arr = data
    else:
        arr = np.asarray(data)
        if dtype is None and arr.dtype.kind == "f":
            dtype = backend.get_default_dtype()
    if device is not None:
        arr = to_device(arr, device)
    if dtype is not None and arr.dtype != np.dtype(dtype):
        arr = arr.astype(dtype)
    return arr


class _Size(int):
    """An int (the number of elements, NumPy's `size`) that, when called, answers PyTorch's
    `size(dim=None)`: the shape, or the length of one dim. Both languages read naturally."""

    def __new__(cls, count: int, shape: tuple):
        self = super().__new__(cls, count)
        self.shape = shape
        return self

    def __call__(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]


class Tensor(TensorMethods):
    """An n-dimensional array with reverse-mode automatic differentiation.

    Tensor(data, requires_grad=False, dtype=None, device=None)

    data: a NumPy or CuPy array (kept without a copy), a Tensor, or Python numbers/lists
          (floating values get the default dtype, float32 unless changed).
    requires_grad: record operations on this tensor so that backward() fills `.grad`.
                   Only floating-point tensors can require gradients.
    dtype, device: convert on construction ('cpu' or 'cuda').

    Attributes: data (the array), grad (an array of the same shape, or None), requires_grad,
    and the properties dtype, shape, ndim, size, device.
    """

    __slots__ = ("data", "grad", "_requires_grad", "_ctx", "_retain", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None):
        self.data = _as_array(data, dtype, device)
        self.grad = None
        self._ctx = None
        self._retain = False
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data, requires_grad: bool, ctx) -> "Tensor":
        """Fast constructor for op outputs: no conversion, no checks."""
        t = object.__new__(cls)
        t.data, t.grad, t._requires_grad, t._ctx, t._retain = data, None, requires_grad, ctx, False
        return t

    # ------------------------------------------------------------------ properties
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        if not value and self._ctx is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use detach()")
        self._requires_grad = bool(value)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> "_Size":
        """NumPy's element count as an int; called, PyTorch's size(dim=None): the shape, or
        one dim's length (x.size(0) is the batch size)."""
        return _Size(self.data.size, self.data.shape)

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function that produced this tensor (None for leaves)."""
        return self._ctx

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(to_numpy(self.data), separator=", ", prefix="Tensor(")
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}, dtype={self.dtype}{extra}{grad})"

    # ------------------------------------------------------------------ conversion
    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._make(self.data, False, None)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (a copy from the GPU; the array itself on the CPU)."""
        return to_numpy(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return to_numpy(self.data).reshape(()).item()

    def tolist(self):
        return to_numpy(self.data).tolist()

    def to(self, device: str) -> "Tensor":
        """This tensor on `device` ('cpu' or 'cuda'); differentiable (gradients move back)."""
        backend.check_device(device)
        if device == self.device:
            return self
        from minidl.ops.shape import to_device_op

        return to_device_op(self, device)

    def astype(self, dtype) -> "Tensor":
        """A copy converted to `dtype` (differentiable between floating dtypes)."""
        from minidl.ops.elementwise import astype

        return astype(self, dtype)

    def retain_grad(self) -> "Tensor":
        """Keep `.grad` on this non-leaf tensor after backward (for inspection)."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        grad: the upstream gradient, needed unless self has one element (then it is 1).
        retain_graph: keep the graph so that backward can run through it again. Otherwise
                      every node is emptied as soon as its backward has run: its saved arrays
                      go, and its input tensors are replaced by value-free stand-ins, so the
                      graph behind `self` keeps its shape (minidl.graph can print it) but
                      holds no activations (a second backward raises).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs an explicit "
                    "gradient of the same shape: tensor.backward(grad)"
                )
            grad = xp_of(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if device_of(grad) != self.device:
                raise RuntimeError(f"gradient on {device_of(grad)}, tensor on {self.device}")
            grad = xp_of(self.data).asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"gradient shape {grad.shape} does not match tensor shape {self.shape}"
                )

        grads = {id(self): grad}
        given = set()  # arrays already stored in some .grad
        hollow = {}  # value-free stand-ins of the inputs of freed nodes
        order = graph_order(self)
        while order:
            # pop, not iterate: a tensor nobody else holds is released as soon as it is done
            t = order.pop()
            g = grads.pop(id(t), None)
            if g is None:
                continue
            fn = t._ctx
            if fn is None or t._retain:
                if t.grad is None:
                    # own the array: a backward may hand out broadcast views (zero strides;
                    # CuPy's flags have no `writeable` to tell), or one array to several
                    # inputs, and users may scale .grad in place
                    if id(g) in given or not (g.flags.c_contiguous and g.flags.owndata):
                        g = g.copy()
                    given.add(id(g))
                    t.grad = g
                else:
                    t.grad = t.grad + g
                if fn is None:
                    continue
            if fn.freed:
                raise RuntimeError(
                    "trying to backward through a graph whose saved arrays were already freed; "
                    "call backward(retain_graph=True) the first time if you need to go again"
                )
            in_grads = fn.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            inputs = fn.inputs
            if not retain_graph:
                _free(fn, hollow)
            for x, gx in zip(inputs, in_grads):
                if gx is None or not isinstance(x, Tensor) or not x._requires_grad:
                    continue
                key = id(x)
                prev = grads.get(key)
                grads[key] = gx if prev is None else prev + gx


def tensor(data, requires_grad: bool = False, dtype=None, device: str | None = None) -> Tensor:
    """Create a Tensor (same arguments as the Tensor constructor)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def _factory(fill):
    @functools.wraps(fill)
    def make(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        xp = backend.xp_for(device)
        arr = fill(xp, shape, dtype or backend.get_default_dtype())
        return Tensor(arr, requires_grad=requires_grad)

    return make


@_factory
def zeros(xp, shape, dtype):
    """zeros(*shape, dtype=None, device='cpu', requires_grad=False): a tensor of zeros."""
    return xp.zeros(shape, dtype=dtype)


@_factory
def ones(xp, shape, dtype):
    """ones(*shape, dtype=None, device='cpu', requires_grad=False): a tensor of ones."""
    return xp.ones(shape, dtype=dtype)


@_factory
def randn(xp, shape, dtype):
    """randn(*shape, ...): standard normal samples from minidl's seeded generator."""
    return backend.get_rng().standard_normal(shape, dtype, "cuda" if xp is not np else "cpu")


@_factory
def rand(xp, shape, dtype):
    """rand(*shape, ...): uniform samples in [0, 1) from minidl's seeded generator."""
    return backend.get_rng().random(shape, dtype, "cuda" if xp is not np else "cpu")


from minidl import ops  # noqa: E402,F401  (builds on Function and Tensor; TensorMethods calls it)
