"""minidl.gradcheck: passes on correct gradients, fails loudly and precisely on wrong ones."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minidl
from minidl import Function, GradcheckError, Tensor, backend, gradcheck, ops


def _t(values, device, dtype=np.float64, requires_grad=True):
    return Tensor(backend.to_device(np.asarray(values, dtype=dtype), device),
                  requires_grad=requires_grad)


class _Product(Function):
    """z = a * b, with backward's gradient for b scaled by `factor` at flat element `bad`."""

    bad, factor = None, 1.0

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        gb = g * a
        if self.bad is not None:
            gb = gb.copy()
            gb.reshape(-1)[self.bad] *= self.factor
        return g * b, gb


class _WrongAt(_Product):
    bad, factor = 5, 1.5  # element (1, 2) of a (2, 3) input


class _SlightlyWrong(_Product):
    bad, factor = 0, 1.001  # 0.1 % off: above gradcheck's rtol of 1e-4


class _Missing(Function):
    """z = a * b whose backward forgets b."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        _, b = self.saved
        return g * b, None


def _pair(device, dtype=np.float64):
    rng = np.random.default_rng(0)
    return [_t(rng.uniform(0.5, 2, (2, 3)), device, dtype), _t(rng.uniform(0.5, 2, (2, 3)),
                                                                device, dtype)]


def test_passes_on_correct_ops(device):
    assert gradcheck(_Product.apply, _pair(device)) is True
    assert gradcheck(lambda a, b: (a * b).exp().sum(axis=0), _pair(device))
    assert gradcheck(lambda a: ops.softmax(a, axis=1), _pair(device)[:1])
    x = _t(2.0, device)  # 0-d input and output
    assert gradcheck(lambda t: t * t * t, [x])


def test_fails_naming_input_element_and_both_values(device):
    with pytest.raises(GradcheckError) as info:
        gradcheck(_WrongAt.apply, _pair(device))
    msg = str(info.value)
    assert "input 1" in msg and "(1, 2)" in msg, msg  # plain ints, not np.int64(1)
    match = re.search(r"analytic (\S+), numeric (\S+)", msg)
    assert match, msg
    analytic, numeric = float(match[1].rstrip(",")), float(match[2].rstrip(","))
    assert abs(numeric) > 1e-3
    assert analytic == pytest.approx(1.5 * numeric, rel=1e-6)  # the planted error, found


def test_fails_on_a_gradient_off_by_a_tenth_of_a_percent(device):
    with pytest.raises(GradcheckError, match=r"input 1 .*element \(0, 0\)"):
        gradcheck(_SlightlyWrong.apply, _pair(device))


def test_fails_on_a_missing_gradient(device):
    with pytest.raises(GradcheckError, match=r"input 1.*analytic 0,"):
        gradcheck(_Missing.apply, _pair(device))


def test_is_an_assertion_error_and_can_return_false(device):
    assert issubclass(GradcheckError, AssertionError)
    assert gradcheck(_WrongAt.apply, _pair(device), raise_exception=False) is False


def test_checks_only_inputs_that_require_grad(device):
    a, b = _pair(device)
    b.requires_grad = False  # the wrong gradient of b is never looked at
    assert gradcheck(_WrongAt.apply, [a, b])
    a.requires_grad = False
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(_WrongAt.apply, [a, b])


def test_float32_inputs_are_promoted_and_left_untouched(device):
    a, b = _pair(device, np.float32)
    before = backend.to_numpy(a.data).copy()
    seen = []

    def fn(x, y):
        seen.append((x.dtype, y.dtype))
        return x * y

    assert gradcheck(fn, [a, b])
    assert set(seen) == {(np.dtype(np.float64), np.dtype(np.float64))}
    assert a.dtype == np.float32 and a.grad is None and b.grad is None
    np.testing.assert_array_equal(backend.to_numpy(a.data), before)


def test_non_tensor_inputs_are_rejected(device):
    with pytest.raises(TypeError, match="Tensors"):
        gradcheck(lambda x: x, [backend.to_device(np.ones(3), device)])


def test_integer_inputs_pass_through(device):
    idx = Tensor(backend.to_device(np.array([2, 0, 2]), device))
    x = _t([1.0, 2.0, 3.0], device)
    assert gradcheck(lambda v, i: v[i.data] * v[i.data], [x, idx])


def test_tolerances_are_respected(device):
    # a 0.1 % error passes when the caller asks for 1 % relative tolerance
    assert gradcheck(_SlightlyWrong.apply, _pair(device), rtol=1e-2)
    assert minidl.gradcheck(_SlightlyWrong.apply, _pair(device), atol=1e-2, rtol=0)
