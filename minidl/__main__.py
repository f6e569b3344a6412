"""Command line: `python -m minidl train ...`, `python -m minidl optimizers`,
`python -m minidl demo`.

    python -m minidl train --model mlp --hidden 256 --optimizer sgd --lr 0.1 --epochs 5 \\
        --batch-size 32 --device cpu --out runs/sgd
    python -m minidl train --optimizer adam --opt-arg betas=0.9,0.99 --epochs 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path


def _parse_value(text: str):
    """'0.9' -> 0.9, '3' -> 3, 'true' -> True, 'none' -> None, '0.9,0.99' -> (0.9, 0.99)."""
    if "," in text:
        return tuple(_parse_value(t) for t in text.split(",") if t)
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _opt_args(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --opt-arg takes NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return out


_REQUIRED = "<required>"


def _hyperparameters(factory) -> dict:
    """The named hyperparameters of an optimizer class or factory, with their defaults."""
    sig = inspect.signature(factory)
    return {n: (_REQUIRED if p.default is p.empty else p.default)
            for n, p in sig.parameters.items()
            if n not in ("params", "base_optimizer") and p.kind is p.POSITIONAL_OR_KEYWORD}


def make_optimizer(name: str, params, dataset_size: int | None = None,
                   batch_size: int | None = None, **kwargs):
    """Build optimizer `name` (see `python -m minidl optimizers`) with keyword hyperparameters;
    a clear SystemExit for unknown names, unknown hyperparameters or bad values. A required
    `N` (Santa's training-set size) is taken from `dataset_size`, and ADAS's `batch_size`
    (its initial step sizes and decays depend on it) from `batch_size`."""
    from minidl.optim import OPTIMIZERS  # noqa: PLC0415

    key = name.lower()
    if key not in OPTIMIZERS:
        raise SystemExit(f"error: unknown optimizer {name!r}; valid choices: "
                         f"{', '.join(sorted(OPTIMIZERS))}")
    entry = OPTIMIZERS[key]
    valid = _hyperparameters(entry.factory)
    unknown = set(kwargs) - set(valid)
    if unknown:
        raise SystemExit(f"error: {name} has no hyperparameter {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(valid)}")
    kwargs = {**entry.preset, **kwargs}
    if valid.get("N") == _REQUIRED and "N" not in kwargs and dataset_size:
        kwargs["N"] = dataset_size
    if "batch_size" in valid and "batch_size" not in kwargs and batch_size:
        kwargs["batch_size"] = batch_size
    missing = [k for k, v in valid.items() if v == _REQUIRED and k not in kwargs]
    if missing:
        raise SystemExit(f"error: {name} needs {', '.join(missing)} "
                         f"(e.g. --opt-arg {missing[0]}=VALUE)")
    try:
        return entry.factory(params, **kwargs)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"error: {name}: {e}") from None


def cmd_optimizers(args) -> int:
    from minidl.optim import OPTIMIZERS, Adas  # noqa: PLC0415
    from minidl.optim.adas import effective_defaults  # noqa: PLC0415

    for key in sorted(OPTIMIZERS):
        entry = OPTIMIZERS[key]
        defaults = {**_hyperparameters(entry.factory), **entry.preset}
        if entry.factory is Adas:  # its None defaults depend on the variant and batch size
            defaults.update(effective_defaults(defaults["variant"], defaults["batch_size"]))
        shown = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"{key:<14} {entry.summary}\n{'':<14} {shown}")
    return 0


def cmd_train(args) -> int:
    import numpy as np  # noqa: PLC0415

    from minidl import backend, models  # noqa: PLC0415
    from minidl.data import DataError, flatten, load_dataset, scale  # noqa: PLC0415
    from minidl.train import fit  # noqa: PLC0415

    try:
        backend.check_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--log-every", args.log_every), *(("--hidden", h) for h in args.hidden)):
        if value <= 0:
            raise SystemExit(f"error: {name} must be positive, got {value}")
    for name, value, zero in (("--subset", args.subset, "all images"),
                              ("--threads", args.threads, "BLAS's default")):
        if value < 0:
            raise SystemExit(f"error: {name} must be positive or 0 ({zero}), got {value}")
    if args.resume and not args.out:
        raise SystemExit("error: --resume continues from OUT/checkpoint.npz: give --out OUT")
    if args.threads:
        _set_threads(args.threads)
    backend.manual_seed(args.seed)
    try:
        (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset)
    except DataError as e:  # missing, corrupt or undownloadable files: the message says which
        raise SystemExit(f"error: {e}") from None
    x_train, x_test = scale(x_train), scale(x_test)
    if args.model == "mlp":
        x_train, x_test = flatten(x_train), flatten(x_test)
        model = models.mlp(hidden=args.hidden)
    else:
        x_train, x_test = x_train[:, None], x_test[:, None]
        model = models.lenet()
    if args.subset:
        x_train, y_train = x_train[:args.subset], y_train[:args.subset]
    model.to(args.device)
    kwargs = _opt_args(args.opt_arg)
    for flag in ("lr", "momentum", "weight_decay"):
        if getattr(args, flag) is not None:
            kwargs[flag] = getattr(args, flag)
    optimizer = make_optimizer(args.optimizer, model, dataset_size=len(x_train),
                               batch_size=args.batch_size, **kwargs)
    out = Path(args.out) if args.out else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(vars(args), indent=2, default=str))
        except OSError as e:
            raise SystemExit(f"error: cannot write to --out {out}: {e}") from None
    print(f"{args.model} on {args.dataset} ({len(x_train)} training images), "
          f"{type(optimizer).__name__}, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.device}")
    history = fit(model, optimizer, (x_train, y_train), args.epochs,
                  test=(x_test, y_test.astype(np.int64)), batch_size=args.batch_size,
                  seed=args.seed, device=args.device, out=out, resume=args.resume,
                  eval_train=not args.no_eval_train, log_every=args.log_every)
    if len(history):
        last = history.records[-1]
        train_part = (f"train accuracy {last['train_acc']:.4f} "
                      f"({last['train_errors']} errors), " if "train_acc" in last else "")
        print(f"final: {train_part}test accuracy {last['test_acc']:.4f}")
    return 0


def _set_threads(n: int) -> None:
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        print("note: threadpoolctl is not installed; set OPENBLAS_NUM_THREADS / "
              "OMP_NUM_THREADS before starting Python instead", file=sys.stderr)
        return
    threadpool_limits(n)


def cmd_demo(args) -> int:
    """A few lines of autograd, checked against finite differences."""
    import minidl as md  # noqa: PLC0415

    md.manual_seed(0)
    with md.default_dtype("float64"):
        x = md.randn(4, 3)
        w = md.randn(3, 2, requires_grad=True)
        loss = md.cross_entropy(x @ w, [0, 1, 1, 0])
        loss.backward()
        print(f"loss = {loss.item():.6f}\ndloss/dw =\n{w.grad}")
        ok = md.gradcheck(lambda w: md.cross_entropy(x @ w, [0, 1, 1, 0]), [w])
    print(f"gradcheck against central finite differences: {'passed' if ok else 'FAILED'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minidl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on MNIST or Fashion-MNIST")
    t.add_argument("--model", choices=["mlp", "lenet"], default="mlp")
    t.add_argument("--hidden", type=int, nargs="+", default=[256],
                   help="hidden layer sizes of the MLP (default: 256)")
    t.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    t.add_argument("--optimizer", default="sgd", help="see `python -m minidl optimizers`")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--momentum", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--opt-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="any optimizer hyperparameter, e.g. betas=0.9,0.99 (repeatable)")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder for history and checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.add_argument("--subset", type=int, default=0, help="train on the first N images only")
    t.add_argument("--no-eval-train", action="store_true",
                   help="skip the full training-set evaluation after each epoch")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: on a 2-core machine with other work running, "
                        "2 threads made the MLP epoch 2-26x slower; 0 keeps BLAS's default; "
                        "needs threadpoolctl)")
    t.set_defaults(func=cmd_train)

    o = sub.add_parser("optimizers", help="list every optimizer with its defaults")
    o.set_defaults(func=cmd_optimizers)
    d = sub.add_parser("demo", help="a short autograd demo with a gradient check")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
