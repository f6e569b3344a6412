"""Command line: `python -m minidl train ...`, `python -m minidl optimizers`,
`python -m minidl demo`.

    python -m minidl train --model mlp --hidden 256 --optimizer sgd --lr 0.1 --epochs 5 \\
        --batch-size 32 --device cpu --out runs/sgd
    python -m minidl train --optimizer adam --opt-arg betas=0.9,0.99 --epochs 3

The CLI parses arguments, calls the library (models.MODELS, optim.create, train.fit) and turns
its exceptions into one line `error: ...` with exit status 1 (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Flags a resumed run takes from its checkpoint when they are not given, with their defaults
# for a new run.
RESUMABLE = {"model": "mlp", "hidden": None, "dataset": "mnist", "subset": 0,
             "optimizer": "sgd", "batch_size": 32, "seed": 0}
HYPERPARAMETER_FLAGS = ("lr", "momentum", "weight_decay")


class CliError(Exception):
    """A problem with the command line, reported as one line `error: ...`."""


def cmd_optimizers(args) -> int:
    from minidl.optim import OPTIMIZERS, Adas, hyperparameters  # noqa: PLC0415
    from minidl.optim.adas import effective_defaults  # noqa: PLC0415

    for key in sorted(OPTIMIZERS):
        entry = OPTIMIZERS[key]
        defaults = {**hyperparameters(entry.factory), **entry.preset}
        if entry.factory is Adas:  # its None defaults depend on the variant and batch size
            defaults.update(effective_defaults(defaults["variant"], defaults["batch_size"]))
        shown = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"{key:<14} {entry.summary}\n{'':<14} {shown}")
    return 0


def _resolve(args) -> dict:
    """Fill the flags not given: from the checkpoint on --resume, else the defaults. Returns
    the hyperparameters given on this command line (--lr ..., --opt-arg ...)."""
    from minidl import checkpoint, optim  # noqa: PLC0415

    if args.out is not None and not args.out.strip():
        raise CliError("--out is empty: give a folder, or leave --out out to write nothing")
    if args.resume and not args.out:
        raise CliError("--resume continues from OUT/checkpoint.npz: give --out OUT")
    if args.resume and args.overwrite:
        raise CliError("--resume and --overwrite contradict each other: choose one")
    try:
        given = optim.parse_hyperparameters(args.opt_arg)
    except ValueError as e:
        raise CliError(f"--opt-arg takes NAME=VALUE: {e}") from None
    for flag in HYPERPARAMETER_FLAGS:
        value = getattr(args, flag)
        if value is not None and flag in given:
            raise CliError(f"--{flag.replace('_', '-')} {value} and --opt-arg {flag}="
                           f"{given[flag]} both set {flag}: give one")
        if value is not None:
            given[flag] = value
    saved = {}
    if args.resume:
        path = Path(args.out) / checkpoint.CHECKPOINT
        if not path.exists():
            raise CliError(f"--resume: no checkpoint at {path} (nothing to continue; "
                           "leave out --resume to start a new run there)")
        saved = checkpoint.read(path)["identity"]
    if args.hidden is not None and (args.model or saved.get("model")) == "lenet":
        raise CliError("--hidden sets the MLP's hidden layers; --model lenet has fixed sizes")
    for name, default in RESUMABLE.items():
        if getattr(args, name) is None:
            setattr(args, name, saved.get(name, default))
    if args.model == "mlp" and args.hidden is None:
        args.hidden = [256]
    args.opt_args = {**saved.get("opt_args", {}), **given}
    return given


def _check_values(args) -> None:
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--log-every", args.log_every),
                        *(("--hidden", h) for h in args.hidden or ())):
        if value <= 0:
            raise CliError(f"{name} must be positive, got {value}")
    for name, value, zero in (("--subset", args.subset, "all images"),
                              ("--threads", args.threads, "BLAS's default")):
        if value < 0:
            raise CliError(f"{name} must be positive or 0 ({zero}), got {value}")
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    if args.model == "mlp":
        from minidl.models import mlp_parameter_count  # noqa: PLC0415

        count = mlp_parameter_count(args.hidden)
        need = 4 * 4 * count  # float32 parameters, gradients and up to two optimizer states
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if need > have:
            raise CliError(f"--hidden {' '.join(map(str, args.hidden))} makes a model of "
                           f"{count:,} parameters: training it needs about {need / 1e9:,.0f} "
                           f"GB, this machine has {have / 1e9:.0f} GB")


def _threads(n: int) -> None:
    cores = os.cpu_count() or 1
    if n > cores:
        print(f"note: --threads {n} is more than the {cores} cores here; using {cores}",
              file=sys.stderr)
        n = cores
    from minidl.threads import set_num_threads  # noqa: PLC0415

    set_num_threads(n)


def _conflict_message(err) -> str:
    """One line naming each conflict by its flag: `--lr 0.5 given, checkpoint was trained
    with 0.1`. Differences that follow from a named flag (parameter shapes after --hidden,
    sample counts after --subset) are left out when such a flag is among them."""
    from minidl.checkpoint import STRUCTURAL  # noqa: PLC0415

    def shown(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    found = [c for c in err.conflicts if c[0] != "opt_args"]  # named by hyperparameter
    if any(k in RESUMABLE or k in HYPERPARAMETER_FLAGS for k, _, _ in found):
        found = [c for c in found if c[0] not in STRUCTURAL or c[0] in RESUMABLE]
    if any(k == "optimizer" for k, _, _ in found):  # then its hyperparameters differ too
        found = [(k, g, s) for k, g, s in found if k in RESUMABLE or " " in k
                 or (k in HYPERPARAMETER_FLAGS and g is not None)]
    parts = []
    for name, given, saved in found:
        if name in RESUMABLE or name in HYPERPARAMETER_FLAGS:
            flag = f"--{name.replace('_', '-')} {shown(given)}"
        elif " " in name:  # a library-level name such as 'parameter shapes'
            flag = f"{name} {shown(given)}"
        else:
            flag = f"--opt-arg {name}={shown(given)}"
        parts.append(f"{flag} given, checkpoint was trained with {shown(saved)}")
    return ("cannot resume: " + "; ".join(parts)
            + " (--allow-change NAME lets a hyperparameter take its new value)")


def cmd_train(args) -> int:
    import numpy as np  # noqa: PLC0415

    from minidl import backend, checkpoint, models, optim  # noqa: PLC0415
    from minidl.data import load_dataset, scale  # noqa: PLC0415
    from minidl.train import fit  # noqa: PLC0415

    try:
        backend.check_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise CliError(str(e)) from None
    given = _resolve(args)
    _check_values(args)
    try:
        out = checkpoint.prepare_folder(args.out, args.resume, args.overwrite)
    except FileExistsError as e:
        raise CliError(f"{e} (--resume continues it, --overwrite replaces it)") from None
    except OSError as e:
        raise CliError(f"cannot write to --out {args.out}: {e}") from None
    if args.threads:
        _threads(args.threads)
    backend.manual_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset)
    x_train, x_test = (models.as_inputs(args.model, scale(x)) for x in (x_train, x_test))
    if args.subset:
        x_train, y_train = x_train[:args.subset], y_train[:args.subset]
    entry = models.MODELS[args.model]
    model = entry.build(hidden=args.hidden) if args.model == "mlp" else entry.build()
    model.to(args.device)
    if "batch_size" in given and "batch_size" in optim.hyperparameters(args.optimizer):
        raise CliError(f"--opt-arg batch_size: {args.optimizer} takes its batch size from "
                       f"--batch-size (now {args.batch_size})")
    try:
        optimizer = optim.create(args.optimizer, model, dataset_size=len(x_train),
                                 batch_size=args.batch_size, **args.opt_args)
    except (ValueError, TypeError) as e:
        raise CliError(str(e)) from None
    config = {k: getattr(args, k) for k in ("model", "hidden", "dataset", "subset",
                                            "optimizer", "opt_args")}

    def write_config(identity: dict) -> None:  # only once the checkpoint has loaded
        data = {k: v for k, v in vars(args).items() if k != "func"}
        checkpoint.write_json(out / "config.json", {**data, "run": identity})

    print(f"{args.model} on {args.dataset} ({len(x_train)} training images), "
          f"{type(optimizer).__name__}, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.device}")
    try:  # numpy's overflow warnings: a divergence is reported once, by fit
        with np.errstate(over="ignore", invalid="ignore"):
            history = fit(model, optimizer, (x_train, y_train), args.epochs,
                          test=(x_test, y_test.astype("int64")), batch_size=args.batch_size,
                          seed=args.seed, device=args.device, out=out, resume=args.resume,
                          overwrite=args.overwrite, config=config,
                          allow_changes=[*args.allow_change, "opt_args"],
                          eval_train=not args.no_eval_train, log_every=args.log_every,
                          on_start=write_config if out is not None else None)
    except checkpoint.ResumeConflict as e:
        raise CliError(_conflict_message(e)) from None
    if history.stop_reason == "interrupted":
        return 130
    if len(history):
        last = history.records[-1]
        train_part = (f"train accuracy {last['train_acc']:.4f} "
                      f"({last['train_errors']} errors), " if "train_acc" in last else "")
        print(f"final: {train_part}test accuracy {last['test_acc']:.4f}")
    return 0


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
    from minidl.models import MODELS  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m minidl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on MNIST or Fashion-MNIST",
                       epilog="--resume takes the flags it is not given from the checkpoint "
                              "and refuses ones that contradict it; see the README's "
                              "'Runs and checkpoints'.")
    t.add_argument("--model", choices=list(MODELS), default=None, help="default: mlp")
    t.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="hidden layer sizes of the MLP (default: 256)")
    t.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default=None,
                   help="default: mnist")
    t.add_argument("--optimizer", default=None,
                   help="default: sgd; see `python -m minidl optimizers`")
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--momentum", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--opt-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="any optimizer hyperparameter, e.g. betas=0.9,0.99 (repeatable)")
    t.add_argument("--epochs", type=int, default=5,
                   help="total epochs (with --resume: may extend a finished run)")
    t.add_argument("--batch-size", type=int, default=None, help="default: 32")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    t.add_argument("--seed", type=int, default=None, help="default: 0")
    t.add_argument("--out", default=None, help="folder for history and checkpoints")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from OUT/checkpoint.npz")
    t.add_argument("--overwrite", action="store_true",
                   help="delete the run already in OUT (checkpoint, history) and start anew")
    t.add_argument("--allow-change", action="append", default=[], metavar="NAME",
                   help="with --resume: let hyperparameter NAME (e.g. lr) take the value given "
                        "now instead of the checkpoint's (repeatable)")
    t.add_argument("--subset", type=int, default=None, help="train on the first N images only")
    t.add_argument("--no-eval-train", action="store_true",
                   help="skip the full training-set evaluation after each epoch")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 keeps BLAS's default; at most the number "
                        "of cores)")
    t.set_defaults(func=cmd_train)

    o = sub.add_parser("optimizers", help="list every optimizer with its defaults")
    o.set_defaults(func=cmd_optimizers)
    d = sub.add_parser("demo", help="a short autograd demo with a gradient check")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    """Run a command; every expected failure is one line on stderr and exit status 1."""
    from minidl.checkpoint import CheckpointError  # noqa: PLC0415
    from minidl.data import DataError  # noqa: PLC0415
    from minidl.train import NonFiniteLossError  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except NonFiniteLossError as e:
        print(f"error: {e}: the run diverged (try a smaller --lr); the checkpoint and history "
              "keep the last finite epoch", file=sys.stderr)
    except (CliError, CheckpointError, DataError) as e:  # messages that name the problem
        print(f"error: {e}", file=sys.stderr)
    except (OSError, ValueError) as e:  # files and folders: e names the path
        print(f"error: {e}", file=sys.stderr)
    except MemoryError:
        print("error: out of memory (a smaller --hidden, --batch-size or --subset?)",
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
