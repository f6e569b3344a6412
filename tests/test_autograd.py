"""minidl.autograd: Tensor, Function, backward over the graph, no_grad / enable_grad.

Every expected gradient is written out by hand from the chain rule in the test itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl import Function, Tensor, backend, ops


def _t(values, device, dtype=np.float64, requires_grad=True):
    return Tensor(backend.to_device(np.asarray(values, dtype=dtype), device),
                  requires_grad=requires_grad)


def _np(a):
    return backend.to_numpy(a)


def _dev(values, device, dtype=np.float64):
    return backend.to_device(np.asarray(values, dtype=dtype), device)


# --------------------------------------------------------------------------- graph shapes


def test_diamond_graph_accumulates_both_paths(device):
    x = _t([0.5, -1.0, 2.0], device)
    a = x * 3.0  # da/dx = 3
    b = x.exp()  # db/dx = exp(x)
    (a + b).sum().backward()
    np.testing.assert_allclose(_np(x.grad), 3.0 + np.exp([0.5, -1.0, 2.0]), rtol=1e-15)


def test_tensor_used_twice_in_one_op(device):
    x = _t([1.5, -2.0], device)
    (x * x).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [3.0, -4.0])  # 2 x
    y = _t([1.5, -2.0], device)
    (y + y).sum().backward()
    np.testing.assert_array_equal(_np(y.grad), [2.0, 2.0])


def test_shared_subexpression_is_backpropagated_once(device):
    x = _t([2.0], device)
    h = x * x  # h = x^2, used by three consumers
    y = h * h + h + h  # x^4 + 2 x^2: dy/dx = 4 x^3 + 4 x = 40
    y.sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [40.0])


def test_gradients_accumulate_across_backward_calls(device):
    x = _t([1.0, 2.0], device)
    (x * 3.0).sum().backward()
    first = x.grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [3.0 + 2.0, 3.0 + 4.0])
    np.testing.assert_array_equal(_np(first), [3.0, 3.0])  # accumulation made a new array
    x.zero_grad()
    assert x.grad is None


def test_accumulation_never_writes_into_a_shared_gradient(device):
    # x.grad and y.grad may alias the upstream array; accumulating must not modify it
    x, y = _t([1.0, 2.0], device), _t([3.0, 4.0], device)
    u = _dev([1.0, 1.0], device)
    (x + y).backward(u)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(_np(u), [1.0, 1.0])
    np.testing.assert_array_equal(_np(y.grad), [1.0, 1.0])
    np.testing.assert_array_equal(_np(x.grad), [3.0, 3.0])


def test_retain_graph_allows_a_second_backward(device):
    x = _t([1.0, -3.0], device)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(_np(x.grad), 2 * 3 * np.array([1.0, 9.0]))  # twice 3 x^2


def test_second_backward_without_retain_graph_raises_clearly(device):
    x = _t([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    np.testing.assert_array_equal(_np(x.grad), [2.0, 4.0])  # first result untouched


def test_retain_grad_keeps_the_gradient_of_a_non_leaf(device):
    x = _t([1.0, 2.0], device)
    h = (x * 2.0).retain_grad()
    k = h + 1.0  # not retained
    (k * k).sum().backward()
    np.testing.assert_array_equal(_np(h.grad), 2 * (np.array([2.0, 4.0]) + 1))  # 2 (h + 1)
    np.testing.assert_array_equal(_np(x.grad), 2 * 2 * (np.array([2.0, 4.0]) + 1))
    assert k.grad is None
    assert not h.is_leaf and x.is_leaf


def test_backward_with_explicit_gradient_is_a_vector_jacobian_product(device):
    x = _t([[1.0, 2.0], [3.0, 4.0]], device)
    u = np.array([[1.0, -1.0], [0.5, 2.0]])
    (x * x).backward(_dev(u, device))
    np.testing.assert_array_equal(_np(x.grad), u * 2 * np.array([[1.0, 2.0], [3.0, 4.0]]))
    z = _t([1.0, 2.0], device)
    (z * 3.0).backward(Tensor(_dev([1.0, 10.0], device)))  # a Tensor gradient works too
    np.testing.assert_array_equal(_np(z.grad), [3.0, 30.0])


def test_one_element_non_scalar_needs_no_explicit_gradient(device):
    x = _t([[2.0]], device)
    (x * 5.0).backward()
    np.testing.assert_array_equal(_np(x.grad), [[5.0]])


def test_leaf_backward_and_inputs_without_grad(device):
    x, c = _t([1.0, 2.0], device), _t([5.0, 7.0], device, requires_grad=False)
    x.backward(_dev([3.0, 4.0], device))
    np.testing.assert_array_equal(_np(x.grad), [3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(_np(x.grad), [8.0, 11.0])


def test_chain_of_ten_thousand_ops(device):
    x = _t([1.0, 2.0], device)
    y = x
    for _ in range(5000):  # 10,000 nodes: y <- y * c + d
        y = y * 1.0001 + 0.001
    y.sum().backward()  # a recursive traversal would overflow Python's stack here
    np.testing.assert_allclose(_np(x.grad), [1.0001**5000] * 2, rtol=1e-12)
    del y  # freeing a deep graph must not crash either


# --------------------------------------------------------------------------- grad mode


def test_no_grad_builds_no_graph(device):
    x = _t([1.0, 2.0], device)
    with minidl.no_grad():
        assert not minidl.is_grad_enabled()
        y = x * 2.0 + 1.0
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), [3.0, 5.0])
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_no_grad_as_decorator(device):
    x = _t([1.0], device)

    @minidl.no_grad()
    def step(t):
        assert not minidl.is_grad_enabled()
        return t * 2.0

    y = step(x)
    assert not y.requires_grad and y.grad_fn is None
    assert minidl.is_grad_enabled()


def test_no_grad_nests_with_enable_grad(device):
    x = _t([3.0], device)
    with minidl.no_grad():
        with minidl.enable_grad():
            y = x * x
            assert minidl.is_grad_enabled()
        z = x * x
        assert not minidl.is_grad_enabled()
        with minidl.no_grad():
            pass
        assert not minidl.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad
    y.backward()
    np.testing.assert_array_equal(_np(x.grad), [6.0])

    @minidl.enable_grad()
    def with_grad(t):
        return t * 1.0

    with minidl.no_grad():
        assert with_grad(x).requires_grad


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(KeyError), minidl.no_grad():
        raise KeyError("boom")
    assert minidl.is_grad_enabled()


def test_no_grad_decorator_survives_recursion():
    @minidl.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    with minidl.enable_grad():  # restores grad mode on exit, so the bug cannot leak out
        depth(2)
        assert minidl.is_grad_enabled()


def test_leaf_grads_are_owned_writable_arrays():
    x = minidl.Tensor(np.ones((2, 3)), requires_grad=True)
    y = minidl.Tensor(np.ones((2, 3)), requires_grad=True)
    (x + y).sum().backward()  # Sum hands out a broadcast view, Add the same array twice
    x.grad *= 2  # in-place scaling (gradient clipping) must be possible ...
    assert np.array_equal(y.grad, np.ones((2, 3)))  # ... and must not touch another leaf
    assert np.array_equal(x.grad, 2 * np.ones((2, 3)))


def test_reductions_give_array_data_not_numpy_scalars():
    s = minidl.Tensor(np.arange(3.0)).sum()
    assert isinstance(s.data, np.ndarray) and s.data.shape == ()


# --------------------------------------------------------------------------- Tensor basics


def test_detach_shares_data_and_stops_gradients(device):
    x = _t([2.0, 3.0], device)
    d = x.detach()
    assert d.data is x.data
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    (d * x).sum().backward()  # only the x path counts: gradient d = x
    np.testing.assert_array_equal(_np(x.grad), [2.0, 3.0])
    assert (x * 2.0).detach().grad_fn is None


def test_conversions(device):
    x = _t([[1.5, 2.0], [3.0, 4.0]], device, np.float32)
    assert x.sum().item() == 10.5 and isinstance(x.sum().item(), float)
    assert _t([7], device, np.int64, requires_grad=False).item() == 7
    with pytest.raises(ValueError, match="one element"):
        x.item()
    arr = x.numpy()
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, [[1.5, 2.0], [3.0, 4.0]])
    assert x.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    on_cpu = x.to("cpu")
    assert on_cpu.device == "cpu"
    np.testing.assert_array_equal(on_cpu.numpy(), arr)
    assert x.to(device) is x
    with pytest.raises(ValueError, match="valid devices"):
        x.to("tpu")


def test_numpy_returns_the_array_itself_on_cpu():
    data = np.array([1.0, 2.0])
    assert Tensor(data).numpy() is data
    assert Tensor(data).data is data  # no copy on construction


def test_to_moves_and_gradients_come_back(device):
    if device == "cpu":
        pytest.skip("moving between devices needs a GPU")
    x = _t([1.0, 2.0], "cpu")
    y = x.to("cuda")
    assert y.device == "cuda" and y.requires_grad
    (y * y).sum().backward()
    assert x.grad is not None and backend.device_of(x.grad) == "cpu"
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_properties_and_repr(device):
    x = _t(np.zeros((2, 3)), device, np.float32)
    assert (x.shape, x.ndim, x.size, len(x), x.dtype, x.device) == ((2, 3), 2, 6, 2, np.float32,
                                                                    device)
    assert "requires_grad=True" in repr(x) and "float32" in repr(x)


def test_construction_dtypes_and_devices(device):
    t = Tensor([1.0, 2.0], device=device)
    assert t.dtype == np.float32 and t.device == device  # Python floats: the default dtype
    assert Tensor([1, 2], device=device).dtype == np.int64
    assert Tensor(_dev([0.0, 1.0], device)).dtype == np.float64  # arrays keep theirs
    assert Tensor([1, 2], dtype=np.float64, device=device).dtype == np.float64
    with minidl.default_dtype("float64"):
        assert Tensor([1.0], device=device).dtype == np.float64
    assert minidl.tensor([1.0], requires_grad=True, device=device).requires_grad
    np.testing.assert_array_equal(Tensor(t).numpy(), [1.0, 2.0])


@pytest.mark.parametrize("factory", [minidl.zeros, minidl.ones, minidl.randn, minidl.rand])
def test_factories(device, factory):
    a = factory(2, 3, device=device)
    b = factory((2, 3), dtype=np.float64, device=device, requires_grad=True)
    assert a.shape == b.shape == (2, 3) and a.device == b.device == device
    assert a.dtype == np.float32 and b.dtype == np.float64 and b.requires_grad
    if factory is minidl.zeros:
        assert not _np(a.data).any()
    if factory is minidl.ones:
        assert (_np(a.data) == 1).all()
    if factory is minidl.rand:
        assert ((_np(a.data) >= 0) & (_np(a.data) < 1)).all()


def test_comparisons_give_boolean_tensors_without_grad(device):
    x, y = _t([1.0, 2.0, 3.0], device), _t([2.0, 2.0, 2.0], device)
    for result, expected in [(x < y, [1, 0, 0]), (x <= y, [1, 1, 0]), (x > 2.0, [0, 0, 1]),
                             (x >= y, [0, 1, 1]), (x == y, [0, 1, 0]), (x != y, [1, 0, 1])]:
        assert result.dtype == bool and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), np.array(expected, dtype=bool))
    assert bool(_t([1.0], device) > 0.5)
    assert len({x, y}) == 2  # hashable by identity


def test_argmax_argmin_flatten_and_reflected_operators(device):
    x = _t([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], device)
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [1, 0])
    np.testing.assert_array_equal(x.argmin().numpy(), 4)
    assert x.flatten().shape == (6,)
    y = 10.0 - x / 2.0
    np.testing.assert_array_equal(y.numpy(), 10.0 - np.array([[1.0, 5, 2], [7, 0, 3]]) / 2)
    m = _dev(np.eye(2), device) @ x  # ndarray @ Tensor defers to Tensor.__rmatmul__
    assert isinstance(m, Tensor) and m.requires_grad


# --------------------------------------------------------------------------- bad inputs


def test_backward_on_non_scalar_needs_a_gradient(device):
    y = _t([1.0, 2.0], device) * 2.0
    with pytest.raises(RuntimeError, match=r"\(2,\)"):
        y.backward()


def test_backward_gradient_of_wrong_shape_raises(device):
    y = _t([[1.0, 2.0]], device) * 2.0
    with pytest.raises(ValueError) as info:
        y.backward(_dev([1.0, 2.0], device))
    assert "(2,)" in str(info.value) and "(1, 2)" in str(info.value)


def test_backward_on_tensor_without_grad_raises(device):
    with pytest.raises(RuntimeError, match="does not require grad"):
        _t([1.0], device, requires_grad=False).backward()


def test_integer_tensors_refuse_requires_grad(device):
    with pytest.raises(TypeError, match="int64"):
        Tensor(_dev([1, 2], device, np.int64), requires_grad=True)
    t = Tensor(_dev([1, 2], device, np.int32))
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad = True
    with pytest.raises(RuntimeError, match="leaf"):
        (_t([1.0], device) * 2.0).requires_grad = False


@pytest.mark.parametrize("call", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: b - a, lambda a, b: a @ b,
    lambda a, b: ops.linear(a, b), lambda a, b: ops.concatenate([a, b]),
    lambda a, b: ops.where(a > 0, a, b), lambda a, b: ops.mse_loss(a, b),
], ids=["add", "mul", "sub", "matmul", "linear", "concatenate", "where", "mse_loss"])
def test_mixing_float_dtypes_raises_type_error_naming_both(device, call):
    a = _t(np.ones((2, 2)), device, np.float32)
    b = _t(np.ones((2, 2)), device, np.float64)
    with pytest.raises(TypeError) as info:
        call(a, b)
    assert "float32" in str(info.value) and "float64" in str(info.value)


def test_mixing_devices_raises(device):
    if device == "cpu":
        pytest.skip("mixing devices needs a GPU")
    a, b = _t([1.0, 2.0], "cpu"), _t([1.0, 2.0], device)
    for call in (lambda: a + b, lambda: b * a, lambda: ops.matmul(b, a)):
        with pytest.raises(RuntimeError) as info:
            call()
        assert "cpu" in str(info.value) and "cuda" in str(info.value)
    y = b * 2.0
    with pytest.raises(RuntimeError):
        y.backward(np.ones(2))  # a gradient on the wrong device


# --------------------------------------------------------------------------- Function


class _ScaledProduct(Function):
    """z = a * b * k (k a keyword parameter); records which gradients backward was asked for."""

    def forward(self, a, b, k=1.0):
        self.save_for_backward(a, b)
        self.k = k
        return a * b * k

    def backward(self, g):
        a, b = self.saved
        _ScaledProduct.asked = self.needs_input_grad
        return g * b * self.k, g * a * self.k


def test_custom_function_and_needs_input_grad(device):
    x, c = _t([2.0, 3.0], device), _t([5.0, 7.0], device, requires_grad=False)
    y = _ScaledProduct.apply(x, c, k=2.0)
    assert isinstance(y.grad_fn, _ScaledProduct) and y.requires_grad
    y.sum().backward()
    assert _ScaledProduct.asked == (True, False)
    np.testing.assert_array_equal(_np(x.grad), [10.0, 14.0])
    assert c.grad is None


def test_function_single_gradient_and_python_scalar_inputs(device):
    class Twice(Function):
        def forward(self, a, s):
            self.s = s
            return a * 2.0 * s

        def backward(self, g):
            return g * 2.0 * self.s  # one array, not a tuple: the scalar needs no gradient

    x = _t([1.0, 4.0], device)
    y = Twice.apply(x, np.float64(3.0))  # a NumPy scalar arrives as a Python float
    y.sum().backward()
    np.testing.assert_array_equal(_np(x.grad), [6.0, 6.0])
    assert Twice.apply(x.detach(), 1.0).grad_fn is None  # no input needs grad: no node
