"""Multi-tensor updates: one parameter group as views into contiguous flat buffers.

An elementwise optimizer (Adam, SGD, ...) computes the same chain of operations on every
element of every parameter, with scalars shared by the whole group. `FlatGroup` lays the
group's parameters, their gradients and each of their state arrays end to end in one
contiguous buffer per quantity; every `p.data` and every `state[key]` becomes a view of its
buffer. The algorithm's own `update` (or its GPU kernel) then runs ONCE over the buffers, as if
the group were a single parameter: the lines that update one tensor update the whole model.

    flat.data  = [p_1.ravel(), p_2.ravel(), ...]      p_i.data   = view of flat.data
    flat.state = {key: [s_1[key].ravel(), ...]} and the group's shared scalars (step, ...)

Elementwise operations round each element the same way whatever array holds it, so the
trajectory is bit-identical to the per-parameter form.

On the CPU the chain of ~13 NumPy passes over a buffer of many megabytes would stream it from
memory 13 times; the update therefore walks the buffers in blocks of at most BLOCK_BYTES per
array, each block running the whole chain while it is in cache. A tensor of at least 1/8 of
a block gets blocks of its own, whose gradient is a view of its `.grad` (backward hands out a
fresh array per parameter, and copying them all into one buffer would be one more pass);
runs of smaller neighbours (biases) are packed into one block, their gradients gathered into
`flat.grad`, so that twenty biases cost one chain of calls, not twenty. On the GPU the
gradients are gathered into `flat.grad` and the update is one kernel launch over the whole
buffer.

The layout is a cache the optimizer checks every step by identity: if a user rebinds
`p.data` (model.to, a checkpoint load that assigns new arrays) or the optimizer's state is
replaced (load_state_dict), the buffers are rebuilt from the current arrays. Consequence for
users: after the first step `p.data` is a view into the optimizer's buffer, so an array
taken from `p.data` BEFORE the first step is no longer the parameter (take it again).
"""

from __future__ import annotations

from minidl import backend

BLOCK_BYTES = 1 << 20  # per array (measured best for Adam's chain on a 1 MiB-L2 core, above
# both smaller blocks, whose calls cost more than they save, and none, past a few MiB)


class FlatParameter:
    """What `update` sees of the group: `.data`, the flat parameter buffer or a block of it
    (no `.grad`: an update reads the gradient it is given, which includes any decay)."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


class FlatGroup:
    """The flat buffers of one group's parameters (all with a gradient this step), gradients
    and per-parameter state arrays (those shaped like their parameter); build with `of`."""

    def __init__(self, params: list, states: list):
        first = params[0].data
        xp = backend.xp_of(first)
        self.xp, self.params = xp, list(params)
        sizes = [p.data.size for p in params]
        self.slices, start = [], 0
        for n in sizes:
            self.slices.append(slice(start, start + n))
            start += n
        self.data = self._flatten([p.data for p in params])
        self.grad = xp.empty_like(self.data)  # the gradients, where they need to be copied
        self._blocks = None
        for p, sl in zip(params, self.slices):
            p.data = self.data[sl].reshape(p.shape)
        self.views = [p.data for p in params]
        self.buffers: dict = {}
        for key, value in states[0].items():
            if _is_array(value):
                self._adopt(key, self._flatten([s[key] for s in states]), states)
        self.states = list(states)

    @classmethod
    def of(cls, params: list, grads: list, states: list) -> FlatGroup | None:
        """A new FlatGroup, or None where the group cannot be one: mixed devices or dtypes, a
        gradient of another dtype, state keys that differ, a state array not shaped like its
        parameter, or scalar state values that differ between parameters (say, a parameter
        that missed steps)."""
        dtype, device = params[0].data.dtype, backend.device_of(params[0].data)
        keys = set(states[0])
        for p, g, s in zip(params, grads, states):
            if p.data.dtype != dtype or backend.device_of(p.data) != device:
                return None
            if g.dtype != dtype or set(s) != keys:
                return None
            for key, value in s.items():
                if _is_array(value):
                    if value.shape != p.data.shape or value.dtype != dtype:
                        return None
                elif _is_array(states[0][key]) or value != states[0][key]:
                    return None
        return cls(params, states)

    def fits(self, params: list, states: list) -> bool:
        """Whether the buffers still are what these parameters and states hold (identity)."""
        if len(params) != len(self.params) or len(states) != len(self.states):
            return False
        for p, own, view in zip(params, self.params, self.views):
            if p is not own or p.data is not view:
                return False
        for i, (s, own) in enumerate(zip(states, self.states)):
            if s is not own or any(s.get(key) is not views[i]
                                   for key, (_, views) in self.buffers.items()):
                return False
        return True

    def step(self, update, group: dict, grads: list) -> None:
        """Run `update(param, grad, state, group)` over the buffers: on the GPU once, after
        copying the gradients into the flat gradient; on the CPU block by block (`blocks`),
        each block's gradient a view of its parameter's `.grad` where the block lies inside
        one parameter (no copy), gathered into a small buffer where it packs small ones."""
        xp = self.xp
        scalars = {k: v for k, v in self.states[0].items() if k not in self.buffers}
        if backend.is_cupy_array(self.data):
            xp.concatenate([g.reshape(-1) for g in grads], out=self.grad)
            pieces = [(slice(0, self.data.size), self.grad)]
        else:
            pieces = [(block, self._block_grad(grads, block, parts))
                      for block, parts in self.blocks()]
            pieces = pieces or [(slice(0, 0), self.grad)]  # no values: still one step (count)
        owned = dict(self.buffers)  # not those the update creates in the first block
        state = scalars
        for block, grad in pieces:
            state = dict(scalars)
            state.update((key, buf[block]) for key, (buf, _) in owned.items())
            given = dict(state)
            update(FlatParameter(self.data[block]), grad, state, group)
            for key, value in state.items():  # arrays the update created or replaced
                if _is_array(value) and value is not given.get(key):
                    if key not in self.buffers:
                        self._adopt(key, xp.empty_like(self.data), self.states)
                    self.buffers[key][0][block] = value.reshape(-1)
        for key, value in state.items():  # the shared scalars after the update (step, ...)
            if key not in self.buffers:
                for s in self.states:
                    s[key] = value

    def blocks(self) -> list:
        """The CPU's blocks: (slice of the flat buffers, [(parameter index, slice of its
        elements)]). A parameter of at least BLOCK_BYTES / 8 is split into blocks of at most
        BLOCK_BYTES per array (each inside the parameter); smaller neighbours are packed
        together up to BLOCK_BYTES. Cached per BLOCK_BYTES."""
        size = max(1, BLOCK_BYTES // self.data.itemsize)
        if self._blocks is None or self._blocks[0] != size:
            self._blocks = (size, _plan_blocks([p.data.size for p in self.params], size))
        return self._blocks[1]

    def _block_grad(self, grads: list, block: slice, parts: list):
        """The gradient of one block: a view of one parameter's gradient, or the pieces of
        several gathered into the gradient buffer's slice of the block."""
        if len(parts) == 1:
            i, part = parts[0]
            return grads[i].reshape(-1)[part]
        out = self.grad[block]
        self.xp.concatenate([grads[i].reshape(-1)[part] for i, part in parts], out=out)
        return out

    def _flatten(self, arrays: list):
        return self.xp.concatenate([a.reshape(-1) for a in arrays])

    def _adopt(self, key: str, buffer, states: list) -> None:
        """Make `buffer` the flat storage of state[key] and every state's entry its view."""
        views = [buffer[sl].reshape(p.shape) for sl, p in zip(self.slices, self.params)]
        for s, view in zip(states, views):
            s[key] = view
        self.buffers[key] = (buffer, views)


def _plan_blocks(sizes: list, size: int) -> list:
    """Blocks of at most `size` elements over parameters of these sizes laid end to end (see
    FlatGroup.blocks): [(flat slice, [(parameter index, slice within it)])]."""
    blocks, run, start = [], [], 0

    def flush():
        if run:
            first, last = run[0], run[-1]
            block = slice(first[0] + first[2].start, last[0] + last[2].stop)
            if block.stop > block.start:  # tensors without values need no update
                blocks.append((block, [(i, part) for _, i, part in run]))
            run.clear()

    for i, n in enumerate(sizes):
        if n >= size // 8:  # big: blocks of its own, views of its gradient
            flush()
            for a in range(0, n, size):
                run.append((start, i, slice(a, min(a + size, n))))
                flush()
        else:  # small: packed with its small neighbours
            if run and run[-1][0] + run[-1][2].stop - run[0][0] + n > size:
                flush()
            run.append((start, i, slice(0, n)))
        start += n
    flush()
    return blocks
