"""minidl.ops: errors that name the problem (both shapes, the bad argument, the bad label);
split from test_ops.py, whose table drives the gradchecks."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import Tensor, backend, ops


# --------------------------------------------------------------------------- error messages


def _zeros(shape, device, dtype=np.float64):
    return Tensor(backend.to_device(np.zeros(shape, dtype=dtype), device))


@pytest.mark.parametrize("call, sa, sb", [
    (lambda a, b: a + b, (2, 3), (4, 2)),
    (lambda a, b: a - b, (2, 3), (3, 2)),
    (lambda a, b: a * b, (2, 3), (2,)),
    (lambda a, b: a / b, (5,), (4,)),
    (ops.maximum, (2, 3), (4,)),
    (lambda a, b: a @ b, (2, 3), (4, 5)),
    (lambda a, b: a @ b, (3,), (4,)),
    (lambda a, b: a @ b, (2, 3, 4), (3, 4, 5)),
    (ops.linear, (2, 3), (4, 5)),
    (lambda b, w: ops.linear(_zeros((2, 4), w.device), w, b), (5,), (4, 3)),
    (lambda a, b: ops.concatenate([a, b], axis=0), (2, 3), (2, 4)),
    (lambda a, b: ops.stack([a, b]), (2, 3), (3, 2)),
    (ops.mse_loss, (3, 1), (3,)),
], ids=["add", "sub", "mul", "div", "maximum", "matmul", "matmul_vectors", "matmul_batch",
        "linear", "linear_bias", "concatenate", "stack", "mse_loss"])
def test_shape_errors_name_both_shapes(device, call, sa, sb):
    with pytest.raises(ValueError) as info:
        call(_zeros(sa, device), _zeros(sb, device))
    assert str(sa) in str(info.value) and str(sb) in str(info.value), str(info.value)


def test_linear_rejects_a_bias_that_only_broadcasts(device):
    # a (1, out) bias broadcasts in x @ W + b, but its gradient would come back as (out,)
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        ops.linear(_zeros((2, 4), device), _zeros((4, 3), device), _zeros((1, 3), device))


@pytest.mark.parametrize("call, shape, target", [
    (lambda x, s: x.reshape(s), (2, 3), (4, 2)),
    (lambda x, s: x.broadcast_to(s), (2, 3), (4, 2)),
    (lambda x, s: ops.broadcast_to(x, s), (3,), (3, 2)),
], ids=["reshape", "broadcast_to", "broadcast_to_trailing"])
def test_reshape_and_broadcast_errors_name_both_shapes(device, call, shape, target):
    with pytest.raises(ValueError) as info:
        call(_zeros(shape, device), target)
    assert str(shape) in str(info.value) and str(target) in str(info.value)


@pytest.mark.parametrize("call", [
    lambda x: x.sum(axis=2), lambda x: x.max(axis=-3), lambda x: x.permute(0, 0),
    lambda x: x.clip(), lambda x: ops.max(x[:0]), lambda x: ops.mse_loss(x, x, reduction="avg"),
    lambda x: ops.cross_entropy(x, np.zeros(2, dtype=int), reduction="mean_"),
    lambda x: ops.cross_entropy(x, np.zeros(3, dtype=int)),
    lambda x: ops.cross_entropy(x, np.zeros((2, 4))), lambda x: ops.cross_entropy(x[0], [0]),
    lambda x: ops.matmul(x.sum(), x),
], ids=["sum_axis", "max_axis", "permute_perm", "clip_no_bounds", "max_empty",
        "mse_reduction", "ce_reduction", "ce_target_count", "ce_target_shape", "ce_1d_logits",
        "matmul_0d"])
def test_bad_arguments_raise_value_error(device, call):
    with pytest.raises(ValueError):
        call(_zeros((2, 3), device))


def test_cross_entropy_rejects_float_class_indices(device):
    with pytest.raises(TypeError, match="integer"):
        ops.cross_entropy(_zeros((2, 3), device), np.array([0.0, 1.0]))


@pytest.mark.parametrize("labels", [[0, -1], [3, 0]], ids=["negative", "too_large"])
def test_cross_entropy_rejects_class_indices_out_of_range(labels):
    # a -1 would silently pick the last class (NumPy's negative indexing)
    with pytest.raises(ValueError, match=r"\[0, 3\).*min -?\d, max \d"):
        ops.cross_entropy(_zeros((2, 3), "cpu"), np.array(labels))


def test_cross_entropy_float64_one_hot_targets_with_float32_logits(device):
    # numpy.eye(C)[labels] is float64; the targets get no gradient, so they follow the logits
    logits = Tensor(backend.to_device(np.random.default_rng(0).standard_normal((4, 3)),
                                      device).astype(np.float32), requires_grad=True)
    labels = np.array([0, 2, 1, 2])
    loss = ops.cross_entropy(logits, backend.to_device(np.eye(3)[labels], device))
    assert loss.dtype == np.float32
    expected = ops.cross_entropy(logits, backend.to_device(labels, device))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad.dtype == np.float32
