"""Tests of convolution, pooling, batch norm, dropout (ops and layers) and the initialisers.

Every expected value comes from loops or formulas written out here, never from minidl's
helpers: a naive convolution, a naive im2col, naive pooling with explicit first-maximum routing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.autograd import Tensor
from minidl.gradcheck import gradcheck
from minidl.nn import init
from minidl.nn.conv import AvgPool2d, Conv2d, MaxPool2d
from minidl.nn.module import Parameter
from minidl.nn.norm import BatchNorm1d, BatchNorm2d, Dropout
from minidl.ops.conv import avg_pool2d, conv2d, conv2d_column_mean, max_pool2d
from minidl.ops.norm import batch_norm, dropout


def T(a, device, requires_grad=False, dtype=np.float64) -> Tensor:
    return Tensor(backend.to_device(np.asarray(a, dtype=dtype), device),
                  requires_grad=requires_grad)


def npy(t) -> np.ndarray:
    return backend.to_numpy(t.data if isinstance(t, Tensor) else t)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# --------------------------------------------------------------------------- naive oracles


def naive_im2col(x, kh, kw, stride, padding):
    """Rows (n, p, q), columns (c, i, j): row = the patch under output position (p, q)."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, c, h, w = x.shape
    xp_ = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp_[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = [xp_[b, :, p * sh:p * sh + kh, q * sw:q * sw + kw].reshape(-1)
            for b in range(n) for p in range(oh) for q in range(ow)]
    return np.array(rows), oh, ow


def naive_conv(x, w, b, stride, padding):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp_ = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp_[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for bi in range(n):
        for oc in range(o):
            for p in range(oh):
                for q in range(ow):
                    patch = xp_[bi, :, p * sh:p * sh + kh, q * sw:q * sw + kw]
                    out[bi, oc, p, q] = (patch * w[oc]).sum() + (0.0 if b is None else b[oc])
    return out


def naive_pool(x, k, stride, padding, kind, g=None):
    """Pooled output, and with g the input gradient: each max window's g goes to the first
    maximum in row-major order (strict > while scanning), average windows share g equally."""
    (kh, kw), (sh, sw), (ph, pw) = pair(k), pair(stride), pair(padding)
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp_ = np.full((n, c, h + 2 * ph, w + 2 * pw), fill)
    xp_[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    grad = np.zeros_like(xp_)
    for b in range(n):
        for ch in range(c):
            for p in range(oh):
                for q in range(ow):
                    r, s = p * sh, q * sw
                    if kind == "avg":
                        out[b, ch, p, q] = xp_[b, ch, r:r + kh, s:s + kw].sum() / (kh * kw)
                        if g is not None:
                            grad[b, ch, r:r + kh, s:s + kw] += g[b, ch, p, q] / (kh * kw)
                        continue
                    best = (r, s)
                    for i in range(kh):
                        for j in range(kw):
                            if xp_[b, ch, r + i, s + j] > xp_[b, ch, best[0], best[1]]:
                                best = (r + i, s + j)
                    out[b, ch, p, q] = xp_[b, ch, best[0], best[1]]
                    if g is not None:
                        grad[b, ch, best[0], best[1]] += g[b, ch, p, q]
    return out, grad[:, :, ph:ph + h, pw:pw + w]


# --------------------------------------------------------------------------- conv2d

CONV_CASES = [  # (x shape, w shape, stride, padding, bias)
    ((2, 1, 6, 6), (3, 1, 3, 3), 1, 0, True),
    ((2, 3, 7, 6), (4, 3, 3, 2), 1, 1, True),
    ((2, 3, 7, 8), (2, 3, 2, 3), 2, 0, False),
    ((1, 3, 6, 5), (2, 3, 3, 3), 2, 2, True),
    ((2, 1, 5, 7), (2, 1, 1, 3), (2, 1), (0, 1), False),
    ((3, 2, 4, 4), (3, 2, 4, 4), 1, 0, True),  # kernel covers the whole image
]


@pytest.mark.parametrize("xs, ws, stride, padding, bias", CONV_CASES)
def test_conv2d_forward_matches_naive_loops(device, xs, ws, stride, padding, bias):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    out = conv2d(T(x, device), T(w, device), T(b, device) if bias else None, stride, padding)
    np.testing.assert_allclose(npy(out), naive_conv(x, w, b if bias else None, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ws, stride, padding, bias", CONV_CASES)
def test_conv2d_gradcheck(device, xs, ws, stride, padding, bias):
    rng = np.random.default_rng(2)
    inputs = [T(rng.standard_normal(xs), device, True), T(rng.standard_normal(ws), device, True)]
    if bias:
        inputs.append(T(rng.standard_normal(ws[0]), device, True))
    assert gradcheck(lambda *a: conv2d(*a, stride=stride, padding=padding), inputs)


def test_conv2d_non_contiguous_input_and_float32(device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4, 2, 3)).transpose(2, 3, 0, 1)  # (2, 3, 5, 4), a strided view
    w, b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2)
    assert gradcheck(lambda a, c: conv2d(a, c, padding=1), [T(x, device, True), T(w, device, True)])
    out32 = conv2d(T(x, device, dtype=np.float32), T(w, device, dtype=np.float32),
                   T(b, device, dtype=np.float32), padding=1)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(npy(out32), naive_conv(x, w, b, 1, 1), rtol=1e-5, atol=1e-5)


def test_lenet_chain_gradcheck(device):
    # conv -> relu -> max pool -> conv: the gradient flows back through the channel-major views
    # that conv2d returns and pooling keeps
    rng = np.random.default_rng(16)
    inputs = [T(rng.standard_normal((2, 2, 8, 8)), device, True),
              T(rng.standard_normal((3, 2, 3, 3)), device, True),
              T(rng.standard_normal((4, 3, 2, 2)), device, True),
              T(rng.standard_normal(4), device, True)]

    def net(x, w1, w2, b2):
        h = max_pool2d(conv2d(x, w1, padding=1).relu(), 2)
        return conv2d(h, w2, b2, stride=2)

    assert gradcheck(net, inputs)


def test_conv2d_rejects_bad_shapes(device):
    x = T(np.zeros((1, 3, 5, 5)), device)
    with pytest.raises(ValueError, match="does not fit weight"):
        conv2d(x, T(np.zeros((2, 2, 3, 3)), device))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d(x, T(np.zeros((2, 3, 6, 6)), device))
    with pytest.raises(ValueError, match="stride must be an int or a pair"):
        conv2d(x, T(np.zeros((2, 3, 3, 3)), device), stride=(1, 1, 1))


def test_conv2d_center_offsets_only_the_weight_gradient(device):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), np.ones(3)
    mu = rng.standard_normal((2, 3, 2))
    g = rng.standard_normal((2, 3, 3, 4))  # output of stride (2, 2), padding 1
    from minidl.optim.input_offsets import centred_weight_grad

    ts = [T(x, device, True), T(w, device, True), T(b, device, True)]
    conv2d(*ts, stride=2, padding=1).backward(backend.to_device(g, device))
    gw1 = npy(centred_weight_grad((1, 2, 3), ts[1].grad, ts[2].grad, backend.to_device(mu, device)))
    cols, _, _ = naive_im2col(x, 3, 2, 2, 1)
    gmat = g.transpose(0, 2, 3, 1).reshape(-1, 3)  # rows (n, p, q) like the columns
    expected = ((cols - mu.reshape(-1)).T @ gmat).T.reshape(w.shape)
    np.testing.assert_allclose(gw1, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_column_mean_matches_naive_im2col(device):
    x = np.random.default_rng(5).standard_normal((3, 2, 7, 6))
    for k, s, p in [((3, 2), 1, 0), ((3, 3), 2, 1), ((2, 3), (1, 2), (1, 1))]:
        cols, _, _ = naive_im2col(x, *pair(k), s, p)
        got = conv2d_column_mean(T(x, device), k, s, p)
        np.testing.assert_allclose(npy(got), cols.mean(axis=0).reshape(2, *pair(k)), atol=1e-13)


# --------------------------------------------------------------------------- pooling

POOL_CASES = [  # (kernel, stride, padding): tiling, strided, overlapping, padded, non-square
    (2, None, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1), ((2, 3), (1, 2), (1, 0)), (2, 3, 0),
    # kernel == stride (the separable two-pass path): leftover rows/columns, padding, (2, 3)
    (3, None, 0), ((2, 3), None, 0), (2, None, 1), ((3, 2), None, (1, 1)), (1, None, 0),
]


def distinct_values(shape, seed):
    """Values at least 0.1 apart, so that finite differences never change a window's maximum."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(math.prod(shape)) * 0.1 - 3.0).reshape(shape)


@pytest.mark.parametrize("k, s, p", POOL_CASES)
def test_max_pool2d_forward_and_gradcheck_without_ties(device, k, s, p):
    x = distinct_values((2, 3, 7, 6), seed=6)
    expected, _ = naive_pool(x, k, k if s is None else s, p, "max")
    np.testing.assert_array_equal(npy(max_pool2d(T(x, device), k, s, p)), expected)
    assert gradcheck(lambda a: max_pool2d(a, k, s, p), [T(x, device, True)], eps=1e-3)


@pytest.mark.parametrize("k, s, p", POOL_CASES)
def test_max_pool2d_ties_route_to_the_first_maximum_only(device, k, s, p):
    # MNIST-like: a flat zero background with a few bright strokes, so most windows are ties
    x = np.zeros((2, 2, 8, 7))
    x[0, 0, 2:5, 3] = 1.0
    x[1, 1, 5, 1:6] = 0.5
    x[1, 0, 6:, 4:] = -1.0  # all-negative corner: ties among the negatives as well
    stride = k if s is None else s
    g = np.random.default_rng(7).uniform(1, 2, naive_pool(x, k, stride, p, "max")[0].shape)
    t = T(x, device, True)
    max_pool2d(t, k, s, p).backward(backend.to_device(g, device))
    _, expected = naive_pool(x, k, stride, p, "max", g)
    np.testing.assert_array_equal(npy(t.grad) != 0, expected != 0)  # the same elements chosen
    np.testing.assert_allclose(npy(t.grad), expected, rtol=1e-14)  # overlaps add in any order
    assert np.isclose(npy(t.grad).sum(), g.sum())  # every window's gradient delivered once
    if stride == pair(k):  # non-overlapping: exactly one element per window gets anything
        assert np.count_nonzero(npy(t.grad)) == g.size


def test_max_pool2d_tie_goes_to_row_major_first_element(device):
    x = np.array([[[[0.0, 1.0], [1.0, 1.0]]]])
    t = T(x, device, True)
    max_pool2d(t, 2).backward(backend.to_device(np.array([[[[3.0]]]]), device))
    np.testing.assert_array_equal(npy(t.grad), [[[[0.0, 3.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("k, s, p", POOL_CASES)
def test_avg_pool2d_forward_and_gradcheck(device, k, s, p):
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 6))
    stride = k if s is None else s
    g = np.random.default_rng(9).standard_normal(naive_pool(x, k, stride, p, "avg")[0].shape)
    expected, expected_grad = naive_pool(x, k, stride, p, "avg", g)
    t = T(x, device, True)
    out = avg_pool2d(t, k, s, p)
    np.testing.assert_allclose(npy(out), expected, atol=1e-14)
    out.backward(backend.to_device(g, device))
    np.testing.assert_allclose(npy(t.grad), expected_grad, atol=1e-14)
    assert gradcheck(lambda a: avg_pool2d(a, k, s, p), [T(x, device, True)])


def test_pooling_rejects_bad_geometry(device):
    x = T(np.zeros((1, 1, 4, 4)), device)
    with pytest.raises(ValueError, match="at most half the kernel"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        avg_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        max_pool2d(T(np.zeros((4, 4)), device), 2)


# --------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(device, shape, training):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    running = [backend.to_device(rng.standard_normal(3), device),
               backend.to_device(rng.uniform(0.5, 2, 3), device)]

    def fn(a, gm, bt):  # fresh copies: training updates the running statistics in place
        return batch_norm(a, gm, bt, running[0].copy(), running[1].copy(), training)

    inputs = [T(x, device, True), T(gamma, device, True), T(beta, device, True)]
    assert gradcheck(fn, inputs, atol=1e-6, rtol=1e-5)
    assert gradcheck(lambda a: batch_norm(a, None, None, running[0].copy(), running[1].copy(),
                                          training), inputs[:1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
def test_batch_norm_values_and_running_statistics(device, shape):
    rng = np.random.default_rng(11)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = backend.to_device(np.zeros(3), device), backend.to_device(np.ones(3), device)
    exp_rm, exp_rv = np.zeros(3), np.ones(3)
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, 3) + (1,) * (len(shape) - 2)
    for _ in range(3):
        x = rng.standard_normal(shape) * 3 + 2
        out = batch_norm(T(x, device), T(gamma, device), T(beta, device), rm, rv, True,
                         momentum=0.2, eps=1e-3)
        m = x.size // 3
        mean = x.sum(axis=axes) / m
        var_biased = ((x - mean.reshape(bshape)) ** 2).sum(axis=axes) / m
        var_unbiased = var_biased * m / (m - 1)
        expected = (gamma.reshape(bshape) * (x - mean.reshape(bshape))
                    / np.sqrt(var_biased.reshape(bshape) + 1e-3) + beta.reshape(bshape))
        np.testing.assert_allclose(npy(out), expected, rtol=1e-12, atol=1e-12)
        exp_rm, exp_rv = 0.8 * exp_rm + 0.2 * mean, 0.8 * exp_rv + 0.2 * var_unbiased
        np.testing.assert_allclose(npy(rm), exp_rm, rtol=1e-12)
        np.testing.assert_allclose(npy(rv), exp_rv, rtol=1e-12)
    # eval: the running statistics normalise, and nothing is updated
    x = rng.standard_normal(shape)
    out = batch_norm(T(x, device), T(gamma, device), T(beta, device), rm, rv, False, eps=1e-3)
    expected = (gamma.reshape(bshape) * (x - exp_rm.reshape(bshape))
                / np.sqrt(exp_rv.reshape(bshape) + 1e-3) + beta.reshape(bshape))
    np.testing.assert_allclose(npy(out), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(npy(rm), exp_rm, rtol=1e-12)


def test_batch_norm_errors(device):
    rm, rv = backend.to_device(np.zeros(2), device), backend.to_device(np.ones(2), device)
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_norm(T(np.ones((1, 2)), device), None, None, rm, rv, True)
    with pytest.raises(ValueError, match="eval mode needs"):
        batch_norm(T(np.ones((3, 2)), device), None, None, None, None, False)


def test_batchnorm_layers(device):
    bn = BatchNorm2d(3, momentum=None, device=device, dtype=np.float64)
    assert repr(bn) == "BatchNorm2d(3, eps=1e-05, momentum=None, affine=True)"
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert bn.weight.input_axes == () and bn.bias.input_axes == ()
    rng = np.random.default_rng(12)
    xs = [rng.standard_normal((4, 3, 2, 2)) + k for k in range(3)]
    for x in xs:
        bn(T(x, device))
    # momentum=None: the running mean is the plain average of the batch means (as torch)
    batch_means = [x.mean(axis=(0, 2, 3)) for x in xs]
    np.testing.assert_allclose(npy(bn.running_mean), np.mean(batch_means, axis=0), rtol=1e-12)
    assert int(npy(bn.num_batches_tracked)) == 3
    assert "num_batches_tracked" in bn.state_dict()  # still a registered buffer
    bn.eval()
    frozen = npy(bn.running_mean).copy()
    bn(T(xs[0], device))
    np.testing.assert_array_equal(npy(bn.running_mean), frozen)
    assert int(npy(bn.num_batches_tracked)) == 3
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, H, W\)"):
        bn(T(np.ones((4, 3)), device))
    bn1 = BatchNorm1d(5, affine=False, device=device)
    assert list(bn1.parameters()) == [] and bn1.weight is None
    assert bn1(T(rng.standard_normal((6, 5, 4)), device, dtype=np.float32)).shape == (6, 5, 4)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)


# --------------------------------------------------------------------------- dropout


def test_dropout(device):
    x = T(np.random.default_rng(13).uniform(1, 2, (200, 500)), device, True)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    minidl.manual_seed(42)
    out = dropout(x, 0.3, training=True)
    kept = npy(out) != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # 100 000 draws: std of the fraction is 0.0015
    np.testing.assert_allclose(npy(out)[kept], npy(x)[kept] / 0.7, rtol=1e-12)
    assert abs(npy(out).mean() / npy(x).mean() - 1) < 0.01  # E[out] = x
    out.backward(backend.to_device(np.ones(x.shape), device))
    np.testing.assert_allclose(npy(x.grad), kept / 0.7, rtol=1e-12)
    minidl.manual_seed(42)
    np.testing.assert_array_equal(npy(dropout(x, 0.3, training=True)), npy(out))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(x, 1.0, training=True)


def test_dropout_layer(device):
    layer = Dropout(0.25)
    assert repr(layer) == "Dropout(p=0.25)"
    x = T(np.ones((50, 40)), device)
    assert not np.all(npy(layer(x)) == 1.0)
    assert set(np.unique(npy(layer(x)))) <= {0.0, 1 / 0.75}
    layer.eval()
    assert layer(x) is x
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout probability"):
            Dropout(p)


# --------------------------------------------------------------------------- layers


def test_conv_and_pool_layers(device):
    conv = Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), device=device)
    assert repr(conv) == ("Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), "
                          "bias=True)")
    names = [n for n, _ in conv.named_parameters()]
    assert names == ["weight", "bias"]
    assert conv.weight.shape == (8, 3, 3, 5) and conv.weight.input_axes == (1, 2, 3)
    assert conv.bias.shape == (8,) and conv.bias.input_axes == ()
    assert conv._parameters["weight"] is conv.weight and not conv._forward_pre_hooks
    bound = 1 / math.sqrt(3 * 3 * 5)  # PyTorch's default init
    assert np.abs(npy(conv.weight)).max() <= bound and np.abs(npy(conv.bias)).max() <= bound
    x = T(np.random.default_rng(14).standard_normal((2, 3, 9, 8)), device, dtype=np.float32)
    assert conv(x).shape == (2, 8, 5, 4)
    assert Conv2d(1, 2, 3, bias=False, device=device).bias is None
    assert [p.shape for p in Conv2d(1, 2, 3, bias=False).parameters()] == [(2, 1, 3, 3)]
    with pytest.raises(ValueError, match="unknown init"):
        Conv2d(1, 2, 3, init="orthogonal")
    he = Conv2d(4, 6, 3, init="he_normal", device=device)
    assert np.all(npy(he.bias) == 0)
    pool = MaxPool2d(2)
    assert repr(pool) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    assert list(pool.parameters()) == []
    assert repr(AvgPool2d(3, 1, 1)) == ("AvgPool2d(kernel_size=(3, 3), stride=(1, 1), "
                                        "padding=(1, 1))")
    assert pool(x).shape == (2, 3, 4, 4) and AvgPool2d(3, 1, 1)(x).shape == (2, 3, 9, 8)


def test_conv2d_layer_centres_weight_gradient_on_running_column_mean(device):
    """Through ADAS's pre-hook: each training batch joins the running column mean first, the
    step's weight gradient is centred on it, x and b gradients are the plain layer's."""
    from minidl.optim.adas import Adas

    rng = np.random.default_rng(15)
    conv = Conv2d(2, 3, (3, 2), stride=(1, 2), padding=1, device=device, dtype=np.float64)
    plain = Conv2d(2, 3, (3, 2), stride=(1, 2), padding=1, device=device, dtype=np.float64)
    plain.load_state_dict(conv.state_dict())
    opt = Adas(conv, offset_momentum=0.9)
    stats, group = opt.input_stats[0], opt.param_groups[0]
    mu = np.zeros((2, 3, 2))
    for step in range(2):
        x = rng.standard_normal((4, 2, 5, 6)) + step
        cols, oh, ow = naive_im2col(x, 3, 2, (1, 2), 1)
        g = rng.standard_normal((4, 3, oh, ow))
        for layer in (conv, plain):
            layer.zero_grad()
            xt = T(x, device, True)
            layer(xt).backward(backend.to_device(g, device))
            layer.last_x_grad = npy(xt.grad)
        n = cols.shape[0]
        assert stats.count == (step + 1) * n == (step + 1) * 4 * oh * ow
        keep = 0.9 ** n  # the per-sample decay over the batch's n columns
        mu = keep * mu + (1 - keep) * cols.mean(axis=0).reshape(2, 3, 2)  # joins first
        np.testing.assert_allclose(npy(stats.mean), mu, atol=1e-13)
        gmat = g.transpose(0, 2, 3, 1).reshape(-1, 3)
        expected = ((cols - mu.reshape(-1)).T @ gmat).T.reshape(3, 2, 3, 2)
        np.testing.assert_allclose(npy(opt.gradient(conv.weight, group)), expected,
                                   rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(npy(conv.bias.grad), gmat.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(conv.last_x_grad, plain.last_x_grad, rtol=1e-12, atol=1e-12)
    # eval: no update, but the gradient stays centred on the running mean
    count = stats.count
    conv.eval()
    conv.zero_grad()
    conv(T(x, device)).backward(backend.to_device(g, device))
    assert stats.count == count
    np.testing.assert_allclose(npy(opt.gradient(conv.weight, group)), expected,
                               rtol=1e-11, atol=1e-11)
    opt.close()  # hooks removed: the layer's own gradient was never touched
    np.testing.assert_allclose(npy(conv.weight.grad), (cols.T @ gmat).T.reshape(3, 2, 3, 2),
                               rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- init


def test_fan_in_fan_out():
    assert init.fan_in_fan_out((784, 256), (0,)) == (784, 256)  # Dense (in, out)
    assert init.fan_in_fan_out((16, 6, 5, 5), (1, 2, 3)) == (150, 400)  # Conv (out, in, kh, kw)
    assert init.fan_in_fan_out((10, 20), (1,)) == (20, 10)  # torch Linear (out, in)
    with pytest.raises(ValueError, match="no fan_in"):
        init.fan_in_fan_out((10,), ())


SCHEMES = {  # name: (normal?, variance as a function of fan_in, fan_out)
    "he_normal": (True, lambda i, o: 2 / i), "he_uniform": (False, lambda i, o: 2 / i),
    "glorot_normal": (True, lambda i, o: 2 / (i + o)),
    "glorot_uniform": (False, lambda i, o: 2 / (i + o)),
    "lecun_normal": (True, lambda i, o: 1 / i), "lecun_uniform": (False, lambda i, o: 1 / i),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("shape, axes, fans", [((300, 200), (0,), (300, 200)),
                                                ((64, 32, 3, 3), (1, 2, 3), (288, 576))])
def test_initialiser_statistics(device, name, shape, axes, fans):
    normal, variance = SCHEMES[name]
    std = math.sqrt(variance(*fans))
    xp = backend.xp_for(device)
    p = Parameter(xp.zeros(shape, dtype=np.float32), input_axes=axes)
    assert getattr(init, name)(p) is p
    v = npy(p).astype(np.float64)
    assert p.dtype == np.float32
    assert abs(v.std() / std - 1) < 0.02 and abs(v.mean()) < 0.02 * std  # >= 60 000 draws
    if not normal:  # U(-a, a), a = sqrt(3) std: inside, and reaching the ends
        a = math.sqrt(3) * std
        assert v.min() >= -a and v.max() <= a and v.max() > 0.999 * a and v.min() < -0.999 * a
    else:
        assert abs(np.mean(np.abs(v) > 2 * std) - 0.0455) < 0.005  # normal tails, not uniform


def test_torch_default_uniform_zeros_ones_and_seeding(device):
    xp = backend.xp_for(device)
    w = Parameter(xp.zeros((64, 16, 5, 5)), input_axes=(1, 2, 3))
    b = Parameter(xp.zeros(64))
    minidl.manual_seed(3)
    init.torch_default_uniform(w, b)
    a = 1 / math.sqrt(16 * 25)
    v = npy(w)
    assert v.max() <= a and v.min() >= -a and abs(v.std() / (a / math.sqrt(3)) - 1) < 0.02
    assert np.abs(npy(b)).max() <= a and npy(b).std() > 0
    minidl.manual_seed(3)
    again = Parameter(xp.zeros((64, 16, 5, 5)), input_axes=(1, 2, 3))
    init.torch_default_uniform(again)
    np.testing.assert_array_equal(npy(again), v)
    raw = xp.zeros((30, 20))
    with pytest.raises(ValueError, match="input_axes"):
        init.he_normal(raw)
    init.he_normal(raw, input_axes=(0,))
    assert abs(npy(raw).std() / math.sqrt(2 / 30) - 1) < 0.1
    assert np.all(npy(init.zeros(w)) == 0) and np.all(npy(init.ones(raw)) == 1)
