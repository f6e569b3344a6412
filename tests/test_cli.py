"""The command line, run as a user runs it: `python -m minidl ...` in a subprocess."""

import json
import subprocess
import sys

import pytest

from minidl.optim import create
from minidl.optim.registry import parse_value
from minidl.models import mlp
from minidl.optim import OPTIMIZERS


def minidl(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "minidl", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_optimizers_lists_every_optimizer_with_defaults():
    r = minidl("optimizers")
    assert r.returncode == 0
    for name in OPTIMIZERS:
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name
    assert "betas=(0.9, 0.999)" in r.stdout and "lr=<required>" in r.stdout
    # ADAS lists what its None defaults become: the C++ decays scaled to batch 32, the rule
    # for its step sizes, and the PyTorch file's constants for that variant
    lines = r.stdout.splitlines()
    cpp = lines[lines.index(next(x for x in lines if x.startswith("adas "))) + 1]
    assert f"beta_2={round(0.9999 ** 8, 8)}" in cpp and f"beta_3={round(0.99999 ** 8, 8)}" in cpp
    assert "lr=0.1*sqrt(batch_size)/(fan_in+1)" in cpp and "offsets=True" in cpp
    plain = lines[lines.index(next(x for x in lines if x.startswith("adas-pytorch "))) + 1]
    assert "lr=0.001" in plain and "beta_3=0.9999," in plain and "offsets=False" in plain
    assert "None" not in cpp.replace("fused=None", "")


def test_train_writes_history_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    r = minidl("train", "--optimizer", "adam", "--opt-arg", "betas=0.9,0.99", "--epochs", "1",
               "--subset", "3000", "--batch-size", "64", "--hidden", "32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Adam, 1 epochs, batch 64" in r.stdout and "final: train accuracy" in r.stdout
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 1 and hist[0]["test_acc"] > 0.7
    assert json.loads((out / "config.json").read_text())["opt_arg"] == ["betas=0.9,0.99"]
    assert (out / "checkpoint.npz").exists()
    # --resume with the same epoch count has nothing left to do and keeps the history
    r = minidl("train", "--optimizer", "adam", "--epochs", "1", "--subset", "3000",
               "--batch-size", "64", "--hidden", "32", "--out", str(out), "--resume")
    assert r.returncode == 0 and len(json.loads((out / "history.json").read_text())) == 1


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "adamm"], "unknown optimizer 'adamm'; valid choices: adabound"),
    (["--optimizer", "adam", "--opt-arg", "betas"], "--opt-arg takes NAME=VALUE"),
    (["--optimizer", "adam", "--opt-arg", "momentum=0.9"], "adam has no hyperparameter"),
    (["--optimizer", "adam", "--lr", "-1"], "invalid lr"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--device", "tpu"], "invalid choice: 'tpu' (choose from 'cpu', 'cuda')"),
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--model", "foo"], "invalid choice: 'foo' (choose from 'mlp', 'lenet')"),
    (["--hidden", "256", "0"], "--hidden must be positive, got 0"),
    (["--log-every", "0"], "--log-every must be positive, got 0"),
    (["--subset", "-5"], "--subset must be positive or 0 (all images), got -5"),
    (["--threads", "-1"], "--threads must be positive or 0"),
    (["--resume"], "--resume continues from OUT/checkpoint.npz: give --out OUT"),
])
def test_bad_arguments_get_clear_messages(args, message):
    r = minidl("train", "--subset", "100", *args)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout


def test_unwritable_out_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = minidl("train", "--subset", "100", "--out", str(blocker / "run"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"cannot write to --out {blocker / 'run'}" in r.stderr


def test_demo_checks_its_gradients():
    r = minidl("demo")
    assert r.returncode == 0 and "gradcheck against central finite differences: passed" in r.stdout


def test_parse_values():
    assert parse_value("0.9,0.99") == (0.9, 0.99)
    assert parse_value("3") == 3 and parse_value("1e-3") == 1e-3
    assert parse_value("True") is True and parse_value("none") is None
    assert parse_value("strong_wolfe") == "strong_wolfe"


def test_every_registered_optimizer_builds_and_steps():
    import numpy as np

    import minidl as md
    x, y = np.random.default_rng(0).random((8, 4), dtype=np.float32), np.arange(8) % 3
    for name in OPTIMIZERS:
        model = mlp(hidden=(5,), in_features=4, classes=3)
        extra = {"lr": 1e-6} if name.startswith("santa") else {}
        opt = create(name, model, dataset_size=8, **extra)

        def closure():
            opt.zero_grad()
            loss = md.cross_entropy(model(md.Tensor(x)), y)
            loss.backward()
            return loss
        opt.step(closure)
        assert all(np.isfinite(p.data).all() for p in model.parameters()), name


def test_cli_hands_its_batch_size_to_adas():
    opt = create("adas", mlp(hidden=(4,), in_features=3, classes=2), batch_size=64)
    group = opt.param_groups[0]
    assert group["batch_size"] == 64
    assert group["beta_3"] == 0.99999 ** 16 and group["beta_2"] == 0.9999 ** 16


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    import os
    env = {**os.environ, "MINIDL_DATA": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path),
           "HOME": str(tmp_path)}
    # no network here, and even with one the download is pointed at nowhere by a bad proxy
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    r = subprocess.run([sys.executable, "-m", "minidl", "train", "--epochs", "1",
                        "--subset", "100"],
                       env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "dataset 'mnist' not found" in r.stderr and "MINIDL_DATA" in r.stderr
