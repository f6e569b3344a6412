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
"""

from __future__ import annotations

from pathlib import Path

from minidl.autograd import Tensor, graph_order

__all__ = ["format_graph", "print_graph", "to_dot"]


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
