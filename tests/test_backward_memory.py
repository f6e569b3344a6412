"""backward() without retain_graph leaves a graph that holds no activations (as PyTorch).

Measured with tracemalloc (NumPy reports its array allocations to it), so these run on the CPU.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from minidl import ops
from minidl.autograd import Function, Tensor
from minidl.graph import format_graph


def _traced(build):
    """(bytes allocated by build() and still held after it, build's result)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        return tracemalloc.get_traced_memory()[0] - before, result
    finally:
        tracemalloc.stop()


def _chain_after_backward(width: int, n_ops: int = 10_000):
    x = Tensor(np.ones(width), requires_grad=True)

    def build():
        y = x
        for _ in range(n_ops):
            y = y * 1.0001
        loss = y.sum()
        loss.backward()
        return loss  # still referenced while the memory is measured

    held, loss = _traced(build)
    return held - x.grad.nbytes, loss


def test_long_chain_holds_no_activations_after_backward():
    n_ops, width = 10_000, 1_000
    held_wide, loss = _chain_after_backward(width, n_ops)
    held_narrow, _ = _chain_after_backward(10, n_ops)
    activations = n_ops * width * 8  # one float64 output per op: 80 MB
    # what is left is the graph's shape (a few hundred bytes per node, as torch's grad_fn
    # chain), the same for narrow and wide activations; before the fix it was all 80 MB
    assert held_wide < activations / 10
    assert abs(held_wide - held_narrow) < activations / 1000
    assert loss.grad_fn is not None
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_keeping_every_loss_does_not_keep_every_batch():
    rng = np.random.default_rng(0)
    w1 = Tensor(rng.standard_normal((100, 100)) * 0.1, requires_grad=True)
    w2 = Tensor(rng.standard_normal((100, 10)) * 0.1, requires_grad=True)
    batch_bytes = 64 * 100 * 8  # one activation of one batch

    def train(n_batches):
        losses = []
        for _ in range(n_batches):
            x = Tensor(rng.standard_normal((64, 100)))
            h = (x @ w1).tanh()
            h = h + h * h.sigmoid()  # fan-out: h is used three times
            loss = ops.cross_entropy(h @ w2, rng.integers(0, 10, 64))
            loss.backward()
            losses.append(loss)
        w1.grad = w2.grad = None
        return losses

    train(2)  # warm-up: first-call allocations (caches, imports) are not per batch
    held_10, _ = _traced(lambda: train(10))
    held_40, _ = _traced(lambda: train(40))
    per_batch = (held_40 - held_10) / 30
    assert per_batch < batch_bytes / 10  # before the fix: several activations per batch


def test_attributes_stashed_by_forward_are_freed_too():
    class Stash(Function):
        """A custom op that keeps an array in an attribute of its own, not in `saved`."""

        def forward(self, a):
            self.mask = a > 0
            return a * self.mask

        def backward(self, g):
            return (g * self.mask,)

    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    y = Stash.apply(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])
    assert not hasattr(y.grad_fn, "mask")


def test_the_graph_keeps_its_shape_but_not_its_values():
    w = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    x = Tensor(np.array([[0.5, -0.5]]))
    h = x @ w
    loss = (h * h.sigmoid()).sum()
    listing = format_graph(loss)
    loss.backward()
    assert format_graph(loss) == listing  # the printer still sees every node
    (mul_input, _) = loss.grad_fn.inputs[0].grad_fn.inputs
    assert mul_input.data.strides == (0, 0)  # a stand-in, not h's values
    assert loss.grad_fn.inputs[0].grad_fn.inputs[0] is mul_input  # h stays one node


def test_retain_graph_keeps_everything_and_then_frees():
    x = Tensor(np.array([0.3, -1.2]), requires_grad=True)
    h = x * x.sigmoid()
    loss = (h * h).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    x.grad = None
    loss.backward()  # the same graph again: the same gradient
    np.testing.assert_array_equal(x.grad, first)
    with pytest.raises(RuntimeError, match="freed"):
        loss.backward()


def test_shared_subgraph_freed_by_one_loss_raises_for_the_other():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x.exp()
    a, b = h.sum(), (h * 2.0).sum()
    a.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        b.backward()  # as torch: h's node was freed by the first backward
