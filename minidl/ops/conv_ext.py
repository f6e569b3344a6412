"""Conv2d's remaining PyTorch options, composed around the im2col convolution of ops.conv:
dilation (the kernel spread out with zeros), groups (channels split into independent
convolutions, concatenated) and padding='same' / 'valid' (torch's rule: for stride 1, the
total padding d*(k-1) per axis, the smaller half before and the larger after).
"""

from __future__ import annotations

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.ops.conv import as_pair, conv2d
from minidl.ops.shape import concatenate, getitem, pad, reshape


class DilateKernel(Function):
    """z = w with (d - 1) zeros between neighbouring taps of each spatial axis:
    z[..., i*dh, j*dw] = w[..., i, j], zero elsewhere.   dL/dw = g[..., ::dh, ::dw]."""

    def forward(self, w, dilation=(1, 1)):
        dh, dw = self.dilation = dilation
        kh, kw = w.shape[-2:]
        out = xp_of(w).zeros(w.shape[:-2] + ((kh - 1) * dh + 1, (kw - 1) * dw + 1), w.dtype)
        out[..., ::dh, ::dw] = w
        return out

    def backward(self, g):
        dh, dw = self.dilation
        return (g[..., ::dh, ::dw],)


def same_padding(kernel_size, dilation) -> tuple:
    """((top, bottom), (left, right)) keeping a stride-1 output the input's size, as torch."""
    pads = []
    for k, d in zip(kernel_size, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def conv2d_full(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: stride, padding (int, pair, 'same' or 'valid'), dilation,
    groups. weight is (out_channels, in_channels // groups, kh, kw); group i convolves input
    channels [i*C/groups, (i+1)*C/groups) into output channels [i*O/groups, (i+1)*O/groups).
    """
    dilation = as_pair(dilation, "dilation", 1)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
        if padding == "same":
            if as_pair(stride, "stride", 1) != (1, 1):
                raise ValueError("conv2d: padding='same' needs stride 1 (as torch)")
            (top, bottom), (left, right) = same_padding(weight.shape[-2:], dilation)
            if (top, left) != (bottom, right):  # uneven: pad x itself, then convolve unpadded
                x = pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
                padding = 0
            else:
                padding = (top, left)
        else:
            padding = 0
    if groups < 1 or x.shape[1] % groups or weight.shape[0] % groups \
            or weight.shape[1] * groups != x.shape[1]:
        raise ValueError(f"conv2d: groups={groups} does not fit input channels {x.shape[1]} "
                         f"and weight of shape {weight.shape} (expected (O, C/groups, kh, kw) "
                         f"with C and O divisible by groups)")
    if dilation != (1, 1):
        weight = DilateKernel.apply(weight, dilation=dilation)
    if groups == 1:
        return conv2d(x, weight, bias, stride, padding)
    c, o = x.shape[1] // groups, weight.shape[0] // groups
    outs = [conv2d(getitem(x, (slice(None), slice(i * c, (i + 1) * c))),
                   getitem(weight, slice(i * o, (i + 1) * o)), None, stride, padding)
            for i in range(groups)]
    out = concatenate(outs, axis=1)
    return out if bias is None else out + reshape(bias, (1, -1, 1, 1))
