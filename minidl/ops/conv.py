"""Convolution and pooling (im2col) for NCHW images.

Images are (N, C, H, W) as in PyTorch. Inside the convolution the data is channel-major,
(C, N, H, W) in memory: im2col builds the column matrix (C*kh*kw, N*OH*OW) with one copy of a
strided view, one matmul with the weight as (O, C*kh*kw) (a free reshape) gives the output
already laid out (O, N, OH, OW), and the op returns it as an (N, O, OH, OW) view. ReLU and
pooling keep that layout, so the next convolution reads its input without a transpose copy.
Measured on the LeNet step of experiments/bench_conv.py: about 15 % less time than NHWC rows
with (kh, kw, c) columns (the best NHWC variant we tried). Pooling and col2im loop
over the kh*kw kernel offsets only, each a strided slice of the whole batch."""

from __future__ import annotations

import operator
from typing import NamedTuple

from minidl.autograd import Function, Tensor
from minidl.backend import is_cupy_array, xp_of
from minidl.ops.elementwise import ones_vector


def as_pair(value, name: str, minimum: int = 0) -> tuple[int, int]:
    """(value, value) for an int, the pair itself for a pair of ints, each >= minimum."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    try:
        pair = tuple(operator.index(v) for v in items)  # ints, numpy ints; not floats
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis: (size + 2p - k) // s + 1."""
    return (size + 2 * padding - kernel) // stride + 1


COL_BLOCK = 1 << 18  # column-gradient values per block of col2im on the CPU (1 MiB in float32;
# 4 MiB blocks were 2 % faster in a bench loop but doubled a LeNet epoch under `python -m
# minidl train`: glibc returned their pages to the kernel and faulted them back every step)

class _Window(NamedTuple):
    """Kernel (kh, kw), stride (sh, sw), padding (ph, pw) and output size (oh, ow)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    oh: int
    ow: int

    @classmethod
    def of(cls, h: int, w: int, kernel, stride, padding, name: str) -> _Window:
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
        if oh < 1 or ow < 1:
            raise ValueError(f"{name}: kernel {(kh, kw)} is larger than the padded input "
                             f"{(h + 2 * ph, w + 2 * pw)}")
        return cls(kh, kw, sh, sw, ph, pw, oh, ow)

    def offsets(self):
        """(i, j, index) for each kernel offset in row-major order: the index picks the
        elements that offset sees at every output position, of an array ending in (Hp, Wp)."""
        for i in range(self.kh):
            for j in range(self.kw):
                yield i, j, (..., slice(i, i + self.sh * (self.oh - 1) + 1, self.sh),
                             slice(j, j + self.sw * (self.ow - 1) + 1, self.sw))


def _padded(x, ph: int, pw: int, fill: float):
    """x with its last two axes padded by (ph, pw) on both sides with `fill` (x when no padding)."""
    if ph == 0 and pw == 0:
        return x
    xp = xp_of(x)
    out = xp.full(x.shape[:-2] + (x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), fill, x.dtype)
    out[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
    return out


def _cropped(x, ph: int, pw: int):
    return x[..., ph:x.shape[-2] - ph, pw:x.shape[-1] - pw]


def _im2col(xc, win: _Window):
    """Columns of the channel-major padded input xc (C, N, Hp, Wp): (C*kh*kw, N*oh*ow) with
    cols[(c, i, j), (n, p, q)] = xc[c, n, p*sh + i, q*sw + j]; one copy of a strided view."""
    xp = xp_of(xc)
    c, n = xc.shape[:2]
    s_c, s_n, s_h, s_w = xc.strides
    view = xp.lib.stride_tricks.as_strided(
        xc, (c, win.kh, win.kw, n, win.oh, win.ow),
        (s_c, s_h, s_w, s_n, s_h * win.sh, s_w * win.sw))
    return xp.ascontiguousarray(view).reshape(c * win.kh * win.kw, n * win.oh * win.ow)


class Convolution2D(Function):
    """2-D cross-correlation (PyTorch's conv2d): x (N, C, H, W), w (O, C, kh, kw), b (O,) or None

        z[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*sh + i, q*sw + j]

    With X the im2col matrix (C*kh*kw, N*OH*OW) and W the weight as (O, C*kh*kw): Z = W X + b.
        dL/dW = G X^T      (G = dL/dZ as (O, N*OH*OW))
        dL/db = sum_cols G  (a matrix-vector product with a cached vector of ones: one
                             BLAS call, faster than a reduction over the long axis)
        dL/dx = col2im(W^T G): each column's gradient added back to the pixels it was copied from
    """

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            expected = f"(N, {w.shape[1]}, H, W)" if w.ndim == 4 else "a 4-D weight"
            raise ValueError(f"conv2d: input of shape {x.shape} does not fit weight of shape "
                             f"{w.shape} (expected {expected})")
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        win = _Window.of(h, wd, (kh, kw), stride, padding, "conv2d")
        if b is not None and b.shape != (o,):
            raise ValueError(f"conv2d: bias of shape {b.shape}, expected ({o},)")
        xc = _padded(x.transpose(1, 0, 2, 3), win.ph, win.pw, 0.0)  # channel-major (C,N,Hp,Wp)
        cols = _im2col(xc, win)
        wm = w.reshape(o, c * kh * kw)
        out = wm @ cols
        if b is not None:
            out += b[:, None]
        self.save_for_backward(cols, wm)
        self.xc_shape, self.win = xc.shape, win
        return out.reshape(o, n, win.oh, win.ow).transpose(1, 0, 2, 3)

    def backward(self, g):
        cols, wm = self.saved
        xp = xp_of(g)
        win = self.win
        need_x, need_w, need_b = self.needs_input_grad
        gm = g.transpose(1, 0, 2, 3).reshape(wm.shape[0], -1)  # (O, N*OH*OW): free when g is
        gb = gm @ ones_vector(xp, gm.shape[1], gm.dtype) if need_b else None  # channel-major,
        gw = None                                                          # as ours are
        if need_w:  # the same sums either way; OpenBLAS runs the first form 1.3-2.4x faster
            # when the columns have at least as many rows as there are output channels
            # (measured on the LeNet and PyTorch-example layers; bit-identical results with
            # its SkylakeX kernels, last-bit differences with its Haswell ones)
            gw = (cols @ gm.T).T if cols.shape[0] >= gm.shape[0] else gm @ cols.T
            gw = gw.reshape(wm.shape[0], -1, win.kh, win.kw)
        gx = None
        if need_x:
            gx = _cropped(self._col2im(wm.T, gm), win.ph, win.pw).transpose(1, 0, 2, 3)
        return gx, gw, gb

    def _col2im(self, wt, gm):
        """dL/dxc (C, N, Hp, Wp) from wt = W^T (C*kh*kw, O) and gm = G (O, N*oh*ow): the
        column gradients W^T G, each offset's columns added back onto the pixels they were
        copied from (kh*kw strided adds).

        With column stride 1 the adds run on whole image planes: G is spread to rows of the
        padded row length (`wide`, zeros between rows), so W^T G holds each offset's
        gradient laid out as the plane itself, shifted by i*Wp + j; one contiguous add of
        length (oh-1)*sh*Wp + ow per offset instead of oh*N short rows. The zeros add +-0:
        the same sums, bit for bit. On the CPU a few images at a time, so that each block of
        W^T G is added back while it is still in cache."""
        xp, win = xp_of(gm), self.win
        c, n, hp, wp = self.xc_shape
        o = gm.shape[0]
        gxc = xp.zeros(self.xc_shape, dtype=gm.dtype)
        flat_rows = win.sw == 1
        row = win.sh * wp if flat_rows else win.ow  # columns per output row in W^T G
        per_image = win.oh * row
        images = n if is_cupy_array(gm) else COL_BLOCK // (wt.shape[0] * per_image)
        images = max(1, min(images, n))
        g4 = gm.reshape(o, n, win.oh, win.ow)
        if flat_rows:
            wide = xp.zeros((o, images, win.oh, row), dtype=gm.dtype)
            length = (win.oh - 1) * row + win.ow
        for start in range(0, n, images):
            stop = min(start + images, n)
            if flat_rows:
                block = wide[:, :stop - start]
                block[..., :win.ow] = g4[:, start:stop]
                gcols = (wt @ block.reshape(o, -1)).reshape(c, win.kh, win.kw, stop - start, -1)
                planes = gxc[:, start:stop].reshape(c, stop - start, hp * wp)
                for i, j, _ in win.offsets():
                    view = planes[..., i * wp + j:i * wp + j + length]
                    xp.add(view, gcols[:, i, j, :, :length], out=view)
                continue
            gcols = (wt @ g4[:, start:stop].reshape(o, -1)).reshape(
                c, win.kh, win.kw, stop - start, win.oh, win.ow)
            part = gxc[:, start:stop]
            for i, j, index in win.offsets():
                view = part[index]  # in place into the view: x[idx] += y would also
                xp.add(view, gcols[:, i, j], out=view)  # write the view back (a launch)
        return gxc


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """2-D convolution of NCHW images (see Convolution2D); stride and padding: int or pair."""
    return Convolution2D.apply(x, weight, bias, stride=as_pair(stride, "stride", 1),
                               padding=as_pair(padding, "padding"))


def conv2d_column_mean(x, kernel_size, stride=1, padding=0):
    """Mean of the im2col columns of x over batch and output positions, shape (C, kh, kw):

        mean[c, i, j] = 1/(N*OH*OW) * sum_{n,p,q} xpad[n, c, p*sh + i, q*sw + j]

    computed without building the columns: sum x over the batch first (one pass over x), then
    sum each offset's strided window of that (C, Hp, Wp) image. A raw array (no gradient);
    ADAS's input offsets use it.
    """
    data = x.data if isinstance(x, Tensor) else x
    n, c, h, w = data.shape
    win = _Window.of(h, w, as_pair(kernel_size, "kernel_size", 1), as_pair(stride, "stride", 1),
                     as_pair(padding, "padding"), "conv2d_column_mean")
    xp = xp_of(data)
    total = _padded(data.sum(axis=0), win.ph, win.pw, 0.0)  # (C, Hp, Wp)
    s_c, s_h, s_w = total.strides
    windows = xp.lib.stride_tricks.as_strided(
        total, (c, win.kh, win.kw, win.oh, win.ow),
        (s_c, s_h, s_w, s_h * win.sh, s_w * win.sw))
    return windows.sum(axis=(3, 4)) / (n * win.oh * win.ow)


# --------------------------------------------------------------------------- pooling


def _pool_window(x, kernel_size, stride, padding, name) -> _Window:
    kernel = as_pair(kernel_size, "kernel_size", 1)
    stride = as_pair(kernel_size if stride is None else stride, "stride", 1)
    padding = as_pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected (N, C, H, W) input, got shape {x.shape}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    return _Window.of(x.shape[2], x.shape[3], kernel, stride, padding, name)


def _in_layout_of(like, a):
    """`a` with the memory layout (axis order) of `like`, copied once if it differs: a
    gradient arriving batch-major (from a Flatten) meets channel-major activations, and every
    elementwise pass over arrays of different layouts walks one of them with large strides."""
    if a.strides == like.strides:
        return a
    out = xp_of(like).empty_like(like)
    out[...] = a
    return out


def _pool_grad_buffer(xp, padded, win: _Window):
    """Zeros shaped like the padded input, or an uninitialised array when the windows tile it
    exactly (every element then gets written once)."""
    tiles = ((win.sh, win.sw) == (win.kh, win.kw)
             and padded.shape[2:] == (win.kh * win.oh, win.kw * win.ow))
    return xp.empty_like(padded) if tiles else xp.zeros_like(padded)


def _running(xp, op, views):
    """op (maximum, add) folded over equally shaped views, into a new array laid out as the
    first view's memory (copy, then in place)."""
    out = xp.copy(views[0], order="K")
    for view in views[1:]:
        op(out, view, out=out)
    return out


def _first_max(xp, candidates, best, g, targets, add: bool = False) -> None:
    """Route each window's gradient g to the first candidate (in order) equal to its maximum
    `best`: targets[k] gets (or, with add, adds) g where candidate k is that first one, else 0.
    A window that matches none (a NaN maximum) goes to the last candidate."""
    free = xp.ones_like(best, dtype=bool)  # windows whose maximum is not yet claimed
    hit = xp.empty_like(best, dtype=bool)
    for k, (candidate, target) in enumerate(zip(candidates, targets)):
        if k < len(candidates) - 1:
            xp.equal(candidate, best, out=hit)
            hit &= free
            free ^= hit
        else:  # the last candidate takes every window still unclaimed: it holds the max
            hit = free
        if add:
            xp.add(target, g * hit, out=target)
        else:
            xp.multiply(g, hit, out=target)


class MaxPooling2D(Function):
    """Max over (kh, kw) windows, stride (sh, sw), implicit -inf padding (PyTorch's max_pool2d):

        z[n, c, p, q] = max_{i,j} xpad[n, c, p*sh + i, q*sw + j]
        dL/dx: each window's g goes to ONE element, its first maximum in row-major (i, j) order
    (as PyTorch's CPU kernel). MNIST's flat background (runs of exact zeros) makes ties within
    a window common; routing g to every tied element instead hands each of them the whole
    gradient, and the convolution gradients below the pooling came out badly wrong that way.
    Overlapping windows add their contributions. The forward pass is a running maximum over
    the kh*kw strided slices (measured about 8x faster than reshape-then-max for 2x2).

    Non-overlapping windows (kernel == stride) write each gradient element once: no zero fill
    where the windows tile the input, a product instead of an accumulation. (Two separable
    passes, rows then columns, and a copy into window-major order were both measured slower:
    NumPy's cost here is its inner loops, ow elements long, not the arithmetic.)
    """

    def forward(self, x, win=None):
        xp = xp_of(x)
        xpad = _padded(x, win.ph, win.pw, -float("inf"))
        self.win = win
        out = _running(xp, xp.maximum, [xpad[index] for _, _, index in win.offsets()])
        self.save_for_backward(xpad, out)
        return out

    def backward(self, g):
        xp, win = xp_of(g), self.win
        xpad, out = self.saved
        g = _in_layout_of(out, g)
        gx = _pool_grad_buffer(xp, xpad, win)
        views = [(xpad[index], gx[index]) for _, _, index in win.offsets()]
        _first_max(xp, [v for v, _ in views], out, g, [t for _, t in views],
                   add=win.sh < win.kh or win.sw < win.kw)
        return (_cropped(gx, win.ph, win.pw),)


class AveragePooling2D(Function):
    """Mean over each (kh, kw) window with zero padding counted (count_include_pad=True):

        z[n, c, p, q] = 1/(kh*kw) * sum_{i,j} xpad[n, c, p*sh + i, q*sw + j]
        dL/dxpad[n, c, p*sh + i, q*sw + j] += g[n, c, p, q] / (kh*kw)
    """

    def forward(self, x, win=None):
        xp = xp_of(x)
        xpad = _padded(x, win.ph, win.pw, 0.0)
        out = _running(xp, xp.add, [xpad[index] for _, _, index in win.offsets()])
        out *= 1.0 / (win.kh * win.kw)
        self.padded_shape, self.win = xpad.shape, win
        return out

    def backward(self, g):
        xp = xp_of(g)
        win = self.win
        gx = xp.zeros(self.padded_shape, dtype=g.dtype)
        share = g * (1.0 / (win.kh * win.kw))
        for _, _, index in win.offsets():
            view = gx[index]
            xp.add(view, share, out=view)
        return (_cropped(gx, win.ph, win.pw),)


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling of NCHW images; stride defaults to kernel_size (see MaxPooling2D)."""
    data = x.data if isinstance(x, Tensor) else x
    win = _pool_window(data, kernel_size, stride, padding, "max_pool2d")
    return MaxPooling2D.apply(x, win=win)


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling of NCHW images, padding counted (see AveragePooling2D)."""
    data = x.data if isinstance(x, Tensor) else x
    win = _pool_window(data, kernel_size, stride, padding, "avg_pool2d")
    return AveragePooling2D.apply(x, win=win)
