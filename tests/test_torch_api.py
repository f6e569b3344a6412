"""PyTorch's names and the ops a PyTorch user reaches for: forward values against NumPy, SciPy
or the formulas of torch's documentation written out here, gradients by float64 gradcheck."""

import math

import numpy as np
import pytest
from scipy import special

import minidl as md
import minidl.nn.functional as F
from minidl import backend, gradcheck, nn, ops
from minidl.data import DataLoader, TensorDataset, standardize, transforms


def T(a, device, grad=True):
    return md.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, device=device)


def host(t):
    return backend.to_numpy(t.data if isinstance(t, md.Tensor) else t)


RNG = np.random.default_rng(3)
X = RNG.standard_normal((3, 4)) * 2  # away from the kinks of the piecewise ones below
X[np.abs(X) < 0.05] = 0.3

# name -> (minidl function, independent reference on NumPy arrays)
UNARY = {
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "gelu": (F.gelu, lambda x: x * 0.5 * (1 + special.erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: 0.5 * x * (1 + np.tanh(
        math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "elu": (lambda x: F.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    "softplus": (lambda x: F.softplus(x, beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    "logsigmoid": (F.logsigmoid, lambda x: np.log(special.expit(x))),
    "hardtanh": (F.hardtanh, lambda x: np.clip(x, -1, 1)),
    "relu6": (lambda x: F.relu6(x * 4), lambda x: np.clip(x * 4, 0, 6)),
    "sin": (md.sin, np.sin), "cos": (ops.cos, np.cos),
    "log1p": (lambda x: md.log1p(x * x), lambda x: np.log1p(x * x)),
    "expm1": (md.expm1, np.expm1),
    "var": (lambda x: x.var(dim=1), lambda x: np.var(x, axis=1, ddof=1)),
    "var_biased": (lambda x: md.var(x, 0, correction=0, keepdim=True),
                   lambda x: np.var(x, axis=0, ddof=0, keepdims=True)),
    "std": (lambda x: x.std(), lambda x: np.std(x, ddof=1)),
    "prod": (lambda x: x.prod(dim=1), lambda x: np.prod(x, axis=1)),
    "prod_all": (md.prod, np.prod),
    "cumsum": (lambda x: x.cumsum(dim=-1), lambda x: np.cumsum(x, axis=-1)),
    "squeeze": (lambda x: x.reshape(3, 1, 4).squeeze(1), lambda x: x),
    "unsqueeze": (lambda x: x.unsqueeze(-1), lambda x: x[..., None]),
    "permute": (lambda x: x.reshape(3, 2, 2).permute(2, 0, 1),
                lambda x: x.reshape(3, 2, 2).transpose(2, 0, 1)),
    "transpose": (lambda x: x.reshape(3, 2, 2).transpose(0, 2),
                  lambda x: np.swapaxes(x.reshape(3, 2, 2), 0, 2)),
    "view": (lambda x: x.view(2, 6), lambda x: x.reshape(2, 6)),
    "expand": (lambda x: x[:1].expand(5, -1), lambda x: np.broadcast_to(x[:1], (5, 4))),
    "flip": (lambda x: x.flip(dim=(0, 1)),
             lambda x: x[::-1, ::-1]),
    "split": (lambda x: x.split([1, 3], dim=1)[1], lambda x: x[:, 1:]),
    "chunk": (lambda x: md.chunk(x, 2, 1)[1], lambda x: x[:, 2:]),
    "repeat": (lambda x: x.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3))),
    "tril": (lambda x: x.tril(1), lambda x: np.tril(x, 1)),
    "triu": (lambda x: md.triu(x, -1), lambda x: np.triu(x, -1)),
    "gather": (lambda x: x.gather(1, np.array([[0, 0], [3, 1], [2, 2]])),
               lambda x: np.take_along_axis(x, np.array([[0, 0], [3, 1], [2, 2]]), 1)),
    "masked_fill": (lambda x: x.masked_fill(np.array([True, False, True, False]), -2.0),
                    lambda x: np.where([True, False, True, False], -2.0, x)),
    "layer_norm": (lambda x: F.layer_norm(x, 4),
                   lambda x: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True)
                                                                      + 1e-5)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_forward_and_gradient(device, name):
    fn, reference = UNARY[name]
    x = T(X, device)
    np.testing.assert_allclose(host(fn(x)), reference(X), rtol=1e-10, atol=1e-12)
    assert gradcheck(fn, [x])


def test_prod_gradient_with_zeros(device):
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 1.5]])
    t = T(x, device)
    t.prod(dim=1).sum().backward()
    # d/dx_i prod = product of the others
    np.testing.assert_allclose(host(t.grad), [[0, 6, 0], [0, 0, 0]])


def test_no_grad_math_and_predicates(device):
    x = T([-1.5, -0.5, 0.5, 2.5, np.nan, np.inf], device)
    for name in ("sign", "floor", "ceil", "round", "isnan", "isinf", "isfinite"):
        out = getattr(md, name)(x)
        assert not out.requires_grad
        np.testing.assert_array_equal(host(out), getattr(np, name)(host(x)))
    assert host(md.round(T([0.5, 1.5, 2.5], device))).tolist() == [0, 2, 2]  # halves to even


def test_reductions_any_all_argmax_keepdim(device):
    x = T(X, device)
    np.testing.assert_array_equal(host(x.argmax(dim=1, keepdim=True)),
                                  X.argmax(1)[:, None])
    assert host(x.argmin()) == X.argmin()
    np.testing.assert_array_equal(host((x > 0).any(dim=0)), (X > 0).any(0))
    np.testing.assert_array_equal(host(md.all(x > -10, dim=1, keepdim=True)),
                                  np.ones((3, 1), bool))


def test_dim_and_axis_are_one_argument():
    x = md.tensor(X)
    np.testing.assert_allclose(host(x.sum(dim=0)), host(x.sum(axis=0)))
    np.testing.assert_allclose(host(md.log_softmax(x, dim=1)), host(ops.log_softmax(x, 1)))
    assert md.flatten(md.zeros(2, 3, 4), start_dim=1).shape == (2, 12)
    with pytest.raises(TypeError, match="both 'dim' and 'axis'"):
        x.sum(dim=0, axis=0)


def test_tensor_methods_follow_torch():
    x = md.tensor(X)
    assert x.size() == (3, 4) and x.size(1) == 4 and x.size == 12 and x.numel() == 12
    assert x.dim() == 2 and x.float().dtype == np.float32 and x.double().dtype == np.float64
    assert x.squeeze(0).shape == (3, 4)  # a dim that is not 1 stays, as torch
    np.testing.assert_array_equal(host(x.eq(x.view_as(x))), np.ones((3, 4), bool))
    np.testing.assert_allclose(host(x.clamp(min=0)), np.clip(X, 0, None))
    np.testing.assert_allclose(host(x.pow(2).neg()), -X ** 2)
    np.testing.assert_allclose(host(x.matmul(x.T)), X @ X.T)


def test_creation():
    assert host(md.arange(5)).tolist() == [0, 1, 2, 3, 4] and md.arange(5).dtype == np.int64
    np.testing.assert_allclose(host(md.arange(0, 1, 0.25)), [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(host(md.linspace(0, 1, 5)), np.linspace(0, 1, 5))
    assert md.linspace(0, 1, 5).dtype == np.float32
    np.testing.assert_array_equal(host(md.eye(2, 3)), np.eye(2, 3))
    np.testing.assert_array_equal(host(md.full((2, 2), 7.0)), np.full((2, 2), 7.0))
    x = md.tensor(np.ones((2, 3), np.float64))
    assert md.zeros_like(x).dtype == np.float64 and host(md.ones_like(x)).sum() == 6
    assert host(md.full_like(x, 3)).tolist() == [[3, 3, 3], [3, 3, 3]]
    np.testing.assert_array_equal(host(F.one_hot(md.tensor(np.array([2, 0])), 3)),
                                  [[0, 0, 1], [1, 0, 0]])


LOGITS = RNG.standard_normal((5, 4))
LABELS = np.array([0, 3, 1, 3, 2])
WEIGHTS = np.array([0.5, 1.0, 2.0, 1.5])


def _ce_reference(z, t, w, ignore, smoothing):
    """torch.nn.functional.cross_entropy's documented formula, written out in NumPy."""
    logp = z - special.logsumexp(z, axis=1, keepdims=True)
    keep = t != ignore
    tt = np.where(keep, t, 0)
    nll = -w[tt] * logp[np.arange(len(t)), tt] * keep
    smooth = -(logp * w).sum(1) / z.shape[1] * keep
    return ((1 - smoothing) * nll + smoothing * smooth).sum() / (w[tt] * keep).sum()


@pytest.mark.parametrize("weight,ignore,smoothing", [
    (None, -100, 0.0), (WEIGHTS, -100, 0.0), (None, 3, 0.0), (None, -100, 0.1),
    (WEIGHTS, 3, 0.2)])
def test_cross_entropy_options(device, weight, ignore, smoothing):
    z = T(LOGITS, device)
    w = np.ones(4) if weight is None else weight
    loss = F.cross_entropy(z, LABELS, weight=weight, ignore_index=ignore,
                           label_smoothing=smoothing)
    np.testing.assert_allclose(host(loss), _ce_reference(LOGITS, LABELS, w, ignore, smoothing))
    assert gradcheck(lambda a: F.cross_entropy(a, LABELS, weight=weight, ignore_index=ignore,
                                               label_smoothing=smoothing), [z])


def test_nll_loss_and_module(device):
    logp = T(LOGITS, device)
    ref = -LOGITS[np.arange(5), LABELS]
    np.testing.assert_allclose(host(F.nll_loss(logp, LABELS)), ref.mean())
    np.testing.assert_allclose(host(nn.NLLLoss(reduction="sum")(logp, LABELS)), ref.sum())
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(lambda a, r=reduction: F.nll_loss(a, LABELS, WEIGHTS, reduction=r),
                         [logp])


def test_regression_and_binary_losses(device):
    p = RNG.uniform(0.05, 0.95, (3, 4))
    y = (RNG.random((3, 4)) > 0.5).astype(float)
    z = RNG.standard_normal((3, 4))
    pt, zt = T(p, device), T(z, device)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(host(F.binary_cross_entropy(pt, y)), bce.mean())
    s = special.expit(z)
    bcel = -(2.0 * y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(host(F.binary_cross_entropy_with_logits(
        zt, y, pos_weight=2.0, reduction="sum")), bcel.sum())
    np.testing.assert_allclose(host(F.l1_loss(zt, pt)), np.abs(z - p).mean())
    d = np.abs(z - p)
    huber = np.where(d < 0.5, 0.5 * d ** 2 / 0.5, d - 0.25)
    np.testing.assert_allclose(host(F.smooth_l1_loss(zt, pt, beta=0.5)), huber.mean())
    assert gradcheck(lambda a: F.binary_cross_entropy(a, y), [pt])
    assert gradcheck(lambda a: F.binary_cross_entropy_with_logits(a, y, pos_weight=2.0), [zt])
    assert gradcheck(lambda a, b: F.smooth_l1_loss(a, b, beta=0.5) + F.l1_loss(a, b), [zt, pt])


def _conv_reference(x, w, stride, padding, dilation, groups):
    """Direct sum: y[n,o,p,q] = sum_{c,i,j} w[o,c,i,j] x[n, g*C/G + c, p*s + i*d, q*s + j*d]."""
    x = np.pad(x, ((0, 0), (0, 0), padding[0], padding[1]))
    n, c_in, h, wd = x.shape
    o, c, kh, kw = w.shape
    oh = (h - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, o, oh, ow))
    per = o // groups
    for oc in range(o):
        g = oc // per
        for p in range(oh):
            for q in range(ow):
                patch = x[:, g * c:(g + 1) * c, p * stride:p * stride + dilation * (kh - 1) + 1:
                          dilation, q * stride:q * stride + dilation * (kw - 1) + 1:dilation]
                y[:, oc, p, q] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return y


@pytest.mark.parametrize("stride,padding,dilation,groups,pads", [
    (1, 1, 2, 1, ((1, 1), (1, 1))), (2, 0, 1, 2, ((0, 0), (0, 0))),
    (1, "same", 1, 2, ((1, 1), (1, 1))), (1, "same", 2, 1, ((2, 2), (2, 2)))])
def test_conv2d_dilation_groups_same(device, stride, padding, dilation, groups, pads):
    x = RNG.standard_normal((2, 4, 7, 7))
    w = RNG.standard_normal((6, 4 // groups, 3, 3))
    xt, wt = T(x, device), T(w, device)
    out = F.conv2d(xt, wt, None, stride, padding, dilation, groups)
    np.testing.assert_allclose(host(out), _conv_reference(x, w, stride, pads, dilation, groups),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(lambda a, b: F.conv2d(a, b, None, stride, padding, dilation, groups),
                     [T(x[:1, :, :5, :5], device), wt])


def test_conv2d_same_with_even_kernel_pads_after():
    x = RNG.standard_normal((1, 1, 5, 5))
    w = RNG.standard_normal((1, 1, 2, 2))
    out = F.conv2d(md.tensor(x), md.tensor(w), padding="same")
    # torch's rule: total padding 1, none before and one after
    np.testing.assert_allclose(host(out), _conv_reference(x, w, 1, ((0, 1), (0, 1)), 1, 1))
    layer = nn.Conv2d(4, 6, 3, padding="same", groups=2, dilation=2)
    assert layer.weight.shape == (6, 2, 3, 3)
    assert layer(md.zeros(1, 4, 9, 9)).shape == (1, 6, 9, 9)


def test_linear_has_torch_layout_and_matches_dense(device):
    md.manual_seed(0)
    lin = nn.Linear(5, 3, device=device)
    assert lin.weight.shape == (3, 5) and lin.weight.input_axes == (1,)
    dense = nn.Dense(5, 3, device=device)
    dense.weight.data[...] = lin.weight.data.T
    dense.bias.data[...] = lin.bias.data
    x = md.tensor(RNG.standard_normal((4, 5)).astype(np.float32), device=device)
    np.testing.assert_allclose(host(lin(x)), host(dense(x)), rtol=1e-6)
    np.testing.assert_allclose(host(F.linear(x, lin.weight, lin.bias)), host(lin(x)), rtol=1e-6)


def test_adas_on_linear_follows_dense_up_to_the_transpose():
    def run(layer_cls, transpose):
        md.manual_seed(0)
        model = nn.Sequential(layer_cls(6, 4), nn.ReLU(), layer_cls(4, 3))
        for m in (model[0], model[2]):
            src = np.random.default_rng(m.in_features).standard_normal(
                (m.in_features, m.out_features)).astype(np.float32)
            m.weight.data[...] = src.T if transpose else src
        opt = md.optim.Adas(model)  # the Module: offsets need the layers
        rng = np.random.default_rng(1)
        for _ in range(5):
            x = md.tensor(rng.standard_normal((8, 6)).astype(np.float32))
            y = rng.integers(0, 3, 8)
            opt.zero_grad()
            md.cross_entropy(model(x), y).backward()
            opt.step()
        return [host(m.weight).T if transpose else host(m.weight) for m in (model[0], model[2])]

    for a, b in zip(run(nn.Dense, False), run(nn.Linear, True)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_and_load_state_dict(tmp_path):
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    path = md.save(model.state_dict(), tmp_path / "model.pt")
    other = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    other.load_state_dict(md.load(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=k)
    assert not (tmp_path / "model.pt").read_bytes().startswith(b"\x80")  # a zip, not a pickle


def test_num_threads_roundtrip():
    before = md.get_num_threads()
    try:
        md.set_num_threads(1)
        assert md.get_num_threads() == 1
    finally:
        md.set_num_threads(before)
    with pytest.raises(ValueError):
        md.set_num_threads(0)


class _Squares:
    """A map-style dataset: item i is (array [i, i^2], label i % 2)."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float32), i % 2


def test_dataloader_over_a_dataset_shuffles_from_the_global_seed():
    def batches(seed):
        md.manual_seed(seed)
        loader = DataLoader(_Squares(), batch_size=3, shuffle=True, num_workers=1,
                            pin_memory=True)
        return [(host(x), host(y)) for x, y in loader], loader

    first, loader = batches(5)
    again, _ = batches(5)
    other, _ = batches(6)
    assert len(loader.dataset) == 7 and len(first) == 3 and first[-1][0].shape == (1, 2)
    seen = np.concatenate([x[:, 0] for x, _ in first])
    assert sorted(seen.tolist()) == list(range(7))
    for (x, y) in first:
        np.testing.assert_array_equal(x[:, 1], x[:, 0] ** 2)
        np.testing.assert_array_equal(y, x[:, 0].astype(int) % 2)
    assert all((a[0] == b[0]).all() for a, b in zip(first, again))
    assert not all((a[0] == b[0]).all() for a, b in zip(first, other))
    arrays = DataLoader(np.zeros((5, 2)), np.zeros(5), batch_size=2)
    assert len(arrays.dataset) == 5 and isinstance(arrays.dataset, TensorDataset)


def test_normalize_and_standardize_are_exactly_torchvisions():
    image = np.arange(784, dtype=np.uint8).reshape(28, 28)
    out = transforms.Compose([transforms.ToTensor(),
                              transforms.Normalize((0.1307,), (0.3081,))])(image)
    expected = (image.astype(np.float32)[None] / np.float32(255) - np.float32(0.1307)) \
        / np.float32(0.3081)
    np.testing.assert_array_equal(host(out), expected)
    x = image.astype(np.float32) / np.float32(255)
    std_x, _, _ = standardize(x, np.float32(0.1307), np.float32(0.3081))
    np.testing.assert_array_equal(std_x, (x - np.float32(0.1307)) / np.float32(0.3081))
