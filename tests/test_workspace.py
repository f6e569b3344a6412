"""Scratch arrays reused across steps (minidl.ops.workspace): a buffer goes back to the pool
only when the graph node holding it is done with it, so live graphs never share one."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.ops import conv
from minidl.ops.workspace import WORKSPACE, Workspace


@pytest.fixture(autouse=True)
def empty_pool():
    WORKSPACE.clear()
    yield
    WORKSPACE.clear()


def _columns_taken(monkeypatch):
    """The arrays conv2d's forward takes from the pool, in order."""
    taken = []
    take = Workspace.take

    def recording(self, xp, shape, dtype):
        taken.append(take(self, xp, shape, dtype))
        return taken[-1]
    monkeypatch.setattr(Workspace, "take", recording)
    return taken


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = md.Tensor(rng.standard_normal((3, 2, 6, 6)))
    w = md.Tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    return x, w


def test_a_step_reuses_the_columns_of_the_step_before(monkeypatch):
    taken = _columns_taken(monkeypatch)
    x, w = _data()
    for _ in range(3):
        w.grad = None
        conv.conv2d(x, w).sum().backward()
    assert len(taken) == 3 and taken[1] is taken[0] and taken[2] is taken[0]


def test_two_live_graphs_get_their_own_columns_and_right_gradients(monkeypatch):
    taken = _columns_taken(monkeypatch)
    x, w = _data()
    x2, _ = _data(seed=1)
    (conv.conv2d(x, w) ** 2).sum().backward()
    g1 = w.grad
    w.grad = None
    (conv.conv2d(x2, w) ** 2).sum().backward()
    g2 = w.grad
    w.grad = None
    # accumulation: both forwards first, then both backwards (the second forward must not
    # overwrite the columns the first backward still needs)
    loss1 = (conv.conv2d(x, w) ** 2).sum()
    loss2 = (conv.conv2d(x2, w) ** 2).sum()
    assert taken[-1] is not taken[-2]
    loss1.backward()
    loss2.backward()
    np.testing.assert_allclose(w.grad, g1 + g2, rtol=1e-12)


def test_no_grad_gives_the_columns_back_at_once(monkeypatch):
    taken = _columns_taken(monkeypatch)
    x, w = _data()
    with md.no_grad():
        a = conv.conv2d(x, w).numpy()
        b = conv.conv2d(x, w).numpy()
    assert taken[1] is taken[0]
    np.testing.assert_array_equal(a, b)


def test_a_retained_graph_keeps_its_columns(monkeypatch):
    taken = _columns_taken(monkeypatch)
    x, w = _data()
    x2, _ = _data(seed=1)
    loss = (conv.conv2d(x, w) ** 2).sum()
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    with md.no_grad():
        conv.conv2d(x2, w)  # would overwrite the columns if they had been given back
    assert taken[1] is not taken[0]
    w.grad = None
    loss.backward()
    np.testing.assert_array_equal(w.grad, first)


def test_the_pool_keeps_at_most_per_key_arrays_and_forgets_changing_shapes():
    pool = Workspace(per_key=2)
    arrays = [np.empty(3) for _ in range(3)]
    for a in arrays:
        pool.give(a)
    pool.give(arrays[0])  # twice: still once
    assert pool.take(np, (3,), np.float64) is arrays[1]
    assert pool.take(np, (3,), np.float64) is arrays[0]
    fresh = pool.take(np, (3,), np.float64)  # empty again: a new one
    assert all(fresh is not a for a in arrays)
    assert pool.take(np, (3,), np.float32).dtype == np.float32
    for n in range(100):
        pool.give(np.empty(n + 10))
    assert len(pool._free) <= 64
