"""Matrix products: matmul (batched, NumPy semantics) and linear, the fused Dense layer op."""

from __future__ import annotations

from minidl.autograd import Function, Tensor
from minidl.backend import xp_of
from minidl.ops.elementwise import ones_vector, unbroadcast


class MatMul(Function):
    """z = a @ b with NumPy's rules (1-D operands, batched stacks with broadcasting).

    dL/da = g @ b^T,   dL/db = a^T @ g   (T swaps the last two axes), each unbroadcast.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: operands must have at least one dimension; use * for scalars")
        ka, kb = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                f"(inner dimensions {ka} != {kb})"
            )
        self.save_for_backward(a, b)
        try:
            return a @ b
        except ValueError:  # batch axes that do not broadcast
            raise ValueError(
                f"matmul: batch dimensions of shapes {a.shape} and {b.shape} do not broadcast"
            ) from None

    def backward(self, g):
        a, b = self.saved
        xp = xp_of(g)
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is a scalar
            return g * b, g * a
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """z = x @ W + b for x of shape (..., in), W (in, out), b (out,) or None.

    dL/dx = g @ W^T;  dL/dW = x^T g;  dL/db = sum_n g_n,
    where the sums run over all leading axes of x.
    """

    def forward(self, x, w, b=None):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not fit weight of shape {w.shape} "
                f"(expected (..., {w.shape[0] if w.ndim == 2 else '?'}))"
            )
        if b is not None and b.shape != (w.shape[1],):
            # a (1, out) bias would broadcast in forward but get a (out,) gradient in backward
            raise ValueError(f"linear: bias of shape {b.shape} does not fit weight of shape "
                             f"{w.shape} (expected ({w.shape[1]},))")
        self.x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])
        self.save_for_backward(x2, w)
        out = x2 @ w
        if b is not None:
            out += b
        return out.reshape(*x.shape[:-1], w.shape[1])

    def backward(self, g):
        x2, w = self.saved
        xp = xp_of(g)
        g2 = g.reshape(-1, g.shape[-1])
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        gx = (g2 @ w.T).reshape(self.x_shape) if need_x else None
        gw = None
        if need_w:  # in the weight's own layout: a transposed view (Linear's (out, in)
            # weight) gets the transpose of a C-ordered product, so no copy follows
            transposed = w.flags.f_contiguous and not w.flags.c_contiguous
            gw = (g2.T @ x2).T if transposed else x2.T @ g2
        # column sums as a matrix-vector product with ones: faster than g2.sum(axis=0)
        gb = ones_vector(xp, g2.shape[0], g2.dtype) @ g2 if need_b else None
        return gx, gw, gb


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy semantics (see MatMul)."""
    return MatMul.apply(a, b)


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight + bias in one node (see Linear)."""
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
