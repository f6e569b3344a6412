"""The command line, run as a user runs it: `python -m minidl ...` in a subprocess."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

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
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--hidden", "100000000"], "makes a model of 79,500,000,010 parameters"),
    (["--optimizer", "adas", "--opt-arg", "batch_size=32"],
     "adas takes its batch size from --batch-size (now 32)"),
    (["--optimizer", "adam", "--opt-arg", "params=3"], "adam has no hyperparameter params"),
    (["--optimizer", "adam", "--opt-arg", "name=x"], "adam has no hyperparameter name"),
    (["--lr", "0.1", "--opt-arg", "lr=0.2"], "--lr 0.1 and --opt-arg lr=0.2 both set lr"),
    (["--model", "lenet", "--hidden", "64"], "--model lenet has fixed sizes"),
    (["--out", ""], "--out is empty"),
])
def test_bad_arguments_get_clear_messages(args, message):
    r = minidl("train", "--subset", "100", *args)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and message in r.stderr.strip().splitlines()[-1]


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


SMALL = ("--subset", "300", "--hidden", "16", "--batch-size", "50", "--no-eval-train")


def test_resume_refuses_contradicting_flags_in_one_line_and_keeps_config(tmp_path):
    out = str(tmp_path)
    assert minidl("train", *SMALL, "--epochs", "1", "--lr", "0.1", "--out", out).returncode == 0
    config = (tmp_path / "config.json").read_text()
    assert "<function" not in config and json.loads(config)["run"]["lr"] == 0.1
    r = minidl("train", "--resume", "--out", out, "--epochs", "2", "--lr", "0.5",
               "--subset", "200", "--optimizer", "adam", "--hidden", "128")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    for part in ("--lr 0.5 given, checkpoint was trained with 0.1",
                 "--subset 200 given, checkpoint was trained with 300",
                 "--optimizer adam given, checkpoint was trained with sgd",
                 "--hidden 128 given, checkpoint was trained with 16"):
        assert part in line
    assert (tmp_path / "config.json").read_text() == config  # a failed resume keeps it
    # flags not given come from the checkpoint; --epochs extends; --allow-change lets lr change
    r = minidl("train", "--resume", "--out", out, "--epochs", "2", "--lr", "0.05",
               "--allow-change", "lr")
    assert r.returncode == 0, r.stderr
    assert "(300 training images), SGD, 2 epochs, batch 50" in r.stdout
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["lr"] for h in hist] == [0.1, 0.05]
    assert json.loads((tmp_path / "config.json").read_text())["run"]["lr"] == 0.05


def test_existing_runs_are_kept_unless_resumed_or_overwritten(tmp_path):
    out = str(tmp_path / "run")
    assert minidl("train", *SMALL, "--epochs", "2", "--out", out).returncode == 0
    r = minidl("train", *SMALL, "--epochs", "1", "--out", out)
    assert r.returncode == 1 and "already holds a run" in r.stderr and "--overwrite" in r.stderr
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 2
    assert minidl("train", *SMALL, "--epochs", "1", "--out", out, "--overwrite").returncode == 0
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 1
    r = minidl("train", *SMALL, "--resume", "--out", str(tmp_path / "empty"))
    assert r.returncode == 1 and "--resume: no checkpoint at" in r.stderr


def test_divergence_stops_the_run_with_one_line(tmp_path):
    r = minidl("train", *SMALL, "--epochs", "3", "--lr", "1e10", "--log-every", "1",
               "--out", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Warning" not in r.stderr
    assert re.search(r"^error: loss became (nan|inf) at epoch 1, batch \d+: ", r.stderr, re.M)
    assert not (tmp_path / "history.json").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x00garbage" * 50, "not an .npz archive"),
    (None, "is a folder, not a checkpoint file"),
], ids=["empty", "random-bytes", "folder"])
def test_unusable_checkpoints_are_one_line_errors(tmp_path, content, message):
    ckpt = tmp_path / "checkpoint.npz"
    ckpt.mkdir() if content is None else ckpt.write_bytes(content)
    r = minidl("train", *SMALL, "--resume", "--out", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_too_many_threads_are_capped_with_a_note():
    r = minidl("train", *SMALL, "--epochs", "1", "--threads", "100000")
    assert r.returncode == 0 and f"using {os.cpu_count()}" in r.stderr


def test_ctrl_c_saves_and_exits_130(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "minidl", "train", "--subset", "60000",
                          "--hidden", "16", "--epochs", "50", "--no-eval-train",
                          "--out", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 100
    while not (tmp_path / "config.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "checkpoint saved to" in out and (tmp_path / "checkpoint.npz").exists()


def test_library_errors_in_the_cli_are_one_line(tmp_path, monkeypatch, capsys):
    from minidl.__main__ import main
    from minidl.data import clear_cache, idx

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(idx, "_read_checked", denied)
    clear_cache()  # files another test loaded are served from memory without being read
    assert main(["train", *SMALL]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 13] Permission denied") and err.count("\n") == 1
    monkeypatch.undo()

    def full(f, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(np, "savez", full)
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].split("\r")[-1] == "error: [Errno 28] No space left on device"
    assert "Traceback" not in err
