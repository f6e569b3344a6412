"""The layer side of the input-offset protocol (used by the ADAS optimizer).

A layer that supports input offsets (Dense, Conv2d) lets an optimizer attach an `InputStats`
object. While one is attached, the layer

* in training mode, folds the batch into a running mean of its inputs *before* its op runs
  (as the ADAS reference does: the current batch joins the mean before the weight gradient is
  computed), and
* hands a snapshot of that mean to its op as `center`, so the weight gradient is taken from
  `input - running_mean`:  grad_W = (x - mu)^T g  (for Conv2d: per im2col column).

The forward output, the input gradient and the bias gradient are unchanged. Detaching (through
the handle that `attach_input_stats` returns) restores the plain layer. The optimizer owns the
statistics (they are part of its state_dict); nn never imports optim.
"""

from __future__ import annotations

from minidl import backend


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
    mean: the current running mean, uncorrected (a fresh array after every update, so a
        snapshot handed to an op stays valid). count: samples seen. center(): the offsets.
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


class InputStatsHandle:
    """Returned by `attach_input_stats`; `detach()` restores the layer's plain behaviour."""

    def __init__(self, layer, stats: InputStats):
        self.layer, self.stats = layer, stats

    def detach(self) -> None:
        if self.layer.input_stats is self.stats:
            self.layer.input_stats = None


class SupportsInputStats:
    """Mixin for layers that implement the protocol. The layer defines `input_stats_shape`
    (the shape of one input's statistics) and passes `self._input_center(batch_mean, count)`
    as `center` to its op in forward."""

    input_stats: InputStats | None = None

    @property
    def input_stats_shape(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def attach_input_stats(self, stats: InputStats) -> InputStatsHandle:
        """Attach running input statistics; the weight gradient is then taken from centred
        inputs. Returns a handle whose detach() undoes this."""
        if stats.mean.shape != self.input_stats_shape:
            raise ValueError(
                f"{type(self).__name__}: statistics of shape {stats.mean.shape}, layer inputs "
                f"need {self.input_stats_shape}"
            )
        if self.input_stats is not None:
            raise RuntimeError(f"{type(self).__name__} already has input statistics attached")
        self.input_stats = stats
        return InputStatsHandle(self, stats)

    def _input_center(self, batch_mean_fn, count: int):
        """The centre for this forward pass: None when nothing is attached; else the running
        mean, updated first with this batch in training mode. `batch_mean_fn()` computes the
        batch's per-input mean only when needed."""
        stats = self.input_stats
        if stats is None:
            return None
        if self.training:
            return stats.update(batch_mean_fn(), count)
        return stats.center()
