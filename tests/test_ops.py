"""minidl.ops: every op gradient-checked in float64, and its forward pass compared with NumPy.

One table of cases (name, minidl function, NumPy reference, input makers) drives five checks:
  - gradcheck in float64 (central differences on a random upstream gradient);
  - forward against the NumPy/SciPy reference in float64 and float32, dtype preserved;
  - float32 inputs get float32 gradients of their own shape, close to the float64 ones;
  - non-contiguous inputs (strided and transposed views) give the same values and gradients;
  - backward(retain_graph=True) twice doubles the gradients (backward leaves saved arrays intact).
The references are written with NumPy/SciPy directly, never with minidl's helpers. Inputs of
kinked ops (abs, relu, clip, max, min, maximum) keep a margin from the kinks much larger than
gradcheck's step. The focused tests below the table pin ties, repeated indices, the ADAS-centred
linear gradient and float32 stability at +-1000 (error messages: test_op_errors.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special as sp

import minidl
from minidl import Tensor, backend, ops

# --------------------------------------------------------------------------- input makers
# Each maker is rng -> float64 array; a case's inputs are drawn from a generator seeded by its name.


def U(*shape, lo=-2.0, hi=2.0):
    """Uniform values (no kink nearby)."""
    return lambda rng: np.asarray(rng.uniform(lo, hi, shape))


def P(*shape):
    """Positive values in [0.5, 2]: log, sqrt, divisors, bases of x ** y."""
    return U(*shape, lo=0.5, hi=2.0)


def K(*shape, kinks=(0.0,)):
    """Uniform in [-2, 2] but at least 0.15 from every kink (abs, relu, clip bounds)."""
    def make(rng):
        x = np.asarray(rng.uniform(-2.0, 2.0, shape))
        for kink in kinks:
            x = np.where(np.abs(x - kink) < 0.15, kink + np.where(x >= kink, 0.25, -0.25), x)
        return x

    return make


def D(*shape):
    """Distinct values at least 0.2 apart: max/min reductions have one winner per slice."""
    n = int(np.prod(shape))
    return lambda rng: ((rng.permutation(n).reshape(shape) - n / 2) * 0.25
                        + rng.uniform(0, 0.05, shape))


def G(*shape, offset=0.0):
    """Values on the grid 0.5 Z + offset: G() and G(offset=0.25) are never within 0.25."""
    return lambda rng: np.asarray(rng.integers(-4, 4, shape) * 0.5 + offset)


def _const(t: Tensor, value):
    """A constant of a case as an array on t's device; floating constants take t's dtype."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(t.dtype)
    return backend.to_device(arr, t.device)


@dataclass
class Case:
    name: str
    fn: Callable  # minidl function of Tensors
    ref: Callable  # the same function of float64 NumPy arrays
    inputs: tuple  # makers
    check: tuple | None = None  # inputs gradcheck checks (default: all)

    def __repr__(self):
        return self.name


CASES: list[Case] = []


def case(name, fn, ref, *inputs, check=None):
    CASES.append(Case(name, fn, ref, inputs, check))


# --------------------------------------------------------------------------- elementwise
BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)),
             ((2, 3, 1), (3, 4)), ((1, 3), (2, 1, 1)), ((), (3,)), ((2, 3), ()), ((), ())]
for sa, sb in BROADCAST:
    tag = f"{sa}x{sb}".replace(" ", "")
    case(f"add{tag}", ops.add, np.add, U(*sa), U(*sb))
    case(f"sub{tag}", lambda a, b: a - b, np.subtract, U(*sa), U(*sb))
    case(f"mul{tag}", lambda a, b: a * b, np.multiply, U(*sa), U(*sb))
    case(f"div{tag}", lambda a, b: a / b, np.divide, U(*sa), P(*sb))
    case(f"pow_tt{tag}", lambda a, b: a**b, np.power, P(*sa), U(*sb))
    case(f"maximum{tag}", ops.maximum, np.maximum, G(*sa), G(*sb, offset=0.25))
    case(f"minimum{tag}", ops.minimum, np.minimum, G(*sa), G(*sb, offset=0.25))

for shape in [(3, 4), (5,), (), (2, 1, 3)]:
    s = str(shape).replace(" ", "")
    case(f"neg{s}", lambda x: -x, np.negative, U(*shape))
    case(f"exp{s}", ops.exp, np.exp, U(*shape))
    case(f"log{s}", lambda x: x.log(), np.log, P(*shape))
    case(f"sqrt{s}", ops.sqrt, np.sqrt, P(*shape))
    case(f"abs{s}", lambda x: abs(x), np.abs, K(*shape))
    case(f"relu{s}", ops.relu, lambda x: np.maximum(x, 0.0), K(*shape))
    case(f"leaky_relu{s}", lambda x: ops.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
         K(*shape))
    case(f"sigmoid{s}", ops.sigmoid, sp.expit, U(*shape, lo=-5, hi=5))
    case(f"tanh{s}", ops.tanh, np.tanh, U(*shape))
    case(f"clip{s}", lambda x: x.clip(-1.0, 1.0), lambda x: np.minimum(np.maximum(x, -1), 1),
         K(*shape, kinks=(-1.0, 1.0)))
    case(f"clip_min{s}", lambda x: ops.clip(x, min=-1.0), lambda x: np.maximum(x, -1.0),
         K(*shape, kinks=(-1.0,)))
    case(f"clip_max{s}", lambda x: ops.clip(x, max=0.5), lambda x: np.minimum(x, 0.5),
         K(*shape, kinks=(0.5,)))
    case(f"pow2{s}", lambda x: x**2, np.square, U(*shape))
    case(f"pow3_int{s}", lambda x: ops.pow(x, 3), lambda x: x * x * x, U(*shape))
    case(f"pow_half{s}", lambda x: x**0.5, np.sqrt, P(*shape))
    case(f"pow_minus1.5{s}", lambda x: x**-1.5, lambda x: 1 / (x * np.sqrt(x)), P(*shape))
    case(f"rpow2{s}", lambda x: 2.0**x, lambda x: np.exp(x * np.log(2.0)), U(*shape))
    case(f"rpow0.5{s}", lambda x: ops.pow(0.5, x), lambda x: np.exp(-x * np.log(2.0)), U(*shape))

case("scalar_ops", lambda x: (2.5 - x) * -1.5 + 3.0 / x + x / 4.0 + 1,
     lambda x: (2.5 - x) * -1.5 + 3.0 / x + x / 4.0 + 1, P(3, 4))
case("ndarray_on_the_left", lambda x: _const(x, [1.0, 2.0, 3.0]) * x + _const(x, [0.5, 0, 1]),
     lambda x: np.array([1.0, 2.0, 3.0]) * x + np.array([0.5, 0, 1]), U(2, 3))
COND = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
case("where(3,4)", lambda a, b: ops.where(_const(a, COND), a, b), lambda a, b: np.where(COND, a, b),
     U(3, 4), U(3, 4))
case("where_broadcast", lambda a, b: ops.where(_const(a, COND[:, :1]), a, b),
     lambda a, b: np.where(COND[:, :1], a, b), U(4), U(3, 4))
case("where_scalar_branch", lambda a: ops.where(_const(a, COND), a, 0.0),
     lambda a: np.where(COND, a, 0.0), U(3, 4))
case("where_bool_tensor", lambda a, b: ops.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b),
     K(3, 4), U(1, 4))

# --------------------------------------------------------------------------- reductions
REDUCE = [((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), (0, 2)),
          ((2, 3, 4), (-1, -3)), ((3, 1, 2), 1), ((3, 1, 2), (-2,)), ((5,), 0), ((), None)]
for shape, axis in REDUCE:
    for keep in (False, True):
        tag = f"{shape}_axis{axis}_keep{keep}".replace(" ", "")
        kw = {"axis": axis, "keepdims": keep}
        case(f"sum{tag}", lambda x, kw=kw: x.sum(**kw), lambda x, kw=kw: np.sum(x, **kw), U(*shape))
        case(f"mean{tag}", lambda x, kw=kw: ops.mean(x, **kw), lambda x, kw=kw: np.mean(x, **kw),
             U(*shape))
        case(f"max{tag}", lambda x, kw=kw: x.max(**kw), lambda x, kw=kw: np.max(x, **kw), D(*shape))
        case(f"min{tag}", lambda x, kw=kw: ops.min(x, **kw), lambda x, kw=kw: np.min(x, **kw),
             D(*shape))
        case(f"logsumexp{tag}", lambda x, kw=kw: x.logsumexp(**kw),
             lambda x, kw=kw: np.log(np.sum(np.exp(x), **kw)), U(*shape))

for shape, axis in [((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), 0), ((3, 1), -1),
                    ((4, 3), -2)]:
    tag = f"{shape}_axis{axis}".replace(" ", "")
    case(f"softmax{tag}", lambda x, a=axis: ops.softmax(x, a), lambda x, a=axis: sp.softmax(x, a),
         U(*shape))
    case(f"log_softmax{tag}", lambda x, a=axis: x.log_softmax(a),
         lambda x, a=axis: sp.log_softmax(x, a), U(*shape))

# --------------------------------------------------------------------------- shape ops
for shape, new in [((2, 3, 4), (6, -1)), ((2, 3, 4), (-1,)), ((6,), (2, 1, 3)), ((), (1, 1)),
                   ((1,), ()), ((3, 4), (4, 3))]:
    case(f"reshape{shape}->{new}".replace(" ", ""), lambda x, n=new: x.reshape(n),
         lambda x, n=new: x.reshape(n), U(*shape))
case("reshape_varargs", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, 3), U(3, 4))
case("flatten", lambda x: x.flatten(1), lambda x: x.reshape(2, 12), U(2, 3, 4))
for shape, axes in [((2, 3, 4), None), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (-1, 0, 1)),
                    ((3, 4), None), ((5,), None)]:
    case(f"transpose{shape}{axes}".replace(" ", ""), lambda x, a=axes: ops.transpose(x, a),
         lambda x, a=axes: np.transpose(x, a), U(*shape))
case("permute_varargs", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1),
     U(2, 3, 4))
case("T", lambda x: x.T, lambda x: x.T, U(3, 4))
case("swapaxes(0,-1)", lambda x: x.swapaxes(0, -1), lambda x: np.swapaxes(x, 0, -1), U(2, 3, 4))
case("swapaxes(1,0)", lambda x: ops.swapaxes(x, 1, 0), lambda x: x.T, U(3, 4))
for shape, new in [((3,), (2, 3)), ((3, 1), (2, 3, 4)), ((), (2, 2)), ((1, 4), (3, 4))]:
    case(f"broadcast_to{shape}->{new}".replace(" ", ""), lambda x, n=new: x.broadcast_to(n),
         lambda x, n=new: np.broadcast_to(x, n), U(*shape))

MASK = np.array([[True, False, True, False, False], [False, False, False, False, True],
                 [True, True, False, False, False], [False, True, False, True, True]])
ROWS = np.array([True, False, True, True])
INDEX = {  # name: index into a (4, 5) array
    "slice": np.s_[1:], "step": np.s_[:, ::2], "reverse_step": np.s_[::-1, 1:4:2],
    "negative_int": np.s_[-1], "ellipsis": np.s_[..., 1], "newaxis": np.s_[None, :, 1:3],
    "int_newaxis": np.s_[1, None], "negative_slice": np.s_[-2:, -3],
    "repeated_ints": [0, 0, 2, 0], "repeated_pairs": ([0, 0, 3, 0], [1, 1, 4, 1]),
    "int_matrix": [[0, 1], [1, 1]], "column_repeats": np.s_[:, [2, 2, 0]],
    "negative_ints": [3, -1, -1], "tuple_in_tuple": ((0, 0, 1),),
}
for name, index in INDEX.items():
    case(f"getitem_{name}", lambda x, i=index: x[i], lambda x, i=index: x[i], U(4, 5))
case("getitem_mask", lambda x: x[_const(x, MASK)], lambda x: x[MASK], U(4, 5))
case("getitem_row_mask", lambda x: x[_const(x, ROWS)], lambda x: x[ROWS], U(4, 5))
case("getitem_mask_tensor", lambda x: x[x > 0], lambda x: x[x > 0], K(4, 5))
case("getitem_index_array", lambda x: x[_const(x, np.array([2, 0, 2]))],
     lambda x: x[np.array([2, 0, 2])], U(4, 5))
case("getitem_3d", lambda x: x[1, ..., None, ::-2], lambda x: x[1, ..., None, ::-2], U(2, 3, 4))
case("getitem_0d", lambda x: x[None][()], lambda x: x[None][()], U())

for shapes, axis in [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1),
                     ([(2, 3), (2, 1), (2, 2)], -1), ([(3,)], 0), ([(2, 2, 1), (2, 2, 3)], -1)]:
    case(f"concatenate{shapes}axis{axis}".replace(" ", ""),
         lambda *xs, a=axis: ops.concatenate(xs, axis=a),
         lambda *xs, a=axis: np.concatenate(xs, axis=a), *[U(*s) for s in shapes])
for shapes, axis in [([(3,), (3,)], 0), ([(2, 3)] * 3, -1), ([(2, 3)] * 2, 1), ([()] * 2, 0)]:
    case(f"stack{shapes}axis{axis}".replace(" ", ""), lambda *xs, a=axis: ops.stack(xs, axis=a),
         lambda *xs, a=axis: np.stack(xs, axis=a), *[U(*s) for s in shapes])
for shape, width, value in [((2, 3), 1, 0.0), ((2, 3), ((1, 0), (0, 2)), 0.0),
                            ((2, 3), (1, 2), 0.0), ((3,), ((2, 1),), 1.5),
                            ((2, 2, 3), ((0, 0), (1, 1), (0, 1)), -1.0)]:
    case(f"pad{shape}{width}{value}".replace(" ", ""),
         lambda x, w=width, v=value: ops.pad(x, w, v),
         lambda x, w=width, v=value: np.pad(x, w, constant_values=v), U(*shape))

# --------------------------------------------------------------------------- linear algebra
MATMUL = [((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((3, 4), (4, 2)), ((2, 3, 4), (2, 4, 2)),
          ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)), ((1, 3, 4), (2, 4, 2)), ((4,), (2, 4, 3)),
          ((2, 3, 4), (4,)), ((2, 1, 2, 3), (3, 3, 2))]
for sa, sb in MATMUL:
    case(f"matmul{sa}@{sb}".replace(" ", ""), lambda a, b: a @ b, np.matmul, U(*sa), U(*sb))
case("matmul_function", ops.matmul, np.matmul, U(2, 3), U(3, 2))
case("rmatmul_ndarray", lambda b: _const(b, np.arange(6.0).reshape(2, 3)) @ b,
     lambda b: np.arange(6.0).reshape(2, 3) @ b, U(3, 2))
for sx in [(5, 3), (2, 2, 3), (3,)]:
    s = str(sx).replace(" ", "")
    case(f"linear{s}", ops.linear, lambda x, w, b: x @ w + b, U(*sx), U(3, 2), U(2))
    case(f"linear_nobias{s}", ops.linear, np.matmul, U(*sx), U(3, 2))

# --------------------------------------------------------------------------- losses
TARGET = np.array([0, 2, 1, 2])
SOFT = sp.softmax(np.random.default_rng(7).normal(size=(4, 3)), axis=1)
UNNORMALISED = np.abs(np.random.default_rng(8).normal(size=(4, 3)))  # rows do not sum to 1


def _ce_ref(z, y, reduction):
    """-sum_c y_nc (z_nc - logsumexp(z_n)), then the reduction; y one-hot for class indices."""
    y = np.eye(z.shape[1])[y] if y.ndim == 1 else y
    m = z.max(axis=1, keepdims=True)
    losses = -(y * (z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True)))).sum(axis=1)
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


for reduction in ("mean", "sum", "none"):
    for tname, target in [("int", TARGET), ("soft", SOFT), ("onehot", np.eye(3)[TARGET]),
                          ("unnormalised", UNNORMALISED)]:
        case(f"cross_entropy_{tname}_{reduction}",
             lambda z, t=target, r=reduction: ops.cross_entropy(z, _const(z, t), reduction=r),
             lambda z, t=target, r=reduction: _ce_ref(z, t, r), U(4, 3, lo=-3, hi=3))
    case(f"mse_{reduction}", lambda a, b, r=reduction: ops.mse_loss(a, b, reduction=r),
         lambda a, b, r=reduction: {"mean": np.mean, "sum": np.sum, "none": np.asarray}[r](
             (a - b) ** 2), U(3, 4), U(3, 4))
case("cross_entropy_target_tensor", lambda z: ops.cross_entropy(z, Tensor(_const(z, TARGET))),
     lambda z: _ce_ref(z, TARGET, "mean"), U(4, 3))

# --------------------------------------------------------------------------- compositions
case("mlp", lambda x, w1, b1, w2: ops.cross_entropy(ops.linear(ops.linear(x, w1, b1).tanh(), w2),
                                                    _const(x, TARGET)),
     lambda x, w1, b1, w2: _ce_ref(np.tanh(x @ w1 + b1) @ w2, TARGET, "mean"),
     U(4, 3), U(3, 4), U(4), U(4, 3))
case("exp_of_transposed", lambda x: ops.exp(x.T), lambda x: np.exp(x.T), U(3, 4))
case("add_sliced_transposed", lambda a, b: a[:, ::2] + b.T, lambda a, b: a[:, ::2] + b.T,
     U(3, 8), U(4, 3))
case("matmul_transposed_strided", lambda a, b: a.T @ b[::2], lambda a, b: a.T @ b[::2],
     U(4, 3), U(8, 2))
case("sum_of_transposed", lambda x: x.T.sum(axis=0), lambda x: x.T.sum(axis=0), U(3, 4))
case("softmax_of_sliced", lambda x: ops.softmax(x[:, 1::2], axis=0),
     lambda x: sp.softmax(x[:, 1::2], axis=0), U(3, 6))
case("reused_input", lambda x: x.exp() * x + x * x, lambda x: np.exp(x) * x + x * x, U(2, 3))

# --------------------------------------------------------------------------- table-driven tests


def _arrays(c: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(c.name.encode()))
    return [np.asarray(make(rng), dtype=np.float64) for make in c.inputs]


def _tensors(arrays, device, dtype=np.float64, requires_grad=True):
    return [Tensor(backend.to_device(a.astype(dtype), device), requires_grad=r)
            for a, r in zip(arrays, requires_grad if isinstance(requires_grad, list)
                            else [requires_grad] * len(arrays))]


def _upstream(out: Tensor, seed: int = 1):
    u = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    return backend.to_device(u, out.device)


def _forward_backward(c: Case, xs):
    out = c.fn(*xs)
    out.backward(_upstream(out))
    return out.numpy(), [backend.to_numpy(x.grad) for x in xs]


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_gradcheck(c, device):
    check = range(len(c.inputs)) if c.check is None else c.check
    flags = [i in check for i in range(len(c.inputs))]
    assert minidl.gradcheck(c.fn, _tensors(_arrays(c), device, requires_grad=flags))


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_forward_matches_numpy(c, device):
    for dtype, tol in [(np.float64, (1e-12, 1e-12)), (np.float32, (2e-5, 2e-6))]:
        arrays = [a.astype(dtype) for a in _arrays(c)]
        out = c.fn(*_tensors(arrays, device, dtype, requires_grad=False))
        expected = c.ref(*[a.astype(np.float64) for a in arrays])
        assert out.dtype == dtype and out.device == device
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.numpy(), expected, *tol, err_msg=str(dtype))


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_float32_gradients_stay_float32(c, device):
    arrays = _arrays(c)
    _, grads32 = _forward_backward(c, _tensors(arrays, device, np.float32))
    _, grads64 = _forward_backward(c, _tensors(arrays, device, np.float64))
    for a, g32, g64 in zip(arrays, grads32, grads64):
        assert g32.dtype == np.float32 and g32.shape == a.shape
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def _noncontiguous(a: np.ndarray, device: str, layout: str):
    """The values of `a` in a non-contiguous array on `device`: every other element of a
    bigger buffer ('strided'), or a transposed copy transposed back ('transposed', ndim >= 2)."""
    xp = backend.xp_for(device)
    if layout == "transposed" and a.ndim >= 2:
        view = xp.ascontiguousarray(xp.asarray(np.swapaxes(a, 0, -1))).swapaxes(0, -1)
        if not view.flags.c_contiguous:  # size-1 axes can make the transpose contiguous
            return view
    big = xp.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = xp.asarray(a)
    return big[..., 0]


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_noncontiguous_inputs(c, device):
    arrays = _arrays(c)
    if all(a.size <= 1 for a in arrays):
        pytest.skip("arrays of one element are always contiguous")
    out, grads = _forward_backward(c, _tensors(arrays, device))
    for layout in ("strided", "transposed"):
        views = [_noncontiguous(a, device, layout) for a in arrays]
        assert all(not v.flags.c_contiguous for v in views if v.size > 1)
        out_v, grads_v = _forward_backward(c, [Tensor(v, requires_grad=True) for v in views])
        np.testing.assert_allclose(out_v, out, rtol=1e-12, atol=1e-12, err_msg=layout)
        for g, gv in zip(grads, grads_v):
            np.testing.assert_allclose(gv, g, rtol=1e-12, atol=1e-12, err_msg=layout)


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_retain_graph_backward_twice_doubles(c, device):
    xs = _tensors(_arrays(c), device)
    out = c.fn(*xs)
    u = _upstream(out)
    out.backward(u, retain_graph=True)
    first = [backend.to_numpy(x.grad).copy() for x in xs]
    out.backward(u)
    for x, g in zip(xs, first):
        np.testing.assert_allclose(backend.to_numpy(x.grad), 2 * g, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- focused tests


def _t(values, device, dtype=np.float64, requires_grad=True):
    return Tensor(backend.to_device(np.asarray(values, dtype=dtype), device),
                  requires_grad=requires_grad)


def _np(a):
    return backend.to_numpy(a)


def test_getitem_repeated_indices_add_up_like_add_at(device):
    x = _t(np.arange(5.0), device)
    idx = [0, 2, 0, 0, 4]
    u = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    x[idx].backward(backend.to_device(u, device))
    expected = np.zeros(5)
    np.add.at(expected, idx, u)  # [1+3+4, 0, 2, 0, 5]
    np.testing.assert_array_equal(_np(x.grad), expected)
    np.testing.assert_array_equal(expected, [8.0, 0.0, 2.0, 0.0, 5.0])

    m = _t(np.zeros((3, 2)), device)
    m[[1, 1, 2], [0, 0, 1]].sum().backward()
    np.testing.assert_array_equal(_np(m.grad), [[0, 0], [2, 0], [0, 1]])


def test_getitem_boolean_mask_gradient(device):
    x = _t([[1.0, -2.0], [-3.0, 4.0]], device)
    (x[x > 0] * _t([10.0, 20.0], device, requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [[10.0, 0.0], [0.0, 20.0]])


@pytest.mark.parametrize("op, wins", [(ops.maximum, "larger"), (ops.minimum, "smaller")])
def test_maximum_minimum_ties_split_the_gradient_evenly(device, op, wins):
    a = _t([1.0, 2.0, 3.0, -1.0], device)
    b = _t([1.0, 0.0, 3.0, 5.0], device)
    out = op(a, b)
    out.backward(backend.to_device(np.array([2.0, 4.0, 6.0, 8.0]), device))
    # elements 0 and 2 tie: each input gets half, as torch.maximum / torch.minimum
    a_share = np.array([0.5, 1.0, 0.5, 0.0] if wins == "larger" else [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(_np(a.grad), np.array([2.0, 4.0, 6.0, 8.0]) * a_share)
    np.testing.assert_array_equal(_np(b.grad), np.array([2.0, 4.0, 6.0, 8.0]) * (1 - a_share))

    x = _t([0.0, 1.0, -1.0], device)
    op(x, 0.0).sum().backward()  # tie with a Python scalar at x = 0
    np.testing.assert_array_equal(_np(x.grad), [0.5, 1.0, 0.0] if wins == "larger" else [0.5, 0, 1])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_reduction_ties_share_the_gradient(device, name):
    sign = 1.0 if name == "max" else -1.0
    x = _t(sign * np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), device)
    getattr(x, name)(axis=1).backward(backend.to_device(np.array([1.0, 6.0]), device))
    np.testing.assert_allclose(_np(x.grad), [[0, 0.5, 0.5], [2.0, 2.0, 2.0]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("x_shape", [(6, 3), (2, 3, 3)])
def test_linear_center_gives_weight_gradient_of_centred_inputs(device, x_shape):
    """ADAS's correction (minidl.optim.input_offsets) applied to the pure op's gradients is
    the weight gradient of centred inputs; the op's own gradients are the plain ones."""
    from minidl.optim.input_offsets import centred_weight_grad

    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=(3, 2)), rng.normal(size=2)
    center, g = rng.normal(size=3), rng.normal(size=x_shape[:-1] + (2,))
    tx, tw, tb = _t(x, device), _t(w, device), _t(b, device)
    out = ops.linear(tx, tw, tb)
    out.backward(backend.to_device(g, device))
    x2, g2 = x.reshape(-1, 3), g.reshape(-1, 2)
    np.testing.assert_allclose(out.numpy(), x @ w + b, rtol=1e-13)  # forward unchanged
    centred = centred_weight_grad((0,), tw.grad, tb.grad, backend.to_device(center, device))
    np.testing.assert_allclose(_np(centred), (x2 - center).T @ g2, rtol=1e-12)
    np.testing.assert_allclose(_np(tw.grad), x2.T @ g2, rtol=1e-12)
    np.testing.assert_allclose(_np(tb.grad), g2.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(_np(tx.grad), g @ w.T, rtol=1e-12)


def test_cross_entropy_class_indices_equal_one_hot_targets(device):
    z = np.random.default_rng(4).normal(size=(5, 4))
    t = np.array([3, 0, 1, 1, 2])
    za, zb = _t(z, device), _t(z, device)
    la, lb = ops.cross_entropy(za, t), ops.cross_entropy(zb, np.eye(4)[t])
    la.backward()
    lb.backward()
    assert la.item() == pytest.approx(lb.item(), rel=1e-14)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_np(za.grad), (p - np.eye(4)[t]) / 5, rtol=1e-12)
    np.testing.assert_allclose(_np(zb.grad), _np(za.grad), rtol=1e-12)


def test_leaky_relu_default_slope_and_sigmoid_tanh_values(device):
    x = _t([-2.0, 3.0], device, requires_grad=False)
    np.testing.assert_allclose(ops.leaky_relu(x).numpy(), [-0.02, 3.0])
    np.testing.assert_allclose(x.sigmoid().numpy(), 1 / (1 + np.exp([2.0, -3.0])), rtol=1e-15)


# float32 stability: exp overflows past ~88 in float32, so every op must shift first
LOGITS = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0]])


def _f32(values, device, requires_grad=True):
    return _t(values, device, np.float32, requires_grad)


def test_softmax_family_is_stable_in_float32(device):
    lse = np.array([1000.0, -1000.0 + np.log(3.0), 1000.0 + np.log(2.0 + np.exp(-1.0))])
    checks = [
        (lambda z: ops.softmax(z, axis=1), np.exp(LOGITS - lse[:, None])),
        (lambda z: ops.log_softmax(z, axis=1), LOGITS - lse[:, None]),
        (lambda z: ops.logsumexp(z, axis=1), lse),
        (lambda z: ops.logsumexp(z.T, axis=0, keepdims=True), lse[None, :]),
        (lambda z: ops.cross_entropy(z, np.array([1, 0, 2]), reduction="none"),
         lse - LOGITS[[0, 1, 2], [1, 0, 2]]),
        (lambda z: ops.cross_entropy(z, np.eye(3, dtype=np.float32)[[0, 1, 2]]),
         np.mean(lse - np.diag(LOGITS))),
    ]
    for fn, expected in checks:
        z = _f32(LOGITS, device)
        out = fn(z)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)
        out.backward(backend.to_device(np.ones(out.shape, np.float32), device))
        assert np.isfinite(_np(z.grad)).all()


def test_sigmoid_is_stable_and_accurate_in_float32(device):
    values = np.array([1000.0, -1000.0, 20.0, -20.0, -10.0, 0.0])
    x = _f32(values, device)
    out = ops.sigmoid(x)
    exact = sp.expit(values)
    assert out.dtype == np.float32
    # relative accuracy in the tail: sigmoid(-20) = 2.06e-9 must not round to 0
    np.testing.assert_allclose(out.numpy(), exact, rtol=1e-6, atol=0)
    out.sum().backward()
    # z (1 - z) from the float32 output: 1 - z cancels for z ~ 1, hence the absolute tolerance
    np.testing.assert_allclose(_np(x.grad), exact * (1 - exact), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", [lambda x: x * 2.5, lambda x: 2.5 * x, lambda x: x + 1,
                                lambda x: x / 3, lambda x: 1.0 - x, lambda x: x**2,
                                lambda x: 2.0**x, lambda x: x * np.float64(2.0),
                                lambda x: np.float64(2.0) * x, lambda x: ops.maximum(x, 0.5),
                                lambda x: ops.where(x > 0, x, 0.0), lambda x: x.clip(-1.0, 1.0),
                                lambda x: ops.pad(x, 1, 2.0), lambda x: ops.leaky_relu(x, 0.2)],
                         ids=["mul", "rmul", "add_int", "div", "rsub", "pow", "rpow",
                              "mul_np_float64", "rmul_np_float64", "maximum", "where", "clip",
                              "pad", "leaky_relu"])
def test_python_scalars_keep_float32(device, fn):
    x = _f32([0.5, -1.5, 2.0], device)
    out = fn(x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_astype_sends_gradients_back_in_the_source_dtype(device):
    x = _f32([1.0, 2.0], device)
    y = x.astype(np.float64)
    assert y.dtype == np.float64 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(_np(x.grad), [2.0, 4.0])
    i = ops.astype(x, np.int64)  # integer results carry no gradient
    assert i.dtype == np.int64 and not i.requires_grad


def test_numpy_integer_axis_is_accepted(device):
    x = _t(np.arange(6.0).reshape(2, 3), device)
    np.testing.assert_array_equal(x.sum(axis=np.int64(1)).numpy(), [3.0, 12.0])
    np.testing.assert_array_equal(ops.max(x, axis=(np.int64(0),)).numpy(), [3.0, 4.0, 5.0])


def test_pow_zero_exponent_has_zero_gradient_at_zero(device):
    """d(a^0)/da = 0 everywhere; b * a^(b-1) alone is 0 * inf = nan at a = 0 (torch gives 0)."""
    x = _t([0.0, 2.0], device)
    (x**0).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [0.0, 0.0])
    a = _t([0.0, 0.0, 3.0], device)
    b = _t([0.0, 2.0, 0.0], device)
    with np.errstate(divide="ignore", invalid="ignore"):
        (a**b).sum().backward()
    np.testing.assert_array_equal(_np(a.grad), [0.0, 0.0, 0.0])   # 2 * 0^1 = 0 in the middle
