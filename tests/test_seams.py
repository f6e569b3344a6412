"""The two seams: Module forward hooks (generic) and ADAS's offsets built on them; the
group-level optimizer step, and the checks every optimizer makes at construction and load."""

import inspect
import math

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn, optim
from minidl.nn.layers import Dense, ReLU
from minidl.optim.adas import Adas
from minidl.optim.optimizer import Optimizer


# --------------------------------------------------------------------------- hooks
class Twice(nn.Module):
    def forward(self, x):
        return x * 2.0


def test_forward_pre_hook_sees_and_replaces_the_arguments():
    m, seen = Twice(), []
    handle = m.register_forward_pre_hook(lambda mod, args: seen.append((mod, args)))
    x = md.tensor([1.0, 2.0])
    m(x)
    assert seen[0][0] is m and seen[0][1][0] is x
    m.register_forward_pre_hook(lambda mod, args: args[0] + 1.0)  # non-tuple: the argument
    np.testing.assert_array_equal(m(x).numpy(), [4.0, 6.0])
    handle.remove()
    handle.remove()  # again: a no-op
    m(x)
    assert len(seen) == 2


def test_forward_hook_replaces_the_output_in_registration_order():
    m, order = Twice(), []
    m.register_forward_hook(lambda mod, args, out: order.append("a"))
    with m.register_forward_hook(lambda mod, args, out: out + args[0]):
        np.testing.assert_array_equal(m(md.tensor([1.0])).numpy(), [3.0])
    np.testing.assert_array_equal(m(md.tensor([1.0])).numpy(), [2.0])  # removed on exit
    assert order == ["a", "a"]
    with pytest.raises(TypeError, match="callable"):
        m.register_forward_hook("not a function")


# --------------------------------------------------------------------------- ADAS on hooks
def _data(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _mlp():
    md.manual_seed(0)
    with md.default_dtype("float64"):
        return nn.Sequential(Dense(4, 5), ReLU(), Dense(5, 3))


def _backward(model, x, y):
    md.cross_entropy(model(md.Tensor(x)), y).backward()


def test_layer_without_bias_is_refused_with_the_reason():
    model = nn.Sequential(Dense(3, 3, bias=False))
    with pytest.raises(ValueError, match="has no bias.*outer.*offsets=False"):
        Adas(model)
    Adas(model, offsets=False)


def test_parameters_without_their_layer_cannot_take_offsets():
    with pytest.raises(ValueError, match="without its layer"):
        Adas(_mlp().parameters())


def test_two_optimizers_on_one_model_keep_their_own_statistics():
    model = _mlp()
    a, b = Adas(model), Adas(model)
    x, y = _data()
    _backward(model, x, y)
    assert a.input_stats[0].count == b.input_stats[0].count == 6
    np.testing.assert_array_equal(a.input_stats[0].mean, b.input_stats[0].mean)
    a.close()
    _backward(model, x, y)
    assert (a.input_stats[0].count, b.input_stats[0].count) == (6, 12)


def test_gradient_accumulation_corrects_the_summed_gradient_with_the_mean_at_step_time():
    model = _mlp()
    opt = Adas(model, offset_momentum=0.9)
    (x1, y1), (x2, y2) = _data(1), _data(2)
    _backward(model, x1, y1)
    _backward(model, x2, y2)
    stats = opt.input_stats[0]
    assert stats.count == 12
    keep = 0.9 ** 6
    mu = keep * ((1 - keep) * x1.mean(0)) + (1 - keep) * x2.mean(0)
    np.testing.assert_allclose(stats.mean, mu, rtol=1e-12)
    w, b = model[0].weight, model[0].bias
    got = opt.gradient(w, opt.param_groups[0])
    np.testing.assert_allclose(got, w.grad - np.outer(mu, b.grad), rtol=1e-12)


def test_schedule_scales_adas_steps_through_the_live_lr():
    steps = []
    for lr in (1.0, 0.5):
        model = _mlp()
        w0 = model[0].weight.numpy().copy()
        opt = Adas(model, lr=lr)
        _backward(model, *_data())
        opt.step()
        steps.append(model[0].weight.numpy() - w0)
    np.testing.assert_allclose(steps[1], 0.5 * steps[0], rtol=1e-12)
    opt = Adas(_mlp())
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5


def test_capability_flags_are_declared_on_the_base_classes():
    assert Optimizer.needs_closure is False and optim.LBFGS.needs_closure is True
    assert optim.LRScheduler.needs_metric is False and optim.ReduceLROnPlateau.needs_metric
    assert Optimizer.coupled_weight_decay and not optim.AdamW.coupled_weight_decay


# --------------------------------------------------------------------------- construction
def _classes():
    return [c for c in vars(optim).values() if isinstance(c, type) and issubclass(c, Optimizer)
            and c is not Optimizer]


def _required(cls):
    return {"N": 10.0, "lr": 1e-3} if cls.__name__.startswith("Santa") else {}


def _p(dtype=np.float64):
    return nn.Parameter(np.ones(3, dtype=dtype))


@pytest.mark.parametrize("cls", [c for c in _classes()
                                 if "betas" in inspect.signature(c).parameters],
                         ids=lambda c: c.__name__)
def test_betas_of_the_wrong_length_are_refused_at_construction(cls):
    n = len(inspect.signature(cls).parameters["betas"].default)
    for betas in ((0.9,) * (n + 1), (0.9,) * (n - 1)):
        with pytest.raises(ValueError, match=f"betas must be {n} values"):
            cls([_p()], betas=betas, **_required(cls))


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_lr_is_refused(cls, value):
    with pytest.raises(ValueError, match="lr"):
        cls([_p()], **{**_required(cls), "lr": value})


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_float16_parameters_are_refused(cls):
    with pytest.raises(TypeError, match="float16"):
        cls([_p(np.float16)], **_required(cls))


def test_load_state_dict_checks_before_changing_anything():
    p = _p()
    opt = optim.Adam([p])
    p.grad = np.ones(3)
    opt.step()
    before = opt.state_dict()
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({})
    other = optim.Adam([nn.Parameter(np.ones(4))])
    other.param_groups[0]["params"][0].grad = np.ones(4)
    other.step()
    with pytest.raises(ValueError, match=r"shape \(4,\).*shape \(3,\)"):
        opt.load_state_dict(other.state_dict())
    two = optim.Adam([nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))])
    with pytest.raises(ValueError, match="2 parameters"):
        opt.load_state_dict(two.state_dict())
    np.testing.assert_array_equal(opt.state[p]["exp_avg"], before["state"][0]["exp_avg"])
    assert opt.state[p]["step"] == 1
    assert backend.xp_of(p.data) is np


def test_import_minidl_reaches_nn_optim_data_without_cupy():
    import subprocess
    import sys

    code = ("import sys, minidl; minidl.nn.Dense; minidl.optim.Adam; minidl.data.DataLoader; "
            "assert 'cupy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
