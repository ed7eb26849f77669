"""Safety of training: labels that are not classes, run folders, signals, broken pipes, limits."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chainrule.runs import folder as rundir
from chainrule.runs import outputs, settings
from chainrule.runs import training as train
from chainrule.runs.folder import MARKER, RunError, claim_out, fresh_run_dir
from chainrule.runs.settings import Settings
from chainrule.runs.training import run
from tests.helpers import chainrule, offline_env, start_long_run

RUN = [MARKER, "accuracy.png", "metrics.csv", "params.npz", "run.json"]  # a saved run folder, sorted


@pytest.fixture(scope="module")
def sample():
    from chainrule import mnist

    source = mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)
    return mnist.load_mnist(normalize=True, one_hot_label=True, announce=None, source=source)


def error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one error line a failed command prints last, after checking there is no traceback."""
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("chainrule: error: "), r.stderr
    return lines[-1].removeprefix("chainrule: error: ")


def quiet(_: str) -> None:
    pass


def saved(out: Path) -> tuple[list[dict[str, str]], dict[str, np.ndarray]]:
    """A run folder's metrics rows and weights, after checking the set is whole."""
    assert sorted(p.name for p in out.iterdir()) == RUN
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    with np.load(out / "params.npz", allow_pickle=False) as f:
        params = {k: f[k] for k in f.files}
    return rows, params


def leftovers(parent: Path) -> list[str]:
    """Hidden staging folders a save left beside its run folder."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- labels outside 0..C-1 -----------------------------------------------------------------------


@pytest.mark.parametrize(("label", "shown"), [(-1, "-1"), (3, "3")])
def test_softmax_with_loss_refuses_a_label_that_is_not_a_class(label, shown):
    from chainrule.generated.layers import SoftmaxWithLoss

    layer = SoftmaxWithLoss()
    scores = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=rf"^label {shown} is not a class: labels must be 0\.\.2$"):
        layer.forward(scores, np.array([0, label]))
    assert layer.t is None and layer.loss is None  # refused before anything was cached
    # the last class is still a label: -1's old silent meaning, asked for by its number
    assert layer.forward(scores, np.array([2, 0])) == pytest.approx(
        -(np.log(np.exp(2) / np.exp([0.0, 1.0, 2.0]).sum()) + np.log(np.e / (np.e + 2))) / 2
    )


@pytest.mark.parametrize(
    ("t", "message"),
    [
        (np.array([1.0, 0.0]), "labels must be one-hot rows of shape (2, 3) or 2 integer class indices"),
        (np.array([1]), "labels must be one-hot rows of shape (2, 3) or 2 integer class indices"),
        (np.eye(2), "one-hot labels of shape (2, 2) do not match scores of shape (2, 3)"),
    ],
)
def test_labels_of_the_wrong_kind_or_shape_are_refused(t, message):
    from chainrule.generated.layers import SoftmaxWithLoss

    with pytest.raises(ValueError) as info:
        SoftmaxWithLoss().forward(np.zeros((2, 3)), t)
    assert str(info.value).startswith(message)


def test_cross_entropy_error_refuses_a_negative_label():
    from chainrule.generated.layers import cross_entropy_error

    y = np.array([[0.25, 0.75]])
    with pytest.raises(ValueError, match=r"^label -1 is not a class: labels must be 0\.\.1$"):
        cross_entropy_error(y, np.array([-1]))
    assert cross_entropy_error(y, np.array([1])) == pytest.approx(-np.log(0.75))


def test_train_checks_the_labels_once_before_the_first_step():
    from chainrule.generated.train_neuralnet import train

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(20, 6))
    t = rng.integers(0, 3, size=20)
    bad = t.copy()
    bad[7] = -1
    started = []
    with pytest.raises(ValueError, match=r"^label -1 is not a class: labels must be 0\.\.2$"):
        train(x, bad, x, t, iters_num=5, batch_size=4, hidden_size=4, on_start=started.append)
    assert started == []  # no network was built: the check comes first
    network, history = train(x, t, x, t, iters_num=5, batch_size=4, hidden_size=4, on_epoch=lambda *a: None)
    assert len(history.train_loss_list) == 5 and network.params["W2"].shape == (4, 3)


# --- run folders ---------------------------------------------------------------------------------


def test_two_runs_in_the_same_second_get_different_folders(tmp_path):
    second = time.struct_time((2026, 11, 28, 3, 4, 5, 5, 332, 0))
    runs = [fresh_run_dir(tmp_path / "runs", now=lambda: second) for _ in range(3)]
    assert [r.path.name for r in runs] == ["20261128-030405", "20261128-030405-2", "20261128-030405-3"]
    assert all(r.created and sorted(os.listdir(r.path)) == [MARKER] for r in runs)


def test_a_folder_made_by_someone_else_in_that_second_is_skipped(tmp_path):
    second = time.struct_time((2026, 11, 28, 3, 4, 5, 5, 332, 0))
    (tmp_path / "20261128-030405").mkdir()
    (tmp_path / "20261128-030405" / "notes.txt").write_text("mine")
    claimed = fresh_run_dir(tmp_path, now=lambda: second)
    assert claimed.path.name == "20261128-030405-2"
    assert (tmp_path / "20261128-030405" / "notes.txt").read_text() == "mine"


def test_out_with_a_run_needs_force_and_is_then_replaced_as_a_whole(sample, tmp_path):
    out = tmp_path / "run"
    run(Settings(iters=81, hidden=(7,), seed=1), sample, out, echo=quiet, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RunError, match=r"run already holds a training run; add --force to replace it"):
        claim_out(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    record, params, _ = run(Settings(iters=41, hidden=(5,)), sample, claim_out(out, force=True), echo=quiet)
    rows, params = saved(out)
    assert [int(r["iteration"]) for r in rows] == [0, 40]  # the new run's two epochs, not the old three
    assert params["W1"].shape == (784, 5) and params["W2"].shape == (5, 10)
    assert leftovers(tmp_path) == []  # the old set was removed, not left beside


def test_the_command_refuses_a_run_without_force_and_replaces_it_with(tmp_path):
    out = tmp_path / "run"
    assert (
        chainrule(
            "train", "--iters", "41", "--hidden", "6", "--out", str(out), env=offline_env(tmp_path)
        ).returncode
        == 0
    )
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = chainrule("train", "--iters", "81", "--out", str(out), env=offline_env(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"chainrule: error: {out} already holds a training run; add --force to replace it, or choose another --out"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    r = chainrule("train", "--iters", "81", "--out", str(out), "--force", env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    rows, params = saved(out)
    assert len(rows) == 3 and params["W1"].shape == (784, 50)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_folder_that_holds_no_run_is_refused_even_with_force(tmp_path, force):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years")
    (mine / "metrics.csv").write_text("my own metrics")
    r = chainrule("train", "--iters", "5", "--out", str(mine), *force, env=offline_env(tmp_path))
    assert r.returncode == 2
    assert error_line(r) == (
        f"{mine} is not empty and is not a chainrule run folder (thesis.txt);"
        " chainrule replaces only its own runs: choose a new or empty folder"
    )
    assert sorted(os.listdir(mine)) == ["metrics.csv", "thesis.txt"]
    assert (mine / "thesis.txt").read_text() == "three years"
    assert (mine / "metrics.csv").read_text() == "my own metrics"


def test_a_run_folder_with_the_users_files_in_it_is_not_replaced(sample, tmp_path):
    out = tmp_path / "run"
    run(Settings(iters=5), sample, out, echo=quiet, progress=False)
    (out / "notes.txt").write_text("what I saw")
    with pytest.raises(RunError, match=r"is not a chainrule run folder \(notes.txt\)"):
        claim_out(out, force=True)
    assert (out / "notes.txt").read_text() == "what I saw"


def test_the_current_folder_and_an_empty_folder(sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for here in (Path("."), tmp_path, tmp_path.parent):
        with pytest.raises(RunError, match=r"is the current folder or one of its parents"):
            claim_out(here, force=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    claimed = claim_out(empty)
    assert (claimed.created, claimed.replaces, os.listdir(empty)) == (False, False, [MARKER])
    claimed.release()  # nothing saved: the folder is given back as it was found
    assert empty.is_dir() and os.listdir(empty) == []


def test_nothing_is_left_behind_when_a_run_cannot_start(tmp_path):
    r = chainrule("train", "--iters", "3", "--batch-size", "4001", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 2
    assert (
        error_line(r)
        == "--batch-size 4,001 is larger than the training set (4,000 images); use at most 4,000"
    )
    assert os.listdir(tmp_path) == []  # runs/ and its new folder were removed again


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_save_a_whole_set(tmp_path, signum, status):
    out = tmp_path / "run"
    proc, _ = start_long_run(tmp_path, out)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert f"by {signal.Signals(signum).name}; saved what was done" in stderr
    rows, params = saved(out)
    assert len(rows) >= 3 and params["W1"].shape == (784, 50)
    assert all(np.isfinite(v).all() for v in params.values())
    assert leftovers(tmp_path) == []


def test_ctrl_c_twice_leaves_one_whole_new_set_in_place_of_the_old(tmp_path):
    out = tmp_path / "run"
    first = chainrule(
        "train", "--iters", "41", "--hidden", "6", "--seed", "3", "--out", str(out), env=offline_env(tmp_path)
    )
    assert first.returncode == 0, first.stderr
    proc, _ = start_long_run(tmp_path, out, "--force")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr
    rows, params = saved(out)
    assert len(rows) >= 3 and params["W1"].shape == (784, 50)  # all of the new run, none of the old
    assert (
        stdout.splitlines()[-1]
        == f"wrote {out / 'metrics.csv'}, {out / 'accuracy.png'}, {out / 'params.npz'}, {out / 'run.json'}"
    )
    assert leftovers(tmp_path) == []


def test_signals_while_saving_are_noted_and_do_not_tear_the_set(sample, tmp_path, monkeypatch):
    """Two Ctrl-Cs arrive in the middle of the save; it finishes, whole."""
    draw = outputs.accuracy_png

    def interrupted_twice(record):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return draw(record)

    monkeypatch.setattr(outputs, "accuracy_png", interrupted_twice)
    with train.Stops() as stops:
        record, params, paths = run(Settings(iters=41), sample, tmp_path / "run", echo=quiet, stops=stops)
    assert (stops.signum, stops.count) == (signal.SIGINT, 2)
    assert record.interrupted_at is None and len(record.losses) == 41
    rows, saved_params = saved(tmp_path / "run")
    assert [int(r["iteration"]) for r in rows] == [0, 40]
    assert np.array_equal(saved_params["W1"], params["W1"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


def test_a_signal_before_training_stops_at_once_and_saves_nothing(tmp_path):
    with pytest.raises(train.Stopped) as info, train.Stops():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert info.value.signum == signal.SIGTERM


# --- a closed stdout -----------------------------------------------------------------------------


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path):
    """``chainrule train | head -1``: one line read, the pipe closed, the run goes on and saves."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", "--iters", "200", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(tmp_path),
    )
    assert proc.stdout.readline().startswith("epoch   0  iteration      0")
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr
    rows, _ = saved(out)
    assert [int(r["iteration"]) for r in rows] == list(range(0, 200, 40))  # every epoch, to the end


def test_say_sends_the_rest_of_a_closed_pipe_to_devnull():
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        train.say("first", stream)  # EPIPE: silenced, not raised
        train.say("second", stream)
        assert os.fstat(stream.fileno()).st_rdev == os.stat(os.devnull).st_rdev


# --- a loss that is not finite -------------------------------------------------------------------


def test_a_huge_learning_rate_stops_in_one_line_and_saves_nothing(tmp_path):
    r = chainrule("train", "--lr", "1e308", "--iters", "100", cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 2
    assert error_line(r) in {
        f"the loss became {v} at iteration 1: the learning rate 1e+308 is too large; try a smaller --lr"
        " such as 1e+307; nothing was saved (no epoch ended with weights that gave a finite loss)"
        for v in ("nan", "inf")
    }
    assert os.listdir(tmp_path) == []  # no run folder, no runs/


def test_divergence_keeps_the_last_epoch_whose_weights_gave_a_finite_loss(sample, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunError) as info:
        run(Settings(iters=200, lr=1e10), sample, out, echo=quiet, progress=False)
    message = str(info.value)
    assert message.startswith("the loss became ")
    assert (
        " at iteration 2: the learning rate 1e+10 is too large; try a smaller --lr such as 1e+09;" in message
    )
    assert message.endswith(
        f"saved epoch 0 (iteration 0), the last with weights that gave a finite loss, to {out}"
    )
    rows, params = saved(out)
    assert [int(r["iteration"]) for r in rows] == [0]
    assert all(np.isfinite(v).all() for v in params.values())


def test_divergence_with_force_keeps_the_old_run_when_there_is_nothing_to_save(sample, tmp_path):
    out = tmp_path / "run"
    run(Settings(iters=41, hidden=(6,)), sample, out, echo=quiet, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RunError, match=rf"nothing was saved .*; {out} keeps the run it held$"):
        run(Settings(iters=50, lr=1e308), sample, claim_out(out, force=True), echo=quiet, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            ["--batch-size", "1000000000"],
            "--batch-size 1000000000 needs about 14.7 TiB of memory (estimated)",
        ),
        (["--hidden", "100000000"], "--hidden 100000000 needs about 12.9 TiB of memory (estimated)"),
        (["--hidden", "50", "100000", "100000"], "--hidden 50 100000 100000 needs about 246.6 GiB"),
    ],
)
def test_huge_batch_or_hidden_sizes_are_refused_before_anything_is_allocated(tmp_path, args, start):
    r = chainrule("train", *args, cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    line = error_line(r)
    assert line.startswith(start)
    assert line.endswith("(the smaller of 4.0 GiB and half the physical memory)")
    assert os.listdir(tmp_path) == []  # refused before any folder, cache or data


def test_the_memory_estimate_and_its_limit():
    default = settings.memory_estimate(Settings())
    # 39,760 parameters; 784 pixels and 60 units; batch 100; 1,000 batches of indices; 10,000-image chunks
    assert default == (
        16 * 39_760 + 8 * 784 * 50 + 4 * 100 * (2 * 784 + 8 * 60) + 8 * 1000 * 100 + 12 * 10_000 * 60
    )
    limit = settings.memory_estimate(Settings(batch_size=5000))
    settings.check_settings(Settings(batch_size=5000), limit=limit)  # exactly at the limit: allowed
    with pytest.raises(RunError, match=r"^--batch-size 5001 needs about "):
        settings.check_settings(Settings(batch_size=5001), limit=limit)
    assert settings.MEMORY_CAP == 4 * 2**30 and settings.memory_limit() <= settings.MEMORY_CAP


def test_iterations_and_depth_are_bounded():
    settings.check_settings(Settings(iters=1_000_000))
    with pytest.raises(RunError, match=r"^--iters 1,000,001 is more than the limit of 1,000,000$"):
        settings.check_settings(Settings(iters=1_000_001))
    with pytest.raises(RunError, match=r"^--hidden has 101 layers, more than the limit of 100$"):
        settings.check_settings(Settings(hidden=(2,) * 101, activation="relu"))


def test_rundir_writes_only_its_own_names(tmp_path):
    claimed = fresh_run_dir(tmp_path)
    with pytest.raises(ValueError, match="not a run output"):
        claimed.install({"thesis.txt": b""})
    assert rundir.OWN == {MARKER, "metrics.csv", "accuracy.png", "params.npz", "run.json"}


def test_without_an_exchange_the_old_set_is_moved_aside_then_removed(sample, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(Settings(iters=41, hidden=(6,)), sample, out, echo=quiet, progress=False)
    monkeypatch.setattr(rundir, "exchange", lambda a, b: False)  # a filesystem without renameat2
    run(Settings(iters=81, hidden=(4,)), sample, claim_out(out, force=True), echo=quiet, progress=False)
    rows, params = saved(out)
    assert len(rows) == 3 and params["W1"].shape == (784, 4)
    assert leftovers(tmp_path) == []


def test_files_the_user_adds_during_a_run_stop_the_swap_and_the_set_is_kept_beside(tmp_path):
    claimed = fresh_run_dir(tmp_path)
    (claimed.path / "notes.txt").write_text("written during the run")
    with pytest.raises(RunError, match=r"now holds files chainrule did not write \(notes.txt\)") as info:
        claimed.install(
            {"metrics.csv": b"epoch\n", "accuracy.png": b"png", "params.npz": b"npz", "run.json": b"{}"}
        )
    staging = Path(str(info.value).rsplit(" ", 1)[1])
    # kept under a name the next run does not clean away
    assert staging.parent == tmp_path and staging.name.startswith(f".{claimed.path.name}.outputs-")
    assert sorted(os.listdir(staging)) == RUN and (staging / "metrics.csv").read_bytes() == b"epoch\n"
    assert sorted(os.listdir(claimed.path)) == [MARKER, "notes.txt"]
    assert (claimed.path / "notes.txt").read_text() == "written during the run"


def test_a_symlinked_out_is_written_through_and_stays_a_link(sample, tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    run(Settings(iters=5), sample, link, echo=quiet, progress=False)
    assert link.is_symlink() and sorted(os.listdir(real)) == RUN


def test_a_new_run_removes_the_empty_folders_of_runs_killed_before_they_saved(tmp_path, capsys):
    """A run killed with SIGKILL leaves its claimed folder; the next run in runs/ removes it, and only it."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    root = tmp_path / "runs"
    claim = f"A training run written by chainrule.\nclaimed by process {gone.pid}\n"
    for name, extra in (("killed", None), ("killed-with-mine", "notes.txt")):
        (root / name).mkdir(parents=True)
        (root / name / MARKER).write_text(claim)
        if extra:
            (root / name / extra).write_text("mine\n")
    (root / "alive").mkdir()
    (root / "alive" / MARKER).write_text(f"claimed by process {os.getpid()}\n")
    made = fresh_run_dir(root)
    assert sorted(p.name for p in root.iterdir()) == sorted(["alive", "killed-with-mine", made.path.name])
    assert (root / "killed-with-mine" / "notes.txt").read_text() == "mine\n"
    assert (
        f"removed {root / 'killed' / MARKER}, left by chainrule process {gone.pid}" in capsys.readouterr().err
    )
