"""Graph introspection for learners: print the graph that autograd recorded, or draw it.

Every differentiable operation goes through `Function.apply`, which (when some input requires a
gradient) stores the Function instance on its output as `tensor._ctx` and the inputs as
`fn.inputs`. Following `_ctx` and `inputs` backwards from a result recovers the whole graph that
`backward()` will walk. This module only reads those two attributes; it changes nothing.

    >>> x = md.ones(4, 3); w = md.ones(3, 2, requires_grad=True)
    >>> b = md.zeros(2, requires_grad=True)
    >>> print_graph(((x @ w) + b).relu().sum(), names={"x": x, "w": w, "b": b})
    x   leaf         (4, 3)  float32  requires_grad=False
    w   leaf         (3, 2)  float32  requires_grad=True
    %1  MatMul(x, w)  (4, 2)  float32
    ...

Nodes are listed in topological order (every node after its inputs; inputs in argument order,
depth first), so the last line is the tensor given. Leaves are named from `names` (a dict
name -> tensor, e.g. `dict(model.named_parameters())`, or any dict of variables), else `leaf1`,
`leaf2`, ...; computed tensors are `%1`, `%2`, ... unless `names` names them too. Inputs that
are not Tensors (Python numbers, target arrays) are shown inline as constants.

`draw` renders the same graph as a picture with each tensor's value and gradient, the way
micrograd and cs231n draw their circuits. It reads `.data` and `.grad` and runs nothing, so
call it on a graph whose values are still there and whose gradients have been kept:

    >>> retain_grads(loss)                 # every tensor of the graph keeps its .grad
    >>> loss.backward(retain_graph=True)   # keep the values that backward would free
    >>> draw(loss, "graph.png", names={"x": x, "w": w})
"""

from __future__ import annotations

from pathlib import Path

from minidl.autograd import Tensor, graph_order
from minidl.backend import to_numpy

__all__ = ["draw", "format_graph", "print_graph", "retain_grads", "to_dot"]


def _label_nodes(nodes: list, names: dict | None) -> dict:
    """id(tensor) -> display name: the user's name, else leafN for leaves and %N for ops."""
    given = {}
    for name, t in (names or {}).items():
        if not isinstance(t, Tensor):
            raise TypeError(f"names[{name!r}] is a {type(t).__name__}, not a Tensor")
        given.setdefault(id(t), str(name))
    labels, n_leaf, n_op = {}, 0, 0
    for t in nodes:
        if id(t) in given:
            labels[id(t)] = given[id(t)]
        elif t._ctx is None:
            n_leaf += 1
            labels[id(t)] = f"leaf{n_leaf}"
        else:
            n_op += 1
            labels[id(t)] = f"%{n_op}"
    return labels


def _constant(x) -> str:
    """A non-Tensor input as text: numbers as themselves, arrays by shape and dtype."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"<array {tuple(x.shape)} {x.dtype}>"
    return repr(x)


def _describe(t: Tensor) -> tuple[str, str, str, str]:
    """(what, shape, dtype, flag) of one node for the listing."""
    if t._ctx is None:
        return "leaf", str(tuple(t.shape)), str(t.dtype), f"requires_grad={t.requires_grad}"
    return type(t._ctx).__name__, str(tuple(t.shape)), str(t.dtype), ""


def format_graph(tensor: Tensor, names: dict | None = None) -> str:
    """The graph ending at `tensor` as text, one node per line in topological order:

        name  Op(input names)  shape  dtype            for computed tensors
        name  leaf             shape  dtype  requires_grad=...   for leaves

    names: optional dict name -> Tensor used to name leaves (and any other tensor).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"format_graph needs a Tensor, got {type(tensor).__name__}")
    nodes = graph_order(tensor)
    labels = _label_nodes(nodes, names)
    rows = []
    for t in nodes:
        what, shape, dtype, flag = _describe(t)
        if t._ctx is not None:
            args = [labels[id(x)] if isinstance(x, Tensor) else _constant(x)
                    for x in t._ctx.inputs]
            what = f"{what}({', '.join(args)})"
        rows.append((labels[id(t)], what, shape, dtype, flag))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4]
             for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def print_graph(tensor: Tensor, names: dict | None = None) -> None:
    """Print format_graph(tensor, names)."""
    print(format_graph(tensor, names))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(tensor: Tensor, path=None, names: dict | None = None) -> str:
    """Graphviz dot source of the graph ending at `tensor`; also written to `path` if given.

    Leaves are boxes (blue when they require a gradient, grey otherwise), operations are
    ellipses labelled with the Function's class name, constants are plain text; every edge
    goes from an input to the node that consumes it, so the drawing reads in the direction of
    the forward pass (backward() walks the edges in reverse). Render it with
    `dot -Tpng graph.dot -o graph.png`.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot needs a Tensor, got {type(tensor).__name__}")
    nodes = graph_order(tensor)
    labels = _label_nodes(nodes, names)
    ids = {id(t): f"n{i}" for i, t in enumerate(nodes)}
    lines = ["digraph minidl {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];']
    edges, n_const = [], 0
    for t in nodes:
        what, shape, dtype, flag = _describe(t)
        if t._ctx is None:
            color = "lightblue" if t.requires_grad else "lightgrey"
            label = f"{labels[id(t)]}\\n{shape} {dtype}\\n{flag}"
            attrs = f"shape=box, style=filled, fillcolor={color}"
        else:
            label = f"{labels[id(t)]} = {what}\\n{shape} {dtype}"
            attrs = "shape=ellipse"
            for x in t._ctx.inputs:
                if isinstance(x, Tensor):
                    edges.append(f"  {ids[id(x)]} -> {ids[id(t)]};")
                else:
                    const = f"c{n_const}"
                    n_const += 1
                    lines.append(f"  {const} [label={_quote(_constant(x))}, shape=plaintext];")
                    edges.append(f"  {const} -> {ids[id(t)]};")
        # labels hold dot's own \n escapes: quote only the user's text
        lines.append(f"  {ids[id(t)]} [label=\"{label.replace(chr(34), chr(92) + chr(34))}\", "
                     f"{attrs}];")
    source = "\n".join(lines + edges + ["}"]) + "\n"
    if path is not None:
        Path(path).write_text(source)
    return source


# ----------------------------------------------------------------------------- pictures
def retain_grads(tensor: Tensor) -> list:
    """Ask every tensor of the graph ending at `tensor` to keep its `.grad` after backward
    (Tensor.retain_grad on each), so that `draw` can show the gradient of intermediate
    results too. Returns the tensors in topological order."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"retain_grads needs a Tensor, got {type(tensor).__name__}")
    nodes = graph_order(tensor)
    for t in nodes:
        if t.requires_grad:
            t.retain_grad()
    return nodes


def _number_text(a, digits: int) -> str:
    """A small array's values, a large one's shape."""
    a = to_numpy(a)
    if a.size == 1:
        return f"{float(a.reshape(())):.{digits}f}"
    if a.size <= 3:
        return "[" + " ".join(f"{float(v):.{digits}f}" for v in a.ravel()) + "]"
    return f"shape {tuple(a.shape)}"


def _columns(nodes: list) -> dict:
    """id(tensor) -> column: a computed tensor one right of its furthest input, a leaf one
    left of its nearest consumer (so a bias enters where it is used, not at the far left)."""
    col = {}
    for t in nodes:
        if t._ctx is not None:
            ins = [col[id(x)] for x in t._ctx.inputs if isinstance(x, Tensor)]
            col[id(t)] = 1 + max(ins, default=0)
        else:
            col[id(t)] = 0
    nearest = {}
    for t in nodes:
        for x in (t._ctx.inputs if t._ctx is not None else ()):
            if isinstance(x, Tensor) and x._ctx is None:
                nearest[id(x)] = min(nearest.get(id(x), col[id(t)]), col[id(t)])
    col.update({k: c - 1 for k, c in nearest.items()})
    return col


def _rows(nodes: list, col: dict) -> dict:
    """id(tensor) -> vertical position: consumers sit at the mean height of their inputs,
    and nodes of one column are pushed apart to at least one unit."""
    row, filled = {}, {}
    for t in nodes:
        c = col[id(t)]
        ins = [row[id(x)] for x in (t._ctx.inputs if t._ctx else ()) if isinstance(x, Tensor)]
        want = sum(ins) / len(ins) if ins else float(filled.get(c, -1) + 1)
        taken = [row[id(u)] for u in nodes if id(u) in row and col[id(u)] == c]
        while any(abs(want - y) < 1 for y in taken):
            want = max(taken) + 1
        row[id(t)] = want
        filled[c] = max(filled.get(c, -1), want)
    return row


def draw(tensor: Tensor, path=None, names: dict | None = None, digits: int = 4):
    """Draw the graph ending at `tensor` with matplotlib: one box per tensor showing its name,
    its value and its gradient (`.grad`, or "-" where none was kept), one circle per
    operation, edges in the direction of the forward pass. Leaves that require a gradient
    are blue, other leaves grey, computed tensors white. Arrays of up to 3 elements show
    their values, larger ones their shape. Saved to `path` (any format matplotlib knows) if
    given; returns the matplotlib Figure.

    draw reads values and runs nothing. backward() without retain_graph frees the graph's
    intermediate values, and intermediate tensors keep no gradient unless asked: call
    `retain_grads(tensor)` before `tensor.backward(retain_graph=True)`, then draw.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw needs a Tensor, got {type(tensor).__name__}")
    nodes = graph_order(tensor)
    if any(t._ctx is not None and getattr(t._ctx, "freed", False) for t in nodes):
        raise RuntimeError("draw: backward() already freed this graph's values; call "
                           "backward(retain_graph=True), or draw before backward")
    # a Figure of its own, outside pyplot: drawing changes no backend and opens no window
    from matplotlib.figure import Figure

    labels = _label_nodes(nodes, names)
    col = _columns(nodes)
    row = _rows(nodes, col)
    width, height = 2.6, 1.0                     # one column, one row, in inches
    n_cols = max(col.values()) + 1
    n_rows = max(row.values()) - min(row.values()) + 1
    fig = Figure(figsize=(1.2 + width * n_cols, 0.6 + height * n_rows))
    ax = fig.subplots()
    ax.set_axis_off()
    pos = {id(t): (col[id(t)] * 2.0, -row[id(t)]) for t in nodes}
    box = dict(boxstyle="round,pad=0.35", lw=1)
    for t in nodes:
        x, y = pos[id(t)]
        grad = "-" if t.grad is None else _number_text(t.grad, digits)
        text = f"{labels[id(t)]}\nvalue {_number_text(t.data, digits)}\ngrad  {grad}"
        color = "white" if t._ctx is not None else (
            "#cfe3f7" if t.requires_grad else "#e4e4e4")
        ax.text(x, y, text, ha="center", va="center", family="monospace", fontsize=8,
                bbox={**box, "fc": color, "ec": "#444444"}, zorder=3)
        if t._ctx is None:
            continue
        ox, oy = x - 1.0, y                      # the operation's circle, left of its output
        ax.text(ox, oy, type(t._ctx).__name__, ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="circle,pad=0.3", fc="#fff3c4", ec="#a08000"), zorder=3)
        ax.annotate("", (x - 0.55, y), (ox + 0.3, oy),
                    arrowprops=dict(arrowstyle="->", color="#444444"), zorder=1)
        for k, inp in enumerate(t._ctx.inputs):
            bend = 0.0
            if isinstance(inp, Tensor):
                start = (pos[id(inp)][0] + 0.55, pos[id(inp)][1])
                if col[id(inp)] < col[id(t)] - 1:   # skips a column: arc over the boxes
                    bend = -0.35
            else:                                # a constant: written next to the circle
                start = (ox - 0.2, oy + 0.45 + 0.25 * k)
                ax.text(*start, _constant(inp), ha="right", fontsize=7, color="#555555")
            ax.annotate("", (ox - 0.3, oy), start,
                        arrowprops=dict(arrowstyle="->", color="#444444",
                                        connectionstyle=f"arc3,rad={bend}"), zorder=1)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.4, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig
