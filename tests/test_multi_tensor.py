"""Multi-tensor (flat-buffer) optimizer updates against the per-parameter loop they replace.

The per-parameter form is the same class with `multi_tensor = False`; elementwise operations
round every element the same way in any array, so trajectories must agree to the last bit,
on NumPy (blocked passes, blocks crossing parameter boundaries) and on the 'cuda' backend
(one fused kernel over the buffer against one kernel per parameter)."""

from __future__ import annotations

import numpy as np
import pytest

from minidl import backend
from minidl.nn.module import Parameter
from minidl.optim import flat
from minidl.optim.adam import Adam, AdamW, AMSGrad
from minidl.optim.sgd import SGD

SHAPES = [(7, 5), (5,), (3, 2, 2, 2), (1,), (4, 3)]

OPTIMIZERS = {
    "adam": lambda ps: Adam(ps, lr=1e-2),
    "adam-wd": lambda ps: Adam(ps, lr=1e-2, weight_decay=0.1),
    "amsgrad": lambda ps: AMSGrad(ps, lr=1e-2),
    "adamw": lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adamw-amsgrad": lambda ps: AdamW(ps, lr=1e-2, amsgrad=True),
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd-momentum": lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.3),
    "sgd-nesterov-wd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                      weight_decay=0.01),
    "sgd-maximize-wd": lambda ps: SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.1,
                                      maximize=True),
}


def per_parameter(opt):
    """The same optimizer stepping one parameter at a time (its class, multi_tensor off)."""
    opt.multi_tensor = False
    return opt


def make_params(device, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(backend.to_device(rng.standard_normal(s).astype(dtype), device))
            for s in SHAPES]


def gradients(step, device, dtype):
    rng = np.random.default_rng(100 + step)
    return [backend.to_device(rng.standard_normal(s).astype(dtype), device) for s in SHAPES]


def host(a):
    return backend.to_numpy(a)


def assert_same(params_a, params_b, opt_a, opt_b):
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(host(pa.data), host(pb.data))
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert set(sa) == set(sb)
        for key in sa:
            if hasattr(sa[key], "shape"):
                np.testing.assert_array_equal(host(sa[key]), host(sb[key]), err_msg=key)
            else:
                assert sa[key] == sb[key], key


def layout(opt):
    """The optimizer's flat layout of its first group (None: stepped per parameter)."""
    return opt._flat.get(id(opt.param_groups[0]))


def is_flat(opt, params, key=None) -> bool:
    """Whether every parameter (or its state[key]) is the view the flat layout made of it."""
    group = layout(opt)
    if group is None:
        return False
    views = group.views if key is None else group.buffers[key][1]
    arrays = [p.data if key is None else opt.state[p][key] for p in params]
    return len(arrays) == len(views) and all(a is v for a, v in zip(arrays, views))


def run_pair(make, device, dtype, steps, between=None):
    flat_ps, loop_ps = make_params(device, dtype), make_params(device, dtype)
    opt_flat, opt_loop = make(flat_ps), per_parameter(make(loop_ps))
    for t in range(steps):
        for ps in (flat_ps, loop_ps):
            for p, g in zip(ps, gradients(t, device, dtype)):
                p.grad = g
        if between is not None:
            between(t, flat_ps, opt_flat, loop_ps, opt_loop)
        opt_flat.step()
        opt_loop.step()
    return flat_ps, opt_flat, loop_ps, opt_loop


# 24 bytes: every tensor split into blocks of its own; 320 bytes (40 float32 / 80 float64
# values): big tensors alone, the small (5,) and (1,) ones packed; BLOCK_BYTES: all packed
@pytest.mark.parametrize("block_bytes", [24, 320, flat.BLOCK_BYTES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_flat_trajectory_is_bit_identical(name, dtype, block_bytes, device, monkeypatch):
    monkeypatch.setattr(flat, "BLOCK_BYTES", block_bytes)
    flat_ps, opt_flat, loop_ps, opt_loop = run_pair(OPTIMIZERS[name], device, dtype, 4)
    assert is_flat(opt_flat, flat_ps) and layout(opt_loop) is None
    assert_same(flat_ps, loop_ps, opt_flat, opt_loop)


def test_amsgrad_switched_on_late_joins_the_flat_buffers(device):
    def switch(t, flat_ps, opt_flat, loop_ps, opt_loop):
        if t == 2:
            opt_flat.param_groups[0]["amsgrad"] = opt_loop.param_groups[0]["amsgrad"] = True

    flat_ps, opt_flat, loop_ps, opt_loop = run_pair(OPTIMIZERS["adam"], device, np.float32, 5,
                                                    switch)
    assert_same(flat_ps, loop_ps, opt_flat, opt_loop)
    assert is_flat(opt_flat, flat_ps, "max_exp_avg_sq")  # adopted into a buffer


def test_rebinding_p_data_is_noticed():
    """A user assigning a new array to p.data: the next step updates that array."""
    def rebind(t, flat_ps, opt_flat, loop_ps, opt_loop):
        if t == 2:
            for ps in (flat_ps, loop_ps):
                ps[0].data = np.full(SHAPES[0], 0.5, dtype=np.float64)

    flat_ps, opt_flat, loop_ps, opt_loop = run_pair(OPTIMIZERS["adam"], "cpu", np.float64, 4,
                                                    rebind)
    assert_same(flat_ps, loop_ps, opt_flat, opt_loop)
    assert is_flat(opt_flat, flat_ps)


def test_load_state_dict_mid_run_continues_exactly():
    ps, loop_ps = make_params("cpu", np.float64), make_params("cpu", np.float64)
    opt, loop = SGD(ps, lr=0.1, momentum=0.9), per_parameter(SGD(loop_ps, lr=0.1, momentum=0.9))
    for t in range(2):
        for p, q, g in zip(ps, loop_ps, gradients(t, "cpu", np.float64)):
            p.grad, q.grad = g, g.copy()
        opt.step()
        loop.step()
    saved = loop.state_dict()
    for p, q in zip(ps, loop_ps):
        p.data[...] = q.data
    opt.load_state_dict(saved)
    saved["state"][0]["momentum_buffer"][...] = 7.0  # the loaded state is a copy
    for t in range(2, 4):
        for p, q, g in zip(ps, loop_ps, gradients(t, "cpu", np.float64)):
            p.grad, q.grad = g, g.copy()
        opt.step()
        loop.step()
    assert_same(ps, loop_ps, opt, loop)
    assert is_flat(opt, ps, "momentum_buffer")


def test_parameter_without_gradient_falls_back_and_agrees():
    """A step where one parameter has no gradient: its step count falls behind, the group
    then has differing scalars and is updated per parameter, with the same numbers."""
    def drop(t, flat_ps, opt_flat, loop_ps, opt_loop):
        if t == 1:
            flat_ps[1].grad = loop_ps[1].grad = None

    flat_ps, opt_flat, loop_ps, opt_loop = run_pair(OPTIMIZERS["adam"], "cpu", np.float32, 4,
                                                    drop)
    assert_same(flat_ps, loop_ps, opt_flat, opt_loop)
    assert opt_flat.state[flat_ps[1]]["step"] == 3 and opt_flat.state[flat_ps[0]]["step"] == 4


def test_mixed_dtypes_are_updated_per_parameter():
    ps = [Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float64))]
    qs = [Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float64))]
    opt, loop = Adam(ps, lr=0.1), per_parameter(Adam(qs, lr=0.1))
    for p, q in zip(ps, qs):
        p.grad, q.grad = np.full_like(p.data, 0.3), np.full_like(q.data, 0.3)
    opt.step()
    loop.step()
    assert_same(ps, qs, opt, loop)
    assert ps[0].data.dtype == np.float32 and ps[1].data.dtype == np.float64


@pytest.mark.parametrize("size", [1, 2, 6, 16, 40, 64, 1000])
def test_block_plan_covers_every_value_once_in_order(size):
    sizes = [35, 5, 0, 24, 1, 12, 3, 3, 200]
    blocks = flat._plan_blocks(sizes, size)
    starts = np.cumsum([0] + sizes)
    covered = []
    for block, parts in blocks:
        assert 0 < block.stop - block.start <= size
        values = [starts[i] + k for i, part in parts for k in range(part.start, part.stop)]
        assert values == list(range(block.start, block.stop))  # contiguous pieces, in order
        covered += values
        if len(parts) > 1:  # only small tensors share a block
            assert all(sizes[i] < size // 8 for i, _ in parts)
    assert covered == list(range(sum(sizes)))


def test_a_big_tensor_is_updated_through_views_of_its_own_gradient(monkeypatch):
    """No copy of a big tensor's gradient: its blocks read p.grad itself; small tensors are
    gathered into the flat gradient buffer, one block for all of them."""
    monkeypatch.setattr(flat, "BLOCK_BYTES", 80 * 8)  # 80 float64 values, big from 10
    ps = [Parameter(np.ones((20, 10))), Parameter(np.ones(4)), Parameter(np.ones(3))]
    opt = SGD(ps, lr=0.1)
    seen = []
    update = SGD.update

    def recording(self, p, grad, state, group):
        seen.append(grad)
        update(self, p, grad, state, group)
    monkeypatch.setattr(SGD, "update", recording)
    for p in ps:
        p.grad = np.arange(p.data.size, dtype=np.float64).reshape(p.shape)
    opt.step()
    assert [g.size for g in seen] == [80, 80, 40, 7]
    assert all(np.shares_memory(g, ps[0].grad) for g in seen[:3])
    assert not np.shares_memory(seen[3], ps[1].grad) and seen[3].tolist() == [0, 1, 2, 3, 0, 1, 2]
    np.testing.assert_array_equal(ps[0].data, 1 - 0.1 * ps[0].grad)
