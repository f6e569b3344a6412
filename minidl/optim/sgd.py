"""Stochastic gradient descent with heavy-ball or Nesterov momentum (torch.optim.SGD)."""

from __future__ import annotations

from minidl.optim.optimizer import Optimizer, check_flag


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum. Same defaults and trajectory as
    torch.optim.SGD.

    Papers: H. Robbins, S. Monro, "A Stochastic Approximation Method", Ann. Math. Statist.
    22(3):400-407, 1951. Momentum: B. T. Polyak 1964 (heavy ball); I. Sutskever, J. Martens,
    G. Dahl, G. Hinton, "On the importance of initialization and momentum in deep learning",
    ICML 2013. Nesterov form: Y. Bengio, N. Boulanger-Lewandowski, R. Pascanu, "Advances in
    Optimizing Recurrent Networks", arXiv:1212.0901.

    With g_t = grad_t + weight_decay * p   (or -grad_t + weight_decay * p when maximize):

        momentum == 0:   p <- p - lr * g_t
        momentum > 0:    b_1 = g_1                                  (first buffer is NOT damped)
                         b_t = momentum * b_{t-1} + (1 - dampening) * g_t      (t > 1)
                         p <- p - lr * b_t                          (heavy ball)
                         p <- p - lr * (g_t + momentum * b_t)       (nesterov=True)

    For constant lr the heavy-ball form equals Sutskever's v <- mu v - lr g, p <- p + v with
    v = -lr b; when lr changes (schedules) torch's form rescales the accumulated velocity too.
    The Nesterov form equals the Bengio/cs231n look-ahead reformulation, step 1 included.

    Args:
        params: Parameters, a Module, or param-group dicts.
        lr: learning rate (default 1e-3, as torch >= 2.1).
        momentum: momentum factor mu >= 0 (default 0: plain SGD).
        dampening: tau in [0, 1], scales the new gradient in the buffer from step 2 (default 0).
        weight_decay: coupled L2 penalty lambda, added to the gradient (default 0).
        nesterov: use Nesterov momentum; needs momentum > 0 and dampening == 0 (default False).
        maximize: ascend the objective instead of descending (keyword-only, default False).
            As in torch, the gradient is negated before the decay is added, so decay still
            shrinks the parameters.

    State per parameter: momentum_buffer (b, created from the first gradient; only when
    momentum > 0).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def validate(self, group: dict) -> None:
        super().validate(group)
        for flag in ("nesterov", "maximize"):
            check_flag(flag, group[flag])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def init_state(self, p, group: dict) -> dict:
        return {}  # momentum_buffer starts as a copy of the first gradient (b_1 = g_1)

    multi_tensor = True  # elementwise: a group updates as one flat buffer (optim/flat.py)

    def gradient(self, p, group: dict):
        """-p.grad when maximizing: torch negates the raw gradient, then adds the decay."""
        return -p.grad if group["maximize"] else p.grad

    def update(self, p, grad, state: dict, group: dict) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        if momentum == 0:
            p.data -= lr * grad
            return
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.copy()  # grad may alias p.grad: copy
        else:
            buf *= momentum
            dampening = float(group["dampening"])
            buf += (1 - dampening) * grad if dampening else grad
        if group["nesterov"]:
            step = buf * momentum
            step += grad
            step *= lr
            p.data -= step
        else:
            p.data -= lr * buf
