"""ADAS's input offsets, built on the generic forward pre-hooks of minidl.nn.Module.

The ADAS reference (C++, `struct layer`) takes each layer's weight gradient from its inputs
minus their running mean mu. For a layer y = W x + b (x: one input vector, one column of the
im2col matrix for a convolution) that gradient needs no help from the layer or its op: with
g the output gradients and the sums over every input vector of the batch,

    grad_W(x - mu) = sum (x - mu) g^T = grad_W(x) - outer(mu, grad_b)

(for Conv2d one mu per (in_channel, kh, kw) column). So an optimizer only needs

* a forward pre-hook that, in training mode, folds the batch into the running mean *before*
  the forward runs (the reference's order: the current batch joins the mean first), and
* at step time, the correction above, written into the optimizer's own gradient copy
  (`.grad` is never rewritten).

A layer qualifies when it holds exactly one weight with input axes (`Parameter.input_axes`) and
one bias with none, shaped like the weight's output axes. The inputs the weight sees follow
from its layout: one input axis (Dense: x of shape (..., in)), or (C, kh, kw) input axes for a
2-D convolution, whose geometry is read from the layer's `stride` and `padding`.

Semantics worth knowing:
* eval mode (`model.eval()`): the statistics do not change; the correction still applies.
* gradient accumulation over several forwards before one step: every training forward joins
  the mean, and the step corrects the summed gradient with the mean at step time. With one
  forward per step this is the reference exactly; with several it differs from offsetting
  each forward by its own mean by outer(mu_step - mu_f, grad_b_f), a drift of
  (1 - m^B) per forward (3e-4 at the defaults).
* a bias also used outside the layer (shared) makes grad_b include those uses too.
"""

from __future__ import annotations

from minidl import backend
from minidl.ops.conv import conv2d_column_mean, conv_output_size
from minidl.ops.elementwise import ones_vector


class InputStats:
    """Running mean of a layer's inputs, one value per input (Dense: per feature; Conv2d: per
    (in_channel, kh, kw) im2col column).

    The reference (ADAS C++, `struct layer`) updates an EMA once per *sample*:
    mu <- m * mu + (1 - m) * x. Over a batch of B samples with mean xbar this is applied as

        mu <- m^B * mu + (1 - m^B) * xbar

    which weighs the batch's samples equally instead of by m^(B-1-k); for m = 0.99999 and
    B = 32 the weights differ by at most B(1 - m) = 3.2e-4 relative.

    momentum: m, the per-sample decay (ADAS reference: 0.99999).
    debias: divide the running mean by 1 - m^count (as Adam's moments), so that the offsets are
        the plain mean of the inputs seen so far while count << 1/(1 - m), instead of starting
        near zero (the reference has no such correction: after one MNIST epoch its offsets
        reach only 45 % of the input mean).
    mean: the current running mean, uncorrected. count: samples seen. center(): the offsets.
    """

    def __init__(self, shape: tuple, momentum: float = 0.99999, device: str = "cpu",
                 dtype=None, debias: bool = False):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"InputStats momentum must be in [0, 1), got {momentum}")
        xp = backend.xp_for(device)
        self.momentum = float(momentum)
        self.debias = bool(debias)
        self.mean = xp.zeros(shape, dtype=dtype or backend.get_default_dtype())
        self.count = 0

    def update(self, batch_mean, count: int):
        """Fold a batch (its per-input mean over `count` samples) into the running mean;
        returns the new offsets (center())."""
        if batch_mean.shape != self.mean.shape:
            raise ValueError(
                f"InputStats: batch mean of shape {batch_mean.shape} does not match the "
                f"statistics' shape {self.mean.shape}"
            )
        keep = self.momentum ** count
        self.mean = self.mean * keep + batch_mean * (1.0 - keep)
        self.count += int(count)
        return self.center()

    def center(self):
        """The offsets subtracted from the inputs: the running mean, debiased if asked."""
        if not self.debias or self.count == 0:
            return self.mean
        return self.mean / (1.0 - self.momentum ** self.count)

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "debias": self.debias, "mean": self.mean.copy(),
                "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["mean"].shape) != self.mean.shape:
            raise ValueError(
                f"InputStats: saved mean of shape {tuple(state['mean'].shape)} does not match "
                f"{self.mean.shape}"
            )
        self.momentum = float(state["momentum"])
        self.debias = bool(state.get("debias", False))
        xp = backend.xp_of(self.mean)
        self.mean = xp.asarray(backend.to_device(state["mean"], backend.device_of(self.mean)),
                               dtype=self.mean.dtype).copy()
        self.count = int(state["count"])


def weight_and_bias(layer):
    """(weight, bias) of a layer that can take input offsets, else (None, reason)."""
    params = list(layer._parameters.values())
    weights = [p for p in params if p is not None and p.input_axes]
    others = [p for p in params if p is not None and not p.input_axes]
    if len(weights) != 1:
        return None, "has no weight with input axes" if not weights else "has several weights"
    w = weights[0]
    out_shape = tuple(n for a, n in enumerate(w.shape) if a not in w.input_axes)
    biases = [p for p in others if tuple(p.shape) == out_shape]
    if len(biases) != 1 or len(others) != 1:
        return None, ("has no bias: the offsets correct the weight gradient through the bias "
                      "gradient, grad_W(x - mu) = grad_W(x) - outer(mu, grad_b)")
    if len(w.input_axes) not in (1, 3) or (
            len(w.input_axes) == 3 and not all(hasattr(layer, a) for a in ("stride", "padding"))):
        return None, "has a weight layout that is neither dense nor a 2-D convolution"
    if len(w.input_axes) == 3 and (isinstance(layer.padding, str)
                                   or getattr(layer, "dilation", (1, 1)) != (1, 1)
                                   or getattr(layer, "groups", 1) != 1):
        return None, ("is a convolution with string padding, dilation or groups; offsets "
                      "need numeric padding, dilation 1 and groups 1")
    return (w, biases[0]), None


def batch_input_mean(layer, weight, x):
    """(mean input vector of the batch x, number of input vectors) for the layer's weight."""
    data = getattr(x, "data", x)
    if len(weight.input_axes) == 1:  # dense: x (..., in)
        x2 = data.reshape(-1, weight.shape[weight.input_axes[0]])
        count = x2.shape[0]
        return ones_vector(backend.xp_of(x2), count, x2.dtype) @ x2 / count, count
    kernel = tuple(weight.shape[a] for a in weight.input_axes[1:])
    stride, padding = layer.stride, layer.padding
    n, _, h, w = data.shape
    count = n * conv_output_size(h, kernel[0], stride[0], padding[0]) \
        * conv_output_size(w, kernel[1], stride[1], padding[1])
    return conv2d_column_mean(data, kernel, stride, padding), count


def fold_batch_hook(stats: InputStats, weight):
    """A forward pre-hook: in training mode, fold the batch into `stats` before the forward."""
    def hook(layer, args):
        if layer.training:
            stats.update(*batch_input_mean(layer, weight, args[0]))
    return hook


def centred_weight_grad(input_axes: tuple, grad_w, grad_b, center, out=None):
    """grad_W(x - mu) = grad_W(x) - outer(mu, grad_b), laid out along the weight's axes
    (`input_axes`: those of the weight that index its inputs). `out`: an optional array
    shaped like grad_w to write it to (no temporaries)."""
    xp = backend.xp_of(grad_w)
    in_shape = tuple(n if a in input_axes else 1 for a, n in enumerate(grad_w.shape))
    out_shape = tuple(1 if a in input_axes else n for a, n in enumerate(grad_w.shape))
    out = xp.multiply(center.reshape(in_shape), grad_b.reshape(out_shape), out=out)
    return xp.subtract(grad_w, out, out=out)
