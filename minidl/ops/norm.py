"""Batch normalisation and dropout: the ops whose behaviour depends on a training flag (their
layers in minidl.nn.norm switch it with train()/eval()). Dropout lives here rather than in a
module of its own, whose name would collide with the `minidl.ops.dropout` function."""

from __future__ import annotations

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.backend import xp_of


class BatchNormalization(Function):
    """Batch normalisation (Ioffe & Szegedy 2015, arXiv:1502.03167) of x (N, C, *spatial), one
    statistic per channel C over the batch and spatial axes; m = N * prod(spatial).

    training:  mu = mean(x),  var = mean((x - mu)^2)  (biased),  xhat = (x - mu) / sqrt(var + eps)
               running_mean <- (1 - momentum) running_mean + momentum mu
               running_var  <- (1 - momentum) running_var + momentum var * m / (m - 1)  (unbiased)
    eval:      mu, var = running_mean, running_var
    both:      z = gamma * xhat + beta     (gamma, beta: (C,) or None for no affine transform)
    backward:  dL/dbeta = sum g,  dL/dgamma = sum g xhat, and in training (mu, var depend on x)
               dL/dx = gamma / sqrt(var + eps) * (g - dL/dbeta / m - xhat dL/dgamma / m)
               (in eval, dL/dx = gamma / sqrt(var + eps) * g).
    Running statistics are updated in place, as in PyTorch.
    """

    def forward(self, x, gamma=None, beta=None, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        xp = xp_of(x)
        if x.ndim < 2:
            raise ValueError(f"batch_norm: expected (N, C, ...) input, got shape {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)  # broadcasts a (C,) vector over x
        m = x.size // x.shape[1]
        if training:
            if m < 2:
                raise ValueError(f"batch_norm: training needs more than one value per channel, "
                                 f"got input of shape {x.shape}")
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(shape)
            var = (xc * xc).mean(axis=axes)
            if running_mean is not None:
                running_mean *= 1.0 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1.0 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm: eval mode needs running_mean and running_var")
            mean, var = running_mean, running_var
            xc = x - mean.reshape(shape)
        inv_std = 1.0 / xp.sqrt(var + eps)
        xhat = xc * inv_std.reshape(shape)
        out = xhat if gamma is None else xhat * gamma.reshape(shape)
        if beta is not None:
            out = out + beta.reshape(shape)
        self.save_for_backward(xhat, inv_std, gamma)
        self.axes, self.shape, self.m, self.training = axes, shape, m, training
        return out

    def backward(self, g):
        xhat, inv_std, gamma = self.saved
        axes, shape, m = self.axes, self.shape, self.m
        # z = gamma xhat + beta  ->  dbeta = sum g,  dgamma = sum g xhat,  dxhat = gamma g
        gbeta = g.sum(axis=axes)
        ggamma = (g * xhat).sum(axis=axes)
        scale = inv_std if gamma is None else gamma * inv_std
        if not self.needs_input_grad[0]:
            gx = None
        elif not self.training:
            # xhat = (x - running_mean) * inv_std with constant statistics
            gx = g * scale.reshape(shape)
        else:
            # xhat = (x - mu) inv_std, mu = mean(x), var = mean((x - mu)^2): the paths through
            # mu and var add -mean(dxhat) and -xhat mean(dxhat xhat), where mean(dxhat) =
            # gamma dbeta / m and mean(dxhat xhat) = gamma dgamma / m
            gx = g - (gbeta / m).reshape(shape)
            gx -= xhat * (ggamma / m).reshape(shape)
            gx *= scale.reshape(shape)
        need_gamma = len(self.needs_input_grad) > 1 and self.needs_input_grad[1]
        need_beta = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        return gx, ggamma if need_gamma else None, gbeta if need_beta else None


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation of (N, C), (N, C, L) or (N, C, H, W) inputs (see BatchNormalization).

    gamma, beta: (C,) Tensors or None. running_mean, running_var: (C,) arrays updated in place
    in training mode (None: no update), used instead of the batch statistics in eval mode.
    """
    return BatchNormalization.apply(x, gamma, beta, running_mean=running_mean,
                                    running_var=running_var, training=training,
                                    momentum=momentum, eps=eps)


class Dropout(Function):
    """Multiply by a fixed mask:  z = x * mask,  dL/dx = g * mask."""

    def forward(self, x, mask=None):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return (g * self.mask,)


def dropout(x, p: float, training: bool, rng=None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014, JMLR 15): in training, each element is zeroed
    with probability p and the survivors are scaled by 1 / (1 - p), so that E[z] = x and eval
    needs no rescaling. Identity (x itself) in eval or when p == 0.

    rng: the minidl.backend.Generator of the mask (default: minidl's stream, get_rng()).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    data = x.data if isinstance(x, Tensor) else x
    rng = backend.get_rng() if rng is None else rng
    if not isinstance(rng, backend.Generator):
        raise TypeError(f"dropout: rng must be a minidl.backend.Generator (one stream for NumPy "
                        f"and CuPy), got {type(rng).__name__}")
    mask = (rng.random(data.shape, data.dtype, backend.device_of(data)) >= p).astype(data.dtype)
    mask *= 1.0 / (1.0 - p)
    return Dropout.apply(x, mask=mask)
