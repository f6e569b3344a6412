"""The engine, not one op at a time: random expression graphs, gradchecked end to end.

A test of one op can never reveal a traversal bug in backward(): the bug only shows when a
tensor reaches an op along two different paths (x * x.sigmoid(), h + h @ W, x - x.mean()).
Here hypothesis builds random programs over every differentiable op and Tensor method the
package exports, deliberately with fan-out, diamonds, the same tensor on both sides of a binary
op, a tensor used both directly and through a chain by one op, broadcasting, 0-d and size-1
axes and reductions over negative axes, and checks the gradient of every input with float64
central differences (minidl.gradcheck). Ops with kinks (relu, abs, clip, maximum, max, ...)
reject examples whose inputs lie within 1e-3 of a kink, where a finite difference is not a
derivative; logs, roots, divisors and powers get positive inputs (x * x + 0.5).

Replay: hypothesis runs derandomized without a database (see SETTINGS), so every run draws the
same few hundred programs in the same order, on every machine. A failure prints the shrunk
program (the `steps` list: op name, operand node numbers, options) and reproduces by running the
same test again; `build_and_check` replays a printed program by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minidl.nn.functional as F
from minidl import backend, ops
from minidl.autograd import Tensor
from minidl.gradcheck import gradcheck

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=500,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
KINK_MARGIN = 1e-3  # far above the finite-difference step of 1e-6
MAX_ABS = 1e3  # larger values make the float64 differences too coarse to compare


def pos(a):
    """A positive function of a (for log, sqrt, division, fractional powers); a used twice."""
    return a * a + 0.5


def _gap(a, b) -> float:
    """Smallest |a - b| over the elements that differ; exact ties move together and are fine."""
    d = np.abs(np.asarray(a) - np.asarray(b))
    d = d[d > 0]
    return float(d.min()) if d.size else np.inf


def _extreme_gap(a, axis, pick) -> float:
    """How far the runner-up is from the max (pick=np.max) or min along axis (0 if near)."""
    a = np.asarray(a)
    best = pick(a, axis=axis, keepdims=True)
    d = np.abs(a - best)
    d = np.where(d > 0, d, np.inf)
    return float(d.min()) if d.size else np.inf


# ------------------------------------------------------------------ the op table
# name -> (arity, applies(shapes, options) -> bool, run(*tensors, **options), margin or None)
# `options` are drawn by OPTIONS[name] from the operand shapes; margin(*arrays, **options)
# measures the distance from a kink.


def _axis_options(draw, shapes):
    ndim = len(shapes[0])
    choices = [None] + list(range(-ndim, ndim))
    if ndim >= 2:
        choices.append((0, -1))
    return dict(axis=draw(st.sampled_from(choices)), keepdims=draw(st.booleans()))


def _one_axis(draw, shapes):
    ndim = len(shapes[0])
    return dict(axis=draw(st.integers(-ndim, ndim - 1)))


def _reduce_margin(pick):
    def margin(a, axis=None, keepdims=False):
        return _extreme_gap(a, axis if axis is None or isinstance(axis, int) else tuple(axis),
                            pick)
    return margin


def _permutation(draw, shapes):
    return dict(axes=tuple(draw(st.permutations(range(len(shapes[0]))))))


def _index(draw, shapes):
    n = shapes[0][0]
    kind = draw(st.sampled_from(["repeat", "slice", "int"]))
    if kind == "repeat":  # repeated integer indices add up in backward
        return dict(index=draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)))
    if kind == "slice":
        return dict(index=(Ellipsis, slice(None, None, -1)))
    return dict(index=draw(st.integers(-n, n - 1)))


def _pow_exponent(draw, shapes):
    return dict(exponent=draw(st.sampled_from([0, 1, 2, 3, -1.0, 0.5, 1.5])))


def _scalar_pow(a, exponent):
    # integer powers of any base; fractional and negative ones of a positive base
    return a ** exponent if isinstance(exponent, int) else pos(a) ** exponent


def _where_cond(draw, shapes):
    shape = np.broadcast_shapes(*shapes)
    return dict(cond=np.asarray(draw(st.lists(st.booleans(), min_size=int(np.prod(shape)),
                                              max_size=int(np.prod(shape))))).reshape(shape))


def _classes(draw, shapes):
    n, c = shapes[0]
    if draw(st.booleans()):
        return dict(target=np.array(draw(st.lists(st.integers(0, c - 1), min_size=n,
                                                  max_size=n))))
    p = np.asarray(draw(st.lists(st.floats(0.1, 1.0), min_size=n * c, max_size=n * c)))
    p = p.reshape(n, c)
    return dict(target=p / p.sum(axis=1, keepdims=True))


def _class_indices(draw, shapes):
    n, c = shapes[0]
    return dict(target=np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))))


def _none(draw, shapes):
    return {}


def _broadcasts(*shapes) -> bool:
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def _any(*shapes):
    return True


def _nd(k):
    return lambda *shapes: all(len(s) >= k for s in shapes)


def _equal(*shapes):
    return len(set(shapes)) == 1


def _mm(a, w):
    return len(a) >= 1 and a[-1] == w[0]


OPS = {
    # elementwise, one operand (Tensor methods where they exist, else the ops function)
    "neg": (1, _any, lambda a: -a, _none, None),
    "exp": (1, _any, lambda a: a.tanh().exp(), _none, None),
    "log": (1, _any, lambda a: pos(a).log(), _none, None),
    "sqrt": (1, _any, lambda a: pos(a).sqrt(), _none, None),
    "tanh": (1, _any, lambda a: a.tanh(), _none, None),
    "sigmoid": (1, _any, lambda a: a.sigmoid(), _none, None),
    "abs": (1, _any, lambda a: abs(a), _none, lambda a: _gap(a, 0)),
    "relu": (1, _any, lambda a: a.relu(), _none, lambda a: _gap(a, 0)),
    "leaky_relu": (1, _any, lambda a: ops.leaky_relu(a, 0.1), _none, lambda a: _gap(a, 0)),
    "clip": (1, _any, lambda a: a.clip(-0.5, 0.5), _none,
             lambda a: min(_gap(a, -0.5), _gap(a, 0.5))),
    "pow_scalar": (1, _any, _scalar_pow, _pow_exponent, None),
    "rpow": (1, _any, lambda a: 2.0 ** a.tanh(), _none, None),
    "rsub": (1, _any, lambda a: 1.5 - a, _none, None),
    "rdiv": (1, _any, lambda a: 3.0 / pos(a), _none, None),
    "scale": (1, _any, lambda a: a * 3.0, _none, None),
    "astype": (1, _any, lambda a: a.astype(np.float64), _none, None),
    "dropout": (1, _any, lambda a: ops.dropout(a, 0.3, True, rng=backend.Generator(5)),
                _none, None),
    "silu": (1, _any, lambda a: F.silu(a), _none, None),
    "gelu": (1, _any, lambda a: F.gelu(a), _none, None),
    "gelu_tanh": (1, _any, lambda a: F.gelu(a, approximate="tanh"), _none, None),
    "elu": (1, _any, lambda a: F.elu(a, 0.5), _none, lambda a: _gap(a, 0)),
    "softplus": (1, _any, lambda a: F.softplus(a, beta=2.0), _none, None),
    "logsigmoid": (1, _any, lambda a: F.logsigmoid(a), _none, None),
    "hardtanh": (1, _any, lambda a: F.hardtanh(a, -0.5, 0.5), _none,
                 lambda a: min(_gap(a, -0.5), _gap(a, 0.5))),
    "relu6": (1, _any, lambda a: F.relu6(a * 8), _none,
              lambda a: min(_gap(a * 8, 0), _gap(a * 8, 6))),
    "sin": (1, _any, lambda a: a.sin(), _none, None),
    "cos": (1, _any, lambda a: a.cos(), _none, None),
    "log1p": (1, _any, lambda a: (a * a).log1p(), _none, None),
    "expm1": (1, _any, lambda a: a.tanh().expm1(), _none, None),
    # elementwise, two operands with broadcasting
    "add": (2, _broadcasts, lambda a, b: a + b, _none, None),
    "sub": (2, _broadcasts, lambda a, b: a - b, _none, None),
    "mul": (2, _broadcasts, lambda a, b: a * b, _none, None),
    "div": (2, _broadcasts, lambda a, b: a / pos(b), _none, None),
    "pow": (2, _broadcasts, lambda a, b: pos(a) ** b.tanh(), _none, None),
    "maximum": (2, _broadcasts, ops.maximum, _none, _gap),
    "minimum": (2, _broadcasts, ops.minimum, _none, _gap),
    "where": (2, _broadcasts, lambda a, b, cond: ops.where(cond, a, b), _where_cond, None),
    # reductions and the softmax family, negative axes included
    "sum": (1, _any, lambda a, **o: a.sum(**o), _axis_options, None),
    "mean": (1, _any, lambda a, **o: a.mean(**o), _axis_options, None),
    "max": (1, _any, lambda a, **o: a.max(**o), _axis_options, _reduce_margin(np.max)),
    "min": (1, _any, lambda a, **o: a.min(**o), _axis_options, _reduce_margin(np.min)),
    "logsumexp": (1, _any, lambda a, **o: a.logsumexp(**o), _axis_options, None),
    "softmax": (1, _nd(1), lambda a, axis: a.softmax(axis), _one_axis, None),
    "log_softmax": (1, _nd(1), lambda a, axis: a.log_softmax(axis), _one_axis, None),
    "var": (1, _any, lambda a, axis, keepdims: a.var(dim=axis, keepdim=keepdims,
                                                      correction=0), _axis_options, None),
    "prod": (1, _nd(1), lambda a, axis: a.prod(dim=axis), _one_axis, None),
    "cumsum": (1, _nd(1), lambda a, axis: a.cumsum(dim=axis), _one_axis, None),
    # shape operations
    "reshape": (1, _any, lambda a: a.reshape(tuple(reversed(a.shape))), _none, None),
    "flatten": (1, _any, lambda a: a.flatten(), _none, None),
    "permute": (1, _any, lambda a, axes: a.permute(axes), _permutation, None),
    "transpose": (1, _nd(2), lambda a: a.transpose(0, -1), _none, None),
    "T": (1, _any, lambda a: a.T, _none, None),
    "swapaxes": (1, _nd(2), lambda a: a.swapaxes(0, -1), _none, None),
    "broadcast_to": (1, _any, lambda a: a.broadcast_to((2,) + a.shape), _none, None),
    "getitem": (1, _nd(1), lambda a, index: a[index], _index, None),
    "squeeze": (1, _any, lambda a: a.unsqueeze(0).squeeze(0), _none, None),
    "unsqueeze": (1, _any, lambda a: a.unsqueeze(-1), _none, None),
    "view": (1, _any, lambda a: a.view(-1), _none, None),
    "expand": (1, _any, lambda a: a.unsqueeze(0).expand(2, *a.shape), _none, None),
    "flip": (1, _nd(1), lambda a: a.flip(dim=0), _none, None),
    "split": (1, _nd(1), lambda a: a.split(1, dim=0)[-1], _none, None),
    "chunk": (1, _nd(1), lambda a: a.chunk(2, dim=-1)[0], _none, None),
    "repeat": (1, _any, lambda a: a.repeat(*([2] * max(a.ndim, 1))), _none, None),
    "tril": (1, _nd(2), lambda a: a.tril(), _none, None),
    "triu": (1, _nd(2), lambda a: a.triu(1), _none, None),
    "gather": (1, _nd(1), lambda a: a.gather(0, np.zeros((2,) + a.shape[1:], dtype=np.int64)),
               _none, None),
    "masked_fill": (1, _any, lambda a: a.masked_fill(a.data > 0.5, 0.25), _none,
                    lambda a: _gap(a, 0.5)),
    "pad": (1, _nd(1), lambda a: ops.pad(a, 1, value=0.25), _none, None),
    "concatenate": (2, lambda a, b: len(a) == len(b) >= 1 and a[1:] == b[1:],
                    lambda a, b: ops.concatenate([a, b], axis=0), _none, None),
    "stack": (2, _equal, lambda a, b: ops.stack([a, b], axis=-1), _none, None),
    # products with the weight leaf W (k, k) and bias leaf c (k,)
    "matmul": (2, _mm, lambda a, w: a @ w, _none, None),
    "rmatmul": (2, lambda w, a: len(a) == 2 and a[0] == w[1],
                lambda w, a: w @ a, _none, None),
    "linear": (3, lambda a, w, c: _mm(a, w) and c == (w[1],), ops.linear, _none, None),
    # losses
    "mse_loss": (2, _equal, ops.mse_loss, _none, None),
    "nll_loss": (1, lambda a: len(a) == 2, lambda a, target: F.nll_loss(a, target),
                 _class_indices, None),
    "cross_entropy_smooth": (1, lambda a: len(a) == 2, lambda a, target: F.cross_entropy(
        a, target, weight=np.linspace(0.5, 2.0, a.shape[1]), label_smoothing=0.1),
        _class_indices, None),
    "bce_with_logits": (1, _any, lambda a: F.binary_cross_entropy_with_logits(
        a, np.full(a.shape, 0.3), pos_weight=2.0), _none, None),
    "smooth_l1_loss": (2, _equal, lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), _none,
                       lambda a, b: min(_gap(a - b, 0.5), _gap(b - a, 0.5))),
    "layer_norm": (1, _nd(1), lambda a: F.layer_norm(a, a.shape[-1:]), _none, None),
    "cross_entropy": (1, lambda a: len(a) == 2,
                      lambda a, target: ops.cross_entropy(a, target), _classes, None),
}
WEIGHT_OPS = {"matmul": (1,), "rmatmul": (0,), "linear": (1, 2)}  # operands that are W / c


# ------------------------------------------------------------------ programs


def run_program(steps, leaves, check=False):
    """Replay `steps` on the leaf tensors; returns the output (the last node plus the sum of
    every other node nobody consumed, so that every node reaches the output)."""
    nodes = list(leaves)
    used = set()
    for name, args, options in steps:
        _, _, run, _, margin = OPS[name]
        operands = [nodes[i] for i in args]
        out = run(*operands, **options)
        if check:
            if margin is not None:
                assume(margin(*(t.data for t in operands), **options) > KINK_MARGIN)
            assume(np.all(np.isfinite(out.data)) and np.abs(out.data).max(initial=0) < MAX_ABS)
        used.update(args)
        nodes.append(out)
    out = nodes[-1]
    for i in range(len(leaves), len(nodes) - 1):
        if i not in used:
            out = out + nodes[i].sum()
    return out


# hypothesis leans towards the first entry of a list: sigmoid and mul lead (SiLU, x * x)
UNARY = ["sigmoid"] + sorted(name for name, spec in OPS.items()
                             if spec[0] == 1 and name != "sigmoid")
# half the ops drawn take two or more operands: only those can meet one tensor twice
MULTI = ["mul"] + sorted(name for name, spec in OPS.items() if spec[0] > 1 and name != "mul")


def _chain(draw, nodes, start, add):
    """Append 1-3 one-operand steps starting at node `start`; returns the last node's index."""
    at = start
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(UNARY))
        at = add(name, [at]) if OPS[name][1](tuple(nodes[at].shape)) else at
    return at


def _draw_steps(draw, nodes, weights, add):
    """One op and its operands, biased towards the patterns that break traversals; operands
    that need it (x op f(x)) get their chain of steps first. add(name, args) runs a step."""
    k = len(nodes)
    name = draw(st.sampled_from(MULTI if draw(st.booleans()) else UNARY))
    arity = OPS[name][0]
    first = draw(st.integers(0, k - 1))
    if name in WEIGHT_OPS:
        args = {"linear": [first, *weights], "matmul": [first, weights[0]],
                "rmatmul": [weights[0], first]}[name]
    else:
        args = [first]
        for _ in range(arity - 1):
            pattern = draw(st.sampled_from(["same", "chain", "newest", "any"]))
            if pattern == "same":  # x op x
                args.append(first)
            elif pattern == "chain":  # x op f(g(x)): x reaches the op directly and via a chain
                args.append(_chain(draw, nodes, first, add))
            elif pattern == "newest":  # often a diamond: the newest node may depend on first
                args.append(len(nodes) - 1)
            else:
                args.append(draw(st.integers(0, len(nodes) - 1)))
        if arity == 2 and draw(st.booleans()):
            args.reverse()  # x * f(x) and f(x) * x both
    add(name, args)


@st.composite
def programs(draw):
    """Leaves (x: (n, k), y broadcastable to it, s: 0-d, W: (k, k), c: (k,)) and 1-10 ops."""
    n, k = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    y_shape = draw(st.sampled_from([(n, k), (k,), (1, k), (n, 1), (), (2, n, k)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shapes = [(n, k), y_shape, (), (k, k), (k,)]
    leaves = [Tensor(rng.uniform(-2, 2, s), requires_grad=True) for s in shapes]
    steps, nodes = [], list(leaves)

    def add(name, args):
        """Run one step if its op applies to the operands' shapes; the output's index."""
        _, applies, run, options_for, _ = OPS[name]
        shapes = [tuple(nodes[i].shape) for i in args]
        if not applies(*shapes):
            return args[0]
        options = options_for(draw, shapes)
        nodes.append(run(*(nodes[i] for i in args), **options))
        steps.append((name, args, options))
        return len(nodes) - 1

    for _ in range(draw(st.integers(1, 10))):
        _draw_steps(draw, nodes, [3, 4], add)
    assume(steps)
    return leaves, steps


def build_and_check(leaves, steps):
    """Check the kink margins at the drawn point, then gradcheck every leaf."""
    run_program(steps, leaves, check=True)
    assert gradcheck(lambda *xs: run_program(steps, xs), leaves, atol=1e-5, rtol=1e-4)


@SETTINGS
@given(programs())
def test_random_graphs_gradcheck(program):
    build_and_check(*program)


# ------------------------------------------------------------------ composites learners write


def _hand_softmax(x):
    e = (x - x.max(axis=1, keepdims=True)).exp()
    return e / e.sum(axis=1, keepdims=True)


def _hand_log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - shifted.exp().sum(axis=1, keepdims=True).log()


def _layer_norm(x, gain, bias):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / (var + 1e-5).sqrt() * gain + bias


_ONE_HOT = np.eye(4)[[1, 3, 0]]  # targets of the (3, 4) logits

COMPOSITES = {
    "silu x * sigmoid(x)": (lambda x: x * x.sigmoid(), [(3, 4)]),
    "silu sigmoid(x) * x": (lambda x: x.sigmoid() * x, [(3, 4)]),
    "gelu (tanh form)": (lambda x: 0.5 * x * (1 + (0.79788456 * (x + 0.044715 * x ** 3)).tanh()),
                         [(3, 4)]),
    "residual h + h @ W": (lambda h, w: h + h @ w, [(3, 4), (4, 4)]),
    "residual block": (lambda h, w1, w2: h + (h @ w1).tanh() @ w2, [(3, 4), (4, 4), (4, 4)]),
    "pre-norm residual": (lambda h, w, g, b: h + _layer_norm(h, g, b) @ w,
                          [(3, 4), (4, 4), (4,), (4,)]),
    "hand softmax": (_hand_softmax, [(3, 4)]),
    "hand log-softmax": (_hand_log_softmax, [(3, 4)]),
    "log-softmax via logsumexp": (lambda x: x - x.logsumexp(axis=-1, keepdims=True), [(3, 4)]),
    "hand layer norm": (_layer_norm, [(3, 4), (4,), (4,)]),
    "hand MSE": (lambda p, t: ((p - t) ** 2).mean(), [(3, 4), (3, 4)]),
    "hand cross-entropy": (lambda z: -(_hand_log_softmax(z) * _ONE_HOT).sum(axis=1).mean(),
                           [(3, 4)]),
    "centring x - x.mean()": (lambda x: x - x.mean(), [(3, 4)]),
    "row centring": (lambda x: x - x.mean(axis=-1, keepdims=True), [(3, 4)]),
    "weighted centring": (lambda x, w: x - (w * x).sum() / w.sum(), [(3, 4), (3, 4)]),
    "a + a * 3": (lambda a: a + a * 3.0, [(2,)]),
    "x * x": (lambda x: x * x, [(2, 3)]),
    "x / x.sum()": (lambda x: x / x.sum(), [(2, 3)]),
    "shared subexpression h * h + h": (lambda x: (lambda h: h * h + h)(x * x), [(3,)]),
    "weight tying over three layers": (lambda x, w: ((x @ w).tanh() @ w).tanh() @ w.T,
                                       [(3, 4), (4, 4)]),
    "self-attention q = k = v = x": (lambda x: (x @ x.T / 2.0).softmax(-1) @ x, [(3, 4)]),
    "concatenate x with tanh(x)": (lambda x: ops.concatenate([x, x.tanh()], axis=1), [(3, 4)]),
    "stack x with 2 x": (lambda x: ops.stack([x, x * 2.0, x.exp()]), [(3, 4)]),
    "variance by hand": (lambda x: ((x - x.mean()) ** 2).sum() / (x.size - 1), [(5,)]),
    "L2 normalise": (lambda x: x / (x * x).sum(axis=-1, keepdims=True).sqrt(), [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_gradcheck(name):
    fn, shapes = COMPOSITES[name]
    rng = np.random.default_rng(len(name))
    inputs = [Tensor(rng.uniform(-1.5, 1.5, s) + (1.0 if s == (4,) else 0.0), requires_grad=True)
              for s in shapes]
    assert gradcheck(fn, inputs)
