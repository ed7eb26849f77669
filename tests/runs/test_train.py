"""``chainrule train``: it learns, it is reproducible, it saves whole files, and Ctrl-C is clean."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from chainrule.mnist import load_mnist
from chainrule.runs.settings import Settings
from chainrule.runs.training import run
from tests.helpers import chainrule, chainrule_process, offline_env, start_long_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample():
    return load_mnist(normalize=True, one_hot_label=True, announce=None, source=_sample_source())


def _sample_source():
    from chainrule import mnist

    return mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)


def test_a_few_hundred_iterations_raise_accuracy(sample, tmp_path):
    record, params, paths = run(Settings(iters=300), sample, tmp_path, echo=lambda _: None, progress=False)
    first, last = record.epochs[0], record.epochs[-1]
    assert first[1] == 0 and last[1] == 280  # an epoch of the 4,000-image sample is 40 iterations
    assert first[4] < 0.3 and last[4] > 0.8
    assert np.mean(record.losses[-20:]) < np.mean(record.losses[:20]) / 2
    assert [p.name for p in paths] == ["metrics.csv", "accuracy.png", "params.npz", "run.json"]


def test_outputs_are_whole_and_readable(sample, tmp_path):
    record, params, _ = run(
        Settings(iters=80, hidden=(7,)), sample, tmp_path, echo=lambda _: None, progress=False
    )
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "iteration", "loss", "train_acc", "test_acc"]
    assert [int(r["iteration"]) for r in rows] == [0, 40]
    assert float(rows[-1]["test_acc"]) == record.epochs[-1][4]
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(tmp_path / "params.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == ["W1", "W2", "b1", "b2"]
        assert saved["W1"].shape == (784, 7) and saved["W1"].dtype == np.float32
        assert np.array_equal(saved["W2"], params["W2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".chainrule-run",
        "accuracy.png",
        "metrics.csv",
        "params.npz",
        "run.json",
    ]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_numbers_bit_for_bit(sample, tmp_path):
    a = run(Settings(iters=120, seed=5), sample, tmp_path / "a", echo=lambda _: None, progress=False)
    b = run(Settings(iters=120, seed=5), sample, tmp_path / "b", echo=lambda _: None, progress=False)
    c = run(Settings(iters=120, seed=6), sample, tmp_path / "c", echo=lambda _: None, progress=False)
    assert a[0].losses == b[0].losses and a[0].epochs == b[0].epochs
    assert all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
    assert a[0].losses != c[0].losses
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_main_command_trains_the_sample_to_the_chapter_result(tmp_path):
    """The README's main command with no network: the shipped sample, test accuracy >= 0.90."""
    r = chainrule("train", "--out", str(tmp_path / "run"), env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "using the MNIST sample shipped with chainrule (4,000 training and 1,000 test digits)" in r.stderr
    assert "training TwoLayerNet(784, 50, 10) on 4,000 images" in r.stderr
    final = next(
        line for line in r.stdout.splitlines() if line.startswith("final (the saved weights, after 10,000 ")
    )
    assert float(final.rsplit(" ", 1)[1]) >= 0.90
    assert f"wrote {tmp_path / 'run' / 'metrics.csv'}" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iters", "0"], "argument --iters: must be at least 1, not 0"),
        (["--lr", "fast"], "argument --lr: not a number: 'fast'"),
        (["--lr", "-1"], "argument --lr: must be a positive number, not -1"),
        (["--hidden", "1.5"], "argument --hidden: not a whole number: '1.5'"),
        (["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args, message, tmp_path):
    r = chainrule("train", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith(f"chainrule: error: {message} (see 'chainrule")
    assert len(r.stderr.strip().splitlines()) == 1


def test_unwritable_out_and_bad_data_dir_fail_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = chainrule("train", "--out", str(blocker / "run"), env=offline_env(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip() == f"chainrule: error: cannot write to {blocker / 'run'}: Not a directory"
    r = chainrule(
        "train", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), env=offline_env(tmp_path)
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nope") in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_stops_cleanly_and_keeps_what_was_done(tmp_path):
    out = tmp_path / "run"
    proc, _ = start_long_run(tmp_path, out)  # after three epochs
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) >= 3
    with np.load(out / "params.npz", allow_pickle=False) as saved:
        assert saved["W1"].shape == (784, 50)
    assert sorted(p.name for p in out.iterdir()) == [
        ".chainrule-run",
        "accuracy.png",
        "metrics.csv",
        "params.npz",
        "run.json",
    ]


def test_gradcheck_command_on_the_sample(tmp_path):
    r = chainrule("gradcheck", env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    values = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert sorted(values) == ["W1", "W2", "b1", "b2"]
    assert all(float(v) <= 1e-6 for v in values.values())


def test_a_closed_stderr_still_saves_the_run(tmp_path):

    out = tmp_path / "run"
    r = chainrule_process(
        "train", "--iters", "20", "--quiet", "--out", str(out),
        env=offline_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.close(2),
    )  # fmt: skip
    assert r.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".chainrule-run",
        "accuracy.png",
        "metrics.csv",
        "params.npz",
        "run.json",
    ]
