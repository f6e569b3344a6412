"""The teaching material: the optimizer races (smoke runs and their functions), the runnable
code of docs/*.md, and the graph printer (minidl.graph)."""

import csv
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

import minidl as md
from minidl import backend
from minidl.autograd import graph_order
from minidl.graph import draw, format_graph, print_graph, retain_grads, to_dot
from minidl.optim import OPTIMIZERS
from tests.script_harness import ROOT, load_experiment, run_experiment

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def race():
    return load_experiment("optimizer_race")


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _rows(path: Path) -> list:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- optimizer race
def test_optimizer_race_smoke_writes_every_file(race, tmp_path):
    out = tmp_path / "race"
    done = run_experiment("optimizer_race.py", "--smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    names, steps = race.SMOKE_OPTIMIZERS, race.SMOKE_STEPS
    for fn in race.FUNCTIONS:
        rows = _rows(out / f"{fn}.csv")
        dim = len(race.PROBLEMS[fn].start)
        assert list(rows[0]) == ["optimizer", "step", "x", "y"][:2 + dim] + ["f", "error"]
        for name in names:
            mine = [r for r in rows if r["optimizer"] == name]
            assert [int(r["step"]) for r in mine] == list(range(len(mine)))
            assert 2 <= len(mine) <= steps + 1
            x0 = [float(mine[0][a]) for a in ("x", "y")[:dim]]
            assert x0 == list(race.PROBLEMS[fn].start)
            f0 = float(mine[0]["f"])
            assert math.isclose(f0, float(race.PROBLEMS[fn].value(np.array(x0))), rel_tol=1e-12)
        if _has_matplotlib():
            for kind in ("trajectories", "error"):
                png = out / f"{fn}_{kind}.png"
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = _rows(out / "summary.csv")
    assert len(summary) == len(names) * len(race.FUNCTIONS)
    failed = {(r["optimizer"], r["function"]) for r in summary if r["status"].startswith("error")}
    assert not failed
    table = (out / "summary.md").read_text().splitlines()
    assert table[0] == "| optimizer | " + " | ".join(race.FUNCTIONS) + " |"
    assert all(line.count("|") == len(race.FUNCTIONS) + 2 for line in table[2:2 + len(names)])


def test_every_registry_optimizer_runs_on_every_function(race):
    """Three steps of each optimizer of the registry with its HYPER entry: no failure."""
    for fn in race.FUNCTIONS:
        for name in OPTIMIZERS:
            assert fn in race.HYPER[name], f"HYPER lacks {name} on {fn}"
            run = race.race(name, fn, race.hyperparameters(name, fn), 3)
            assert not run.status.startswith("error"), (name, fn, run.status)
            assert run.points.shape == (len(run.errors), len(race.PROBLEMS[fn].start))


def test_lbfgs_line_search_on_the_saddle(race):
    """Negative curvature along d makes the line search's cubic degenerate (zero denominator);
    L-BFGS must still leave the saddle point instead of failing."""
    run = race.race("lbfgs", "saddle", race.hyperparameters("lbfgs", "saddle"), 20)
    assert run.status.startswith("escaped"), run.status


def _numeric_grad(f, p, eps=1e-6):
    grad = np.zeros_like(p)
    for i in range(len(p)):
        e = np.zeros_like(p)
        e[i] = eps
        grad[i] = (f(p + e) - f(p - e)) / (2 * eps)
    return grad


@pytest.mark.parametrize("fn", ["quartic", "beale", "rosenbrock", "saddle", "valley", "moons"])
def test_race_function_values_and_gradients_match_numpy(race, fn):
    """What the optimizers see (a minidl graph) is the function the plots draw (NumPy)."""
    problem = race.PROBLEMS[fn]
    rng = np.random.default_rng(1)
    for _ in range(3):
        point = np.array(problem.start) + rng.uniform(-0.5, 0.5, len(problem.start))
        module = problem.make(point)
        loss = problem.loss(module, 0, True)
        loss.backward()
        grad = np.concatenate([p.grad.ravel() for p in module.parameters()])
        assert math.isclose(loss.item(), problem.value(point), rel_tol=1e-12, abs_tol=1e-12)
        np.testing.assert_allclose(grad, _numeric_grad(problem.value, point), rtol=1e-6,
                                   atol=1e-7)


def test_race_function_facts(race):
    """The minima the docstring states: f' = 0 there, and the values f*."""
    x = np.array([-1.5, -0.5, 2.5])
    assert np.allclose(4 * x**3 - 2 * x**2 - 17 * x - 7.5, 0)      # quartic: f'(x) = 0
    q = race.PROBLEMS["quartic"]
    assert math.isclose(q.value(np.array([2.5])), q.f_star, rel_tol=1e-15)
    for fn in ("beale", "rosenbrock", "valley"):
        assert race.PROBLEMS[fn].value(np.array(race.PROBLEMS[fn].argmin)) == 0.0
    m = race.PROBLEMS["moons"]
    w = np.array(m.argmin)
    p = 1 / (1 + np.exp(-(race.MOONS_X @ w)))
    assert np.abs(race.MOONS_X.T @ (p - race.MOONS_Y)).max() < 1e-12   # gradient zero
    assert set(np.unique(race.MOONS_Y)) == {0, 1} and race.MOONS_X.shape == (400, 2)


# ----------------------------------------------------------------------------- MNIST race
def test_mnist_race_smoke_writes_its_tables(tmp_path):
    mnist_race = load_experiment("mnist_race")
    out = tmp_path / "mnist"
    done = run_experiment("mnist_race.py", "--smoke", "--out", str(out))
    if done.returncode == 2 and "MINIDL_DATA" in done.stderr:
        pytest.skip("MNIST files not found (set MINIDL_DATA)")
    assert done.returncode == 0, done.stderr[-2000:]
    names = mnist_race.SMOKE["optimizers"]
    n = mnist_race.SMOKE["subset"]
    summary = _rows(out / "summary.csv")
    assert [r["optimizer"] for r in summary] == names
    for r in summary:
        errors = int(r["train_errors"])
        assert 0 <= errors <= n
        assert math.isclose(float(r["train_error_pct"]), 100 * errors / n, rel_tol=1e-9)
        assert 0 <= float(r["test_acc_pct"]) <= 100
    history = _rows(out / "mnist_race.csv")
    assert [r["optimizer"] for r in history] == names              # one epoch each
    table = (out / "summary.md").read_text().splitlines()
    assert table[2].startswith("| optimizer | train errors (of 2,000) |")
    assert len(table) == 4 + len(names)
    if _has_matplotlib():
        assert (out / "mnist_race.png").read_bytes()[:4] == b"\x89PNG"


def test_mnist_race_table_covers_the_registry():
    mnist_race = load_experiment("mnist_race")
    assert set(mnist_race.HYPER) == set(OPTIMIZERS)


# ----------------------------------------------------------------------------- docs
@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_docs_code_blocks_run(path, tmp_path, monkeypatch, capsys):
    """Every ```python block of the page, in order, in one namespace. MNIST is cut to its
    first 2,000 training and 500 test images: a training example must run, not train well
    (the README's three epochs on all 60,000 images took most of the suite's time)."""
    import minidl.data  # noqa: PLC0415

    blocks = re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    assert blocks, f"{path.name} has no python code block"
    monkeypatch.chdir(tmp_path)  # a block may write files (graph.dot, ...)
    full = minidl.data.load_mnist

    def first_images(*args, **kwargs):
        (x, y), (x_test, y_test) = full(*args, **kwargs)
        return (x[:2000], y[:2000]), (x_test[:500], y_test[:500])
    monkeypatch.setattr(minidl.data, "load_mnist", first_images)
    namespace = {"__name__": f"docs_{path.stem}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{path.name}, python block {i + 1}", "exec"), namespace)


def test_optimizers_page_has_a_section_per_registry_optimizer():
    text = (ROOT / "docs" / "optimizers.md").read_text()
    headings = re.findall(r"^## `([^`]+)`", text, flags=re.M)
    assert headings == list(OPTIMIZERS)


# ----------------------------------------------------------------------------- graph
def _expression(device):
    xp = backend.xp_for(device)
    x = md.Tensor(xp.ones((4, 3), dtype=np.float32))
    w = md.Tensor(xp.ones((3, 2), dtype=np.float32), requires_grad=True)
    b = md.Tensor(xp.zeros(2, dtype=np.float32), requires_grad=True)
    return x, w, b, ((x @ w) + b).relu().sum()


def test_format_graph_lists_the_expression_exactly(device):
    x, w, b, y = _expression(device)
    assert format_graph(y, names={"x": x, "w": w, "b": b}) == "\n".join([
        "x   leaf          (4, 3)  float32  requires_grad=False",
        "w   leaf          (3, 2)  float32  requires_grad=True",
        "%1  MatMul(x, w)  (4, 2)  float32",
        "b   leaf          (2,)    float32  requires_grad=True",
        "%2  Add(%1, b)    (4, 2)  float32",
        "%3  ReLU(%2)      (4, 2)  float32",
        "%4  Sum(%3)       ()      float32",
    ])
    # unnamed leaves are numbered; the graph survives backward
    y.backward()
    assert format_graph(y).splitlines()[2] == "%1     MatMul(leaf1, leaf2)  (4, 2)  float32"


def test_format_graph_constants_shared_inputs_and_order(device, capsys):
    xp = backend.xp_for(device)
    x = md.Tensor(xp.asarray([3.0]), requires_grad=True)
    # x waits on the stack while x - 1 is expanded: it must still be listed first
    assert format_graph(x * (x - 1), names={"x": x}) == "\n".join([
        "x   leaf        (1,)  float64  requires_grad=True",
        "%1  Sub(x, 1)   (1,)  float64",
        "%2  Mul(x, %1)  (1,)  float64",
    ])
    logits = md.Tensor(xp.zeros((2, 3)), requires_grad=True)
    loss = md.cross_entropy(logits, xp.asarray([0, 2]))
    print_graph(loss, names={"z": logits})
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.split("  ")[:2] == ["%1", "CrossEntropy(z, <array (2,) int64>)"]
    with pytest.raises(TypeError):
        format_graph(loss, names={"z": logits.data})


def test_to_dot_has_the_nodes_and_edges(device, tmp_path):
    x, w, b, y = _expression(device)
    path = tmp_path / "graph.dot"
    dot = to_dot(y, path, names={"x": x, "w": w, "b": b})
    assert path.read_text() == dot
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    nodes = dict(re.findall(r'^  (n\d+) \[label="([^"]*)"', dot, flags=re.M))
    assert list(nodes.values()) == [
        "x\\n(4, 3) float32\\nrequires_grad=False",
        "w\\n(3, 2) float32\\nrequires_grad=True",
        "%1 = MatMul\\n(4, 2) float32",
        "b\\n(2,) float32\\nrequires_grad=True",
        "%2 = Add\\n(4, 2) float32",
        "%3 = ReLU\\n(4, 2) float32",
        "%4 = Sum\\n() float32",
    ]
    edges = set(re.findall(r"^  (n\d+) -> (n\d+);", dot, flags=re.M))
    assert edges == {("n0", "n2"), ("n1", "n2"), ("n2", "n4"), ("n3", "n4"), ("n4", "n5"),
                     ("n5", "n6")}
    assert "fillcolor=lightblue" in dot and "fillcolor=lightgrey" in dot


def _neuron():
    f64 = dict(dtype="float64")
    x1, x2 = md.tensor(2.0, **f64), md.tensor(0.0, **f64)
    w1 = md.tensor(-3.0, requires_grad=True, **f64)
    w2 = md.tensor(1.0, requires_grad=True, **f64)
    b = md.tensor(0.5, requires_grad=True, **f64)
    n = x1 * w1 + x2 * w2 + b
    return dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, n=n, o=n.tanh())


@pytest.mark.skipif(not _has_matplotlib(), reason="matplotlib not installed")
def test_draw_shows_every_value_and_gradient(tmp_path):
    v = _neuron()
    nodes = retain_grads(v["o"])
    assert len(nodes) == 10
    v["o"].backward(retain_graph=True)
    n = 2.0 * -3.0 + 0.0 * 1.0 + 0.5
    dn = 1 - math.tanh(n) ** 2
    assert math.isclose(float(v["n"].grad), dn, rel_tol=1e-12)   # an intermediate kept it
    fig = draw(v["o"], tmp_path / "neuron.png", names=v)
    assert (tmp_path / "neuron.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [t.get_text() for t in fig.axes[0].texts]
    boxes = {t.splitlines()[0]: t.splitlines()[1:] for t in texts if "\n" in t}
    assert boxes["o"] == [f"value {math.tanh(n):.4f}", "grad  1.0000"]
    assert boxes["n"] == [f"value {n:.4f}", f"grad  {dn:.4f}"]
    assert boxes["w1"] == ["value -3.0000", f"grad  {2.0 * dn:.4f}"]
    assert boxes["x1"] == ["value 2.0000", "grad  -"]             # no gradient asked for
    assert sorted(t for t in texts if t and "\n" not in t) == ["Add", "Add", "Mul", "Mul", "Tanh"]


@pytest.mark.skipif(not _has_matplotlib(), reason="matplotlib not installed")
def test_draw_shows_shapes_of_arrays_and_constants():
    w = md.tensor(np.ones((2, 3)), requires_grad=True)
    loss = md.cross_entropy(w, np.array([0, 1]))
    texts = [t.get_text() for t in draw(loss, names={"w": w}).axes[0].texts]
    assert "w\nvalue shape (2, 3)\ngrad  -" in texts
    assert "<array (2,) int64>" in texts


def test_draw_refuses_a_freed_graph_and_places_leaves_next_to_their_use():
    from minidl.graph import _columns

    v = _neuron()
    nodes = graph_order(v["o"])
    col = {k: _columns(nodes)[id(t)] for k, t in v.items()}
    # b is added last: it sits one column left of its Add, not with the other leaves
    assert col["x1"] == col["w1"] == 0 and col["b"] == col["n"] - 1 == 2
    v["o"].backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        draw(v["o"])
    with pytest.raises(TypeError):
        retain_grads(v["o"].data)


# ----------------------------------------------------------------------------- links
# folders the code creates when it runs, named by the docs before they exist
CREATED_BY_CODE = {"datasets/mnist/"}


def _named_paths(text: str) -> set:
    """Repository paths a page names in backticks or links, with {a,b} alternatives spelt out."""
    found = set()
    pattern = r"(?<![\w/.$~])((?:minidl|experiments|docs|tests|datasets)/[\w./{},-]*[\w/}])"
    for path in re.findall(pattern, text):
        m = re.search(r"\{([^}]*)\}", path)
        alternatives = m.group(1).split(",") if m else [""]
        for alt in alternatives:
            found.add(path.replace(m.group(0), alt) if m else path)
    return found


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_image_and_path_a_page_names_exists(path):
    text = path.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    missing = [i for i in images if not (path.parent / i).is_file()]
    assert not missing, f"{path.name} links missing images: {missing}"
    code = re.findall(r"^```python\n.*?^```", text, flags=re.S | re.M)
    prose = text
    for block in code:              # files a code block writes itself are not repository paths
        prose = prose.replace(block, "")
    missing = sorted(p for p in _named_paths(prose) - CREATED_BY_CODE if not (ROOT / p).exists())
    assert not missing, f"{path.name} names paths that do not exist: {missing}"


def test_named_paths_reader():
    assert _named_paths("see `docs/figures/a.{csv,json}` and minidl/graph.py.") == {
        "docs/figures/a.csv", "docs/figures/a.json", "minidl/graph.py"}
    assert _named_paths("`~/.cache/minidl/mnist/`, `$HOME/docs/x`") == set()
