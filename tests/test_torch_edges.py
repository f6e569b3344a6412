"""Edge cases where PyTorch's documented gradients, dtypes or shapes are the reference."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import backend, ops
from minidl.autograd import Tensor
from minidl.gradcheck import gradcheck


def _t(values, device, requires_grad=True):
    return Tensor(backend.to_device(np.asarray(values, dtype=np.float64), device),
                  requires_grad=requires_grad)


def test_zero_base_has_zero_gradient_for_nonnegative_exponents(device):
    # d(0^y)/dy: 0^y is 0 for y > 0, so the one-sided derivative is 0 (torch masks a == 0,
    # y >= 0); y * log(0) would give -inf or nan
    for base in (0.0, _t([0.0, 0.0, 0.0], device, requires_grad=False)):
        y = _t([0.0, 1.0, 2.5], device)
        (base ** y).sum().backward()
        np.testing.assert_array_equal(backend.to_numpy(y.grad), [0.0, 0.0, 0.0])
    y = _t([-1.0], device)  # 0^y = inf for y < 0: no masking there
    (0.0 ** y).sum().backward()
    assert backend.to_numpy(y.grad)[0] == -np.inf
    # away from 0 the exponent gradient is still z * log(a)
    assert gradcheck(lambda a, y: a ** y, [_t([0.5, 2.0, 3.0], device), _t([0.0, 1.5, -1.0],
                                                                            device)])


def test_power_zero_has_zero_gradient_also_at_infinity(device):
    x = _t([np.inf, -np.inf, 0.0, 2.0], device)
    (x ** 0).sum().backward()  # d(x^0)/dx = 0 everywhere (a * 0 would give nan at +-inf)
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [0.0, 0.0, 0.0, 0.0])
    x = _t([np.inf, -np.inf], device)
    (x ** _t([0.0, 0.0], device, requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [0.0, 0.0])


def test_integer_tensor_to_a_float_power_gives_the_default_float_dtype(device):
    i = Tensor(backend.to_device(np.array([1, 4, 9]), device))
    assert (i ** 0.5).dtype == backend.get_default_dtype() == np.float32
    np.testing.assert_allclose(backend.to_numpy((i ** 0.5).data), [1.0, 2.0, 3.0])
    assert (2.0 ** i).dtype == np.float32
    assert (i ** 2).dtype == i.dtype  # integer powers stay integer, as torch
    assert (_t([2.0], device) ** 0.5).dtype == np.float64  # float tensors keep their dtype


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
@pytest.mark.parametrize("axis", [0, -1, (0,), None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_of_a_0d_tensor_accept_axis_0_and_minus_1(device, name, axis, keepdims):
    s = _t(2.5, device)
    out = getattr(s, name)(axis=axis, keepdims=keepdims)
    assert out.shape == ()  # as torch: a scalar reduced over dim 0 is the scalar
    assert out.item() == 2.5
    out.backward()
    assert backend.to_numpy(s.grad) == 1.0


@pytest.mark.parametrize("name, value", [("softmax", 1.0), ("log_softmax", 0.0)])
def test_softmax_of_a_0d_tensor(device, name, value):
    s = _t(2.5, device)
    for axis in (0, -1):
        assert getattr(s, name)(axis).item() == value


def test_0d_reduction_rejects_other_axes(device):
    with pytest.raises(ValueError, match="0-d"):
        ops.sum(_t(1.0, device), axis=1)
