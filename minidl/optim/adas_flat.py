"""ADAS as a multi-tensor update: one parameter group in flat buffers, stepped at once.

ADAS (minidl/optim/adas.py) is not elementwise as Adam is: a weight's step sizes s (one per
input) scale whole rows or columns of it, its hypergradient h sums D * G over the output axes,
and sigma couples the tensors of a layer. Most of the work is elementwise all the same, so
`AdasLayout` lays a group out as

    data, grad, exp_avg_sq, update_avg    one buffer each, the parameters' slices end to end
    lr, lr_sq, lr_update_avg (and h)      one buffer each for the small vectors s of the group
    sigma, sigma_sq                       one entry per sigma-unit (a layer or a tensor)

with every p.data and every state entry a view of its buffer (the state_dict keys and shapes
stay those of the per-tensor form), and a step runs

1. the weight chain over the flat buffers. On the CPU it walks them in blocks of whole rows
   (about flat.BLOCK_BYTES per array, as the elementwise optimizers), running the whole
   chain on each block while it is in cache.
   Only two operations per block are per tensor: the product with s (broadcast over the
   output axes) and the reduction h;
2. the step-size chain (N_s, s, E) once over the group's small buffers;
3. the sigma chain once over the group's units.

Blocks hold whole rows, so every h is summed exactly as NumPy sums the whole tensor: for a
Dense weight (in, out) h sums each contiguous row (pairwise, as NumPy sums a contiguous axis);
for a Linear (out, in) or Conv2d (out, C, kh, kw) weight h sums over the rows, which NumPy adds
one after another, so a block adds the previous blocks' partial sum into its first row and
carries on. A tensor of any other layout (a bias, say) stays whole within one block. The
result is the per-tensor trajectory (Adas with multi_tensor = False) bit for bit.

On the GPU the layout is stepped by the fused kernels of adas.KERNELS: one launch of the
weight kernel over the whole group, one reduction per tensor for h, one launch of the
step-size kernel over the small buffers, one reduction per tensor for sigma's derivative k,
and about ten small operations over the units' sigma; no value is read back to the host.
In the weight kernel each element reads its step size as lr[lr_index] (lr a `raw` argument,
lr_index an int32 array built once with the layout): 4 more bytes per element, where a
per-element copy of s would take a launch and a buffer as large as the parameters, and
finding the tensor from the element's position would take a search per element.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from minidl import backend
from minidl.optim import flat

ROWS, COLS, WHOLE = "rows", "cols", "whole"
WEIGHT_KEYS = ("exp_avg_sq", "update_avg")  # state shaped like the parameter
SMALL_KEYS = ("lr", "lr_sq", "lr_update_avg")  # state shaped like the step sizes s
UNIT_KEYS = ("sigma", "sigma_sq")  # state of a unit's first tensor, one value per unit


def eps_floor(dtype) -> float:
    """The eps used for eps = 0: sqrt of the smallest normal number (1.1e-19 in float32).
    Where d^2 underflows to 0 (|d| below about 1e-19 in float32; on a GPU, whose float32
    kernels flush denormals to zero, wherever d^2 is denormal) sqrt(a) is 0 while d is not,
    and d / sqrt(a) would be huge instead of +-1; with this floor it stays below
    1/sqrt(1 - b)."""
    return math.sqrt(float(np.finfo(dtype).tiny))


def normalise_into(xp, d, sq, out, tmp, beta: float, eps: float, corr: float | None) -> None:
    """out = N(d) = d * corr / (sqrt(a) + eps) after a <- beta a + (1 - beta) d^2, with the
    second moment `sq` (a) updated in place; `tmp` is a work array shaped like d; corr None
    leaves out the factor. The operations, in order, of adas._normalise."""
    xp.multiply(d, d, out=tmp)
    tmp *= 1 - beta
    sq *= beta
    sq += tmp
    xp.sqrt(sq, out=out)
    out += eps
    xp.divide(d, out, out=out)
    if corr is not None:
        out *= corr


class _Tensor:
    """One parameter's place in the layout, and how its h is reduced (ROWS: each row of
    whole inputs; COLS: over the rows, one per output; WHOLE: as one piece)."""

    def __init__(self, p, start: int, s_start: int):
        shape, axes = tuple(p.shape), tuple(p.input_axes)
        ndim, size = len(shape), math.prod(shape)
        self.shape = shape
        self.out_axes = tuple(i for i in range(ndim) if i not in axes)
        self.s_shape = tuple(shape[a] for a in axes)
        self.bshape = tuple(n if i in axes else 1 for i, n in enumerate(shape))
        n_s, k = math.prod(self.s_shape), len(axes)
        if 0 < k < ndim and axes == tuple(range(k)):
            self.kind, self.rows = ROWS, n_s  # Dense (in, out): a row per input
        elif 0 < k < ndim and axes == tuple(range(ndim - k, ndim)) and n_s > 1:
            # Linear (out, in), Conv2d (out, C, kh, kw); with one input per row NumPy would
            # sum the column pairwise, not row after row: then WHOLE
            self.kind, self.rows = COLS, size // n_s
        else:
            self.kind, self.rows = WHOLE, 1
        self.row_len = size // self.rows
        self.sl = slice(start, start + size)
        self.s_sl = slice(s_start, s_start + n_s)

    @staticmethod
    def takes(p) -> bool:
        """Whether the layout can hold p: a non-empty tensor whose input axes are distinct,
        ascending and within its dimensions (else the per-tensor form steps the group)."""
        axes = tuple(p.input_axes)
        return p.data.size > 0 and list(axes) == sorted(set(axes)) and all(
            0 <= a < p.ndim for a in axes)

    def step_sizes(self, s, r0: int, r1: int):
        """This tensor's rows r0:r1 of the flat step sizes s, shaped to broadcast against
        `rows_of` (ROWS: a column, COLS: a row, WHOLE: p's shape with 1 on output axes)."""
        own = s[self.s_sl]
        if self.kind == ROWS:
            return own[r0:r1].reshape(-1, 1)
        return own.reshape(1, -1) if self.kind == COLS else own.reshape(self.bshape)

    def rows_of(self, block_part, r0: int, r1: int):
        """A block's slice holding rows r0:r1 of this tensor, as (rows, row_len) (WHOLE: p's
        shape)."""
        return block_part.reshape(self.shape if self.kind == WHOLE else (r1 - r0, self.row_len))


class _Block:
    """A run of whole rows of consecutive tensors: flat[start:stop], and its per-tensor parts
    (tensor, first row, last row + 1, offset within the block)."""

    def __init__(self, start: int):
        self.start = self.stop = start
        self.parts: list = []

    def add(self, t: _Tensor, r0: int, r1: int) -> None:
        self.parts.append((t, r0, r1, self.stop - self.start))
        self.stop += (r1 - r0) * t.row_len


def plan_blocks(tensors: list, block_elements: int | None) -> list:
    """Cut the tensors (laid end to end) into blocks of about `block_elements` elements, on
    row boundaries; a WHOLE tensor, or a row longer than a block, fills a block of its own.
    None: one block holding everything (the GPU)."""
    blocks = [_Block(0)]
    for t in tensors:
        r = 0
        while r < t.rows:
            block = blocks[-1]
            if block_elements is None:
                take = t.rows - r
            else:
                room = block_elements - (block.stop - block.start)
                take = (1 if t.row_len <= room else 0) if t.kind == WHOLE else min(
                    t.rows - r, room // t.row_len)
                if take == 0 and block.parts:  # no room left: the next block
                    blocks.append(_Block(block.stop))
                    continue
                take = max(take, 1)  # an empty block takes at least one row
            block.add(t, r, r + take)
            r += take
            if block_elements is not None and block.stop - block.start >= block_elements:
                blocks.append(_Block(block.stop))
    return [b for b in blocks if b.parts]


class AdasLayout:
    """One Adas parameter group (the tensors with a gradient this step) in flat buffers, and
    its multi-tensor step. Build with `of`; every step, `fits` (identity of the arrays) and
    `ready` (step counts, gradients) say whether it can step the group."""

    def __init__(self, opt, params: list, states: list, units: list):
        first = params[0].data
        xp = self.xp = backend.xp_of(first)
        self.dtype, self.on_gpu = first.dtype, backend.is_cupy_array(first)
        # NumPy's sum without ndarray.sum's Python wrapper (the same reduction)
        self.sum = np.add.reduce if xp is np else xp.sum
        self.params, self.states = list(params), list(states)
        self.tensors, start, s_start = [], 0, 0
        for p in params:
            t = _Tensor(p, start, s_start)
            self.tensors.append(t)
            start, s_start = t.sl.stop, t.s_sl.stop
        self.data = xp.concatenate([p.data.reshape(-1) for p in params])
        for p, t in zip(params, self.tensors):
            p.data = self.data[t.sl].reshape(t.shape)
        self.views = [p.data for p in params]
        self.grad = xp.empty_like(self.data)
        self.grad_views = [self.grad[t.sl].reshape(t.shape) for t in self.tensors]
        self.buffers = {}  # state key -> (flat buffer, the states' views of it)
        for key in WEIGHT_KEYS + SMALL_KEYS:
            big = key in WEIGHT_KEYS
            buf = xp.concatenate([s[key].reshape(-1) for s in states])
            views = [buf[t.sl if big else t.s_sl].reshape(t.shape if big else t.s_shape)
                     for t in self.tensors]
            self._adopt(key, buf, views, states)
        self.sq, self.upd = (self.buffers[k][0] for k in WEIGHT_KEYS)
        self.lr, self.lr_sq, self.lr_update_avg = (self.buffers[k][0] for k in SMALL_KEYS)
        # the units: their first tensor's parameter and state, and their tensors here
        position = {id(p): i for i, p in enumerate(params)}
        self.head_params = [unit[0] for unit in units]
        self.heads = [opt.state[p] for p in self.head_params]
        self.unit_members = [[position[id(p)] for p in unit if id(p) in position]
                             for unit in units]
        for key in UNIT_KEYS:
            buf = xp.empty(len(units), dtype=self.dtype)
            for u, head in enumerate(self.heads):
                buf[u] = head[key]
            self._adopt(key, buf, [buf[u:u + 1].reshape(()) for u in range(len(units))],
                        self.heads)
        self.sigma, self.sigma_sq = (self.buffers[k][0] for k in UNIT_KEYS)
        self._flat_param = flat.FlatParameter(self.data)  # what use_fused sees
        self._arrays = [buf for buf, _ in self.buffers.values()]
        self._work(s_start, len(units))

    def _adopt(self, key: str, buf, views: list, states: list) -> None:
        for s, view in zip(states, views):
            s[key] = view
        self.buffers[key] = (buf, views)

    def _index(self, values, dtype=np.int32):
        """A host index array, on the layout's device."""
        a = np.asarray(values, dtype=dtype)
        return self.xp.asarray(a) if self.on_gpu else a

    def _work(self, n_s: int, n_units: int) -> None:
        """Work arrays and index arrays of the small vectors and the units."""
        xp, dtype = self.xp, self.dtype
        self.s_scaled, self.h, self.eh, self.ns, self.stmp, self.sigma_vec = (
            xp.empty(n_s, dtype=dtype) for _ in range(6))
        self.kt = xp.empty(len(self.tensors), dtype=dtype)  # each tensor's share of k
        self.k, self.utmp, self.un = (xp.empty(n_units, dtype=dtype) for _ in range(3))
        unit_of_s = np.empty(n_s, dtype=np.int32)  # the unit (sigma) of every step size
        for u, members in enumerate(self.unit_members):
            for i in members:
                unit_of_s[self.tensors[i].s_sl] = u
        self.unit_of_s = self._index(unit_of_s)
        # k = 0 + k_1 + k_2 + ... per unit, in the unit's order: round j adds each unit's j-th
        self.k_rounds = []
        for j in range(max(len(m) for m in self.unit_members)):
            units = [u for u, m in enumerate(self.unit_members) if len(m) > j]
            members = self._index([self.unit_members[u][j] for u in units], np.intp)
            every = len(units) == n_units  # round 0 always is
            self.k_rounds.append((None if every else self._index(units, np.intp), members))
        self.k_parts = [(self.eh[t.s_sl], self.kt[i:i + 1].reshape(()))
                        for i, t in enumerate(self.tensors)]
        self.blocks = self.lr_index = self._owned = None  # built when first needed

    def _plan(self) -> list:
        """The xp path's blocks of whole rows (one block on the GPU), each with the views its
        step walks: (grad, param, exp_avg_sq, update_avg, tmp, n, scaled, sums)."""
        xp, dtype = self.xp, self.dtype
        size = None if self.on_gpu else max(1, flat.BLOCK_BYTES // dtype.itemsize)
        blocks = plan_blocks(self.tensors, size)
        longest = max(b.stop - b.start for b in blocks)
        tmp, nrm = xp.empty(longest, dtype=dtype), xp.empty(longest, dtype=dtype)
        planned = []
        for b in blocks:
            sl, m = slice(b.start, b.stop), b.stop - b.start
            scaled, sums = [], []
            for t, r0, r1, lo in b.parts:
                hi = lo + (r1 - r0) * t.row_len
                tmp_rows = t.rows_of(tmp[lo:hi], r0, r1)
                scaled.append((t.rows_of(nrm[lo:hi], r0, r1),
                               t.step_sizes(self.s_scaled, r0, r1), tmp_rows))
                h = self.h[t.s_sl]
                if t.kind == ROWS:  # each row on its own
                    sums.append((tmp_rows, (1,), h[r0:r1], False))
                elif t.kind == COLS:  # over the rows: carry on from the block before
                    sums.append((tmp_rows, (0,), h, r0 > 0))
                else:
                    sums.append((tmp_rows, t.out_axes, h.reshape(t.s_shape), False))
            planned.append((self.grad[sl], self.data[sl], self.sq[sl], self.upd[sl],
                            tmp[:m], nrm[:m], scaled, sums))
        return planned

    # ------------------------------------------------------------------ validity
    @classmethod
    def of(cls, opt, group: dict, params: list, grads: list, states: list):
        """A new layout of the group, or None where it cannot be one this step (the
        per-tensor form then steps it): mixed devices or dtypes, state not shaped as Adas
        makes it, an empty parameter or unusual input axes, or step counts that differ."""
        p0 = params[0].data
        dtype, xp = p0.dtype, backend.xp_of(p0)
        for p, s in zip(params, states):
            if p.data.dtype != dtype or backend.xp_of(p.data) is not xp or not _Tensor.takes(p):
                return None
            s_shape = tuple(p.shape[a] for a in p.input_axes)
            for keys, shape in ((WEIGHT_KEYS, tuple(p.shape)), (SMALL_KEYS, s_shape)):
                if not all(_is_array_of(s.get(k), xp, dtype) and tuple(s[k].shape) == shape
                           for k in keys):
                    return None
        given = {id(p) for p in params}
        units = [unit for unit in opt._units[id(group)] if any(id(p) in given for p in unit)]
        heads = [opt.state.get(unit[0]) for unit in units]
        for head in heads:
            if head is None or not isinstance(head.get("sigma_step"), int):
                return None
            for key in UNIT_KEYS:
                value = head.get(key)
                on_host = isinstance(value, np.generic) and value.dtype == dtype
                if not on_host and not (_is_array_of(value, xp, dtype) and value.ndim == 0):
                    return None
        if not _ready(params, grads, states, heads, dtype):
            return None
        return cls(opt, params, states, units)

    def fits(self, opt, params: list, states: list) -> bool:
        """Whether the buffers still are what these parameters and states hold (identity):
        False after p.data or a state entry was rebound (a load, a per-tensor step)."""
        if self._owned is None:  # every state entry the layout made: (dict, key), its view
            owned = [((s, key), views[i]) for key, (_, views) in self.buffers.items()
                     for i, s in enumerate(self.heads if key in UNIT_KEYS else self.states)]
            self._owned = [entry for entry, _ in owned], [view for _, view in owned]
        entries, views = self._owned
        return (len(params) == len(self.params) and len(states) == len(self.states)
                and all(map(operator.is_, params, self.params))
                and all(map(operator.is_, [p.data for p in params], self.views))
                and all(map(operator.is_, states, self.states))
                and all(map(operator.is_, [opt.state.get(p) for p in self.head_params],
                                          self.heads))
                and all(map(operator.is_, [d.get(key) for d, key in entries], views)))

    def ready(self, params: list, grads: list) -> bool:
        """Whether this step can run on the layout (see _ready)."""
        return _ready(params, grads, self.states, self.heads, self.dtype)

    # ------------------------------------------------------------------ stepping
    def step(self, opt, group: dict, grads: list) -> None:
        """One ADAS step of the whole group (see the module docstring)."""
        xp = self.xp
        for g, view in zip(grads, self.grad_views):
            if g is not view:  # an offset weight's centred gradient is there already
                xp.copyto(view, g)
        for s in self.states:
            s["step"] += 1
        for head in self.heads:
            head["sigma_step"] += 1
        b1, step = group["beta_1"], self.states[0]["step"]
        eps = group["eps"] or eps_floor(self.dtype)
        corr = math.sqrt(1 - b1**step)
        if opt.use_fused(self._flat_param, self.grad, *self._arrays):
            self._step_fused(opt, group, eps, corr)
        else:
            self._step_xp(group, eps, corr)
        total = self.sum
        for eh, kt in self.k_parts:  # each tensor's share of k: sum(E h), E before its update
            total(eh, axis=0, out=kt)
        self._step_sigma(group, eps, self.heads[0]["sigma_step"])

    def _step_xp(self, group: dict, eps: float, corr: float) -> None:
        """The weight chain block by block, then the step-size chain once: the operations,
        in order, of Adas._update_tensor."""
        xp, total = self.xp, self.sum
        b1, b2, b3 = group["beta_1"], group["beta_2"], group["beta_3"]
        if self.blocks is None:
            self.blocks = self._plan()
        xp.multiply(self.lr, corr * group["lr"], out=self.s_scaled)  # s * lr * corr
        decay = (1 - b3) * corr
        for g, p, sq, upd, tmp, n, scaled, sums in self.blocks:
            normalise_into(xp, g, sq, n, tmp, b1, eps, None)  # n = N_W(G) / corr
            for n_rows, s_rows, tmp_rows in scaled:
                xp.multiply(n_rows, s_rows, out=tmp_rows)
            p -= tmp  # W <- W - lr * s * N_W(G)
            xp.multiply(upd, g, out=tmp)  # D G, with D before its update
            for prod, axes, h, carry in sums:  # h = sum over the output axes of D G
                if carry:  # the sum of the rows before this block, then these in order
                    prod[0] += h
                if axes:
                    total(prod, axis=axes, out=h)
                else:
                    h[...] = prod
            upd *= b3  # D <- b3 D + (1 - b3) N_W(G)
            n *= decay
            upd += n
        normalise_into(xp, self.h, self.lr_sq, self.ns, self.stmp, b1, eps, corr)  # n_s
        xp.multiply(self.lr_update_avg, self.h, out=self.eh)  # E h, for k
        self.sigma.take(self.unit_of_s, out=self.sigma_vec)  # each step size's sigma
        xp.multiply(self.sigma_vec, self.ns, out=self.stmp)
        self.stmp += 1
        self.lr *= self.stmp  # s <- s (1 + sigma n_s)
        self.lr_update_avg *= b2  # E <- b2 E + (1 - b2) n_s
        self.ns *= 1 - b2
        self.lr_update_avg += self.ns

    def _step_fused(self, opt, group: dict, eps: float, corr: float) -> None:
        """_step_xp as the two kernels of adas.KERNELS, with one reduction per tensor."""
        from minidl.optim.adas import KERNELS  # noqa: PLC0415  (adas imports this module)

        b1, b2, b3 = group["beta_1"], group["beta_2"], group["beta_3"]
        if self.lr_index is None:
            self.lr_index = self._index(step_size_index(
                [(t.sl, t.s_sl, t.shape, t.bshape) for t in self.tensors], self.data.size))
        prod = opt.scratch(self.data, "adas_prod")
        opt.kernel(KERNELS["adas_weight"])(
            self.grad, self.lr, self.lr_index, 1 - b1, b1, eps, corr * group["lr"], b3,
            (1 - b3) * corr, self.data, self.sq, self.upd, prod)
        for t in self.tensors:  # h = sum over the output axes of D G, one per tensor
            prod_t, h_t = prod[t.sl].reshape(t.shape), self.h[t.s_sl].reshape(t.s_shape)
            if t.out_axes:
                self.sum(prod_t, axis=t.out_axes, out=h_t)
            else:
                h_t[...] = prod_t
        self.sigma.take(self.unit_of_s, out=self.sigma_vec)
        opt.kernel(KERNELS["adas_lr"])(
            self.h, self.sigma_vec, 1 - b1, b1, eps, corr, b2, 1 - b2,
            self.lr, self.lr_sq, self.lr_update_avg, self.eh)

    def _step_sigma(self, group: dict, eps: float, sigma_step: int) -> None:
        """Per unit k = 0 + its tensors' shares, in order; then, over all units at once,
        sigma <- sigma (1 + lr3 N_sigma(k))."""
        xp, b1, k = self.xp, group["beta_1"], self.k
        for j, (units, members) in enumerate(self.k_rounds):
            part = k if j == 0 else self.utmp[:len(members)]
            self.kt.take(members, out=part)
            if j == 0:
                k += 0  # 0 + k_1, as the per-tensor loop starts from 0.0 (-0.0 becomes 0.0)
            elif units is None:
                k += part
            else:
                k[units] += part
        normalise_into(xp, k, self.sigma_sq, self.un, self.utmp, b1, eps,
                       math.sqrt(1 - b1**sigma_step))
        self.un *= group["lr3"]
        self.un += 1
        self.sigma *= self.un


def step_size_index(tensors: list, size: int) -> np.ndarray:
    """For every element of a flat parameter buffer, the position of its step size in the
    flat s buffer (int32, host). `tensors`: (slice in the buffer, slice in s, shape, shape
    of s broadcast over the output axes) per tensor."""
    index = np.empty(size, dtype=np.int32)
    for sl, s_sl, shape, bshape in tensors:
        own = np.arange(s_sl.start, s_sl.stop, dtype=np.int32).reshape(bshape)
        index[sl] = np.broadcast_to(own, shape).reshape(-1)
    return index


def _ready(params: list, grads: list, states: list, heads: list, dtype) -> bool:
    """Whether a layout can step: gradients of the parameters' shapes, dtype and array type,
    one step count for every tensor and one for every unit."""
    kind = type(params[0].data)
    for p, g in zip(params, grads):
        if type(g) is not kind or g.dtype != dtype or g.shape != p.data.shape:
            return False
    steps = [s["step"] for s in states]
    sigma_steps = [h["sigma_step"] for h in heads]
    return steps.count(steps[0]) == len(steps) and sigma_steps.count(sigma_steps[0]) == len(heads)


def _is_array_of(a, xp, dtype) -> bool:
    """Whether `a` is an array of module xp (numpy or cupy) and of this dtype."""
    is_array = isinstance(a, np.ndarray) if xp is np else backend.is_cupy_array(a)
    return is_array and a.dtype == dtype
