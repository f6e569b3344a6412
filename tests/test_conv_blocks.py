"""The CPU speed paths of convolution and pooling compute exactly what the plain ones do:
col2im in blocks of images (any block size, blocks not dividing the batch) and max-pool
backward given its gradient in another memory layout than its activations."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.ops import conv
from minidl.ops.conv import conv2d, max_pool2d


def _conv_grads(x0, w0, stride, padding):
    x, w = md.Tensor(x0, requires_grad=True), md.Tensor(w0, requires_grad=True)
    z = conv2d(x, w, stride=stride, padding=padding)
    z.backward(np.cos(np.arange(z.size, dtype=x0.dtype)).reshape(z.shape))
    return x.grad, w.grad, z.shape


@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (1, 2), (2, 3)])
@pytest.mark.parametrize("padding", [0, 1])
def test_col2im_in_blocks_of_images_equals_one_block(monkeypatch, stride, padding):
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((5, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2))
    whole = _conv_grads(x0, w0, stride, padding)
    monkeypatch.setattr(conv, "COL_BLOCK", 2 * 3 * 3 * 2 * 8 * 6)  # about 2 images a block
    blocks = _conv_grads(x0, w0, stride, padding)
    monkeypatch.setattr(conv, "COL_BLOCK", 1)  # one image at a time
    single = _conv_grads(x0, w0, stride, padding)
    for a, b, c in zip(whole[:2], blocks[:2], single[:2]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # and x's gradient against its definition, the transposed convolution of the upstream
    # gradient, summed here offset by offset
    (sh, sw), shape = stride, whole[2]
    g = np.cos(np.arange(np.prod(shape))).reshape(shape)
    expect = np.zeros((5, 3, 7 + 2 * padding, 6 + 2 * padding))
    for i in range(3):
        for j in range(2):
            expect[:, :, i:i + sh * (shape[2] - 1) + 1:sh, j:j + sw * (shape[3] - 1) + 1:sw] += \
                np.einsum("nopq,oc->ncpq", g, w0[:, :, i, j])
    crop = expect[:, :, padding:padding + 7, padding:padding + 6]
    np.testing.assert_allclose(whole[0], crop, rtol=1e-12, atol=1e-12)


def test_max_pool_backward_with_a_batch_major_gradient_of_channel_major_activations():
    """Conv outputs are channel-major views; a gradient from Flatten arrives batch-major.
    The routing (first maximum of each window, ties included) must not depend on that."""
    rng = np.random.default_rng(1)
    a = np.round(rng.random((3, 4, 6, 6)) * 2) / 2  # many ties
    channel_major = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    g = rng.standard_normal((3, 4, 3, 3))
    grads = []
    for x0 in (a, channel_major):
        x = md.Tensor(x0, requires_grad=True)
        max_pool2d(x, 2).backward(g)
        grads.append(x.grad)
    expect = np.zeros_like(a)  # first maximum in row-major window order takes g
    for n in range(3):
        for c in range(4):
            for p in range(3):
                for q in range(3):
                    window = a[n, c, 2 * p:2 * p + 2, 2 * q:2 * q + 2]
                    i, j = np.unravel_index(np.argmax(window), (2, 2))
                    expect[n, c, 2 * p + i, 2 * q + j] = g[n, c, p, q]
    for got in grads:
        np.testing.assert_array_equal(got, expect)
