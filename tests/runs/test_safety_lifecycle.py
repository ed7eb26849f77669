"""A run's life from start to end: what the final line scores, what a replaced folder keeps, what a
killed or interrupted command leaves behind, and the tracebacks at its edges."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainrule.fs.account import ACCOUNT_KEY
from chainrule.fs.ledger import ledger_path
from chainrule.fs.reaper import leftover_owner, own_name, reap
from chainrule.packages import write
from chainrule.packages.marker import mark_package
from chainrule.runs import folder as rundir
from chainrule.runs.folder import MARKER
from tests.helpers import chainrule, chainrule_process, error_line, offline_env

# --- 13: the final line is the saved model ----------------------------------------------------------


def test_the_final_line_run_json_and_evaluate_agree_on_the_saved_weights(tmp_path):
    # 107 iterations on the sample (40 per epoch): the last epoch line is at iteration 80, 26 steps
    # before the weights that are saved.
    out = tmp_path / "run"
    r = chainrule("train", "--iters", "107", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    (final,) = [line for line in r.stdout.splitlines() if line.startswith("final")]
    found = re.fullmatch(
        r"final \(the saved weights, after 107 iterations, (\d+\.\d) s\): loss (\d\.\d{4}),"
        r" train acc (\d\.\d{4}), test acc (\d\.\d{4})",
        final,
    )
    assert found, final
    recorded = json.loads((out / "run.json").read_text())["final"]
    assert recorded["iterations"] == 107
    assert format(recorded["test_acc"], ".4f") == found[4]
    assert format(recorded["train_acc"], ".4f") == found[3]
    assert format(recorded["loss"], ".4f") == found[2]
    assert recorded["seconds"] > 0 and format(recorded["seconds"], ".1f") == found[1]
    last_epoch = r.stdout.splitlines()[-3]
    assert last_epoch.startswith("epoch   2  iteration     80")  # the epoch lines are as they were
    assert not last_epoch.endswith(f"test acc {found[4]}")  # 27 steps later the weights score otherwise
    e = chainrule("evaluate", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert e.returncode == 0, e.stderr
    assert e.stdout.splitlines()[0].startswith(f"test accuracy {found[4]} (")


# --- 11: Ctrl-C while the command line loads; 6: SIGTERM during an -o write --------------------------

# Runs ``python -m chainrule ARGS`` after arranging for a real signal to arrive at a known point:
# when the module named by KICK_MODULE is first looked for, or when a file whose path matches the
# regular expression KICK_OPEN is opened (an audit hook sees every open).
KICK = """
import importlib.abc, os, re, runpy, signal, sys
module, opened = os.environ.get("KICK_MODULE"), os.environ.get("KICK_OPEN")
signum = getattr(signal, os.environ["KICK_SIGNAL"])

class Kick(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signum)
        return None

def hook(event, args):
    if opened and event == "open" and isinstance(args[0], (str, os.PathLike)):
        if re.search(opened, os.fspath(args[0])):
            os.kill(os.getpid(), signum)

if module:
    sys.meta_path.insert(0, Kick())
sys.addaudithook(hook)
sys.argv = ["chainrule", *sys.argv[1:]]
if os.environ.get("KICK_ENTRY"):  # as the installed ``chainrule`` program starts
    from chainrule.__main__ import entry

    entry()
runpy.run_module("chainrule", run_name="__main__", alter_sys=True)
"""


def kicked(tmp_path: Path, signame: str, *args: str, module: str = "", opened: str = "", entry: str = ""):
    env = {**offline_env(tmp_path), "KICK_SIGNAL": signame, "KICK_MODULE": module, "KICK_OPEN": opened}
    return subprocess.run(
        [sys.executable, "-c", KICK, *args],
        capture_output=True,
        text=True,
        env={**env, "KICK_ENTRY": entry},
        timeout=300,
    )


@pytest.mark.parametrize(
    "module",
    [
        "chainrule.cli",
        "chainrule.codegen.i18n",
        "chainrule.commands.derive",
        "chainrule.runs.settings",
        "sympy",
    ],
)
@pytest.mark.parametrize("entry", ["", "1"])
def test_ctrl_c_while_the_command_loads_is_one_line_and_status_130(tmp_path, module, entry):
    r = kicked(tmp_path, "SIGINT", "derive", "relu", module=module, entry=entry)
    assert (r.returncode, r.stderr, r.stdout) == (130, "chainrule: interrupted\n", "")


def test_sigterm_during_an_output_write_removes_the_temporary_file(tmp_path):
    out = tmp_path / "out" / "relu.md"
    out.parent.mkdir()
    r = kicked(
        tmp_path, "SIGTERM", "derive", "relu", "--format", "markdown", "-o", str(out), opened=r"\.tmp$"
    )
    assert (r.returncode, r.stderr) == (143, "chainrule: interrupted by SIGTERM\n")
    assert os.listdir(out.parent) == []  # neither the file nor its temporary


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_writes_temporary_file_is_removed_by_the_next_write_there(tmp_path):
    out = tmp_path / "relu.md"
    left = tmp_path / own_name("relu.md", "chainrule", ".tmp", pid=dead_pid())
    left.write_text("half")
    mine = tmp_path / ".relu.md.chainrule-notapid.tmp"  # not a name chainrule makes: kept
    mine.write_text("mine")
    r = chainrule("derive", "relu", "-o", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert not left.exists() and mine.read_text() == "mine" and out.stat().st_size > 0
    assert f"removed {left}, left by chainrule process" in r.stderr


def test_an_output_name_of_254_characters_is_written(tmp_path):
    out = tmp_path / ("r" * 251 + ".md")
    r = chainrule("derive", "relu", "-o", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == chainrule("derive", "relu", cwd=tmp_path, env=offline_env(tmp_path)).stdout
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


# --- 5: a replaced folder keeps its mode -------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_empty_private_folder_stays_private_and_a_replaced_run_keeps_its_modes(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    out.chmod(0o700)  # mkdir -m 700 d
    r = chainrule("train", "--iters", "3", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert mode(out) == 0o700
    (out / "params.npz").chmod(0o600)
    out.chmod(0o750)
    r = chainrule(
        "train", "--iters", "4", "--force", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["iters"] == 4
    assert (mode(out), mode(out / "params.npz")) == (0o750, 0o600)


# --- 6: nothing of the user's moved; what a killed run left is cleaned, and said -----------------------


def hidden(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_force_into_a_run_holding_a_folder_named_params_npz_moves_nothing(tmp_path):
    out = tmp_path / "run"
    assert (
        chainrule(
            "train", "--iters", "3", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path)
        ).returncode
        == 0
    )
    (out / "params.npz").unlink()
    (out / "params.npz").mkdir()
    (out / "params.npz" / "mine.txt").write_text("my notes")
    before = sorted(os.listdir(out))
    message = error_line(
        chainrule(
            "train", "--iters", "3", "--force", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path)
        )
    )
    assert "params.npz (a folder)" in message
    assert sorted(os.listdir(out)) == before and hidden(tmp_path) == []
    assert (out / "params.npz" / "mine.txt").read_text() == "my notes"


def test_a_run_killed_while_saving_is_cleaned_by_the_next_train_there(tmp_path):
    out = tmp_path / "runK"
    r = kicked(
        tmp_path,
        "SIGKILL",
        "train",
        "--iters",
        "3",
        "--out",
        str(out),
        opened=r"\.staging-\d+-.*params\.npz$",
    )
    assert r.returncode == -signal.SIGKILL
    (left,) = hidden(tmp_path)  # the half-saved set, named with the killed process's id
    assert re.fullmatch(r"\.runK\.staging-\d+-[0-9a-f]{24}", left)
    assert os.listdir(out) == [MARKER]  # claimed, nothing saved
    r = chainrule("train", "--iters", "3", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert hidden(tmp_path) == []
    assert f"removed {tmp_path / left}, left by chainrule process" in r.stderr
    assert f"removed {out / MARKER}, left by chainrule process" in r.stderr
    assert sorted(os.listdir(out)) == sorted([MARKER, *rundir.OUTPUTS])


def test_a_run_still_going_keeps_its_claim_and_its_staging(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text(f"{rundir.MARKER_TEXT}claimed by process {os.getpid()}\n")  # alive: this one
    staging = tmp_path / own_name("run", "staging")
    staging.mkdir()
    (staging / "params.npz").write_bytes(b"half")
    message = error_line(
        chainrule("train", "--iters", "3", "--out", str(out), cwd=tmp_path, env=offline_env(tmp_path))
    )
    assert "already holds a training run" in message
    assert (staging / "params.npz").read_bytes() == b"half"


def test_a_dead_runs_staging_folder_with_the_users_file_in_it_keeps_that_file(tmp_path):
    staging = tmp_path / own_name("run", "staging", pid=dead_pid())
    staging.mkdir()
    (staging / "params.npz").write_bytes(b"half")
    (staging / "mine.txt").write_text("mine")
    r = chainrule(
        "train", "--iters", "3", "--out", str(tmp_path / "run"), cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(staging)) == ["mine.txt"] and "removed" not in r.stderr


# --- 11: a standard output that cannot show the text; a package without what train needs ------------


def test_markdown_to_an_ascii_standard_output_is_one_line(tmp_path):
    r = chainrule_process(
        "derive",
        "relu",
        "--format",
        "markdown",
        cwd=tmp_path,
        env=offline_env(tmp_path, {"PYTHONIOENCODING": "ascii"}),
    )
    message = error_line(r)
    assert message.startswith("cannot write to standard output: its encoding ascii cannot show ")
    assert "PYTHONIOENCODING=utf-8" in message and r.stdout == ""


@pytest.mark.parametrize(
    ("train_py", "multi_py", "args", "missing"),
    [
        ("X = 1\n", "ACTIVATIONS = {'relu': None}\n", [], "train_neuralnet.py has no train"),
        ("train = 3\n", "ACTIVATIONS = {'relu': None}\n", [], "train_neuralnet.py has no train"),
        (
            "def train(*a, **k): pass\n",
            "X = 1\n",
            ["--activation", "relu"],
            "multi_layer_net.py has no ACTIVATIONS",
        ),
        ("def train(*a, **k): pass\n", "ACTIVATIONS = 3\n", ["--activation", "relu"], "has no ACTIVATIONS"),
    ],
)
def test_train_package_without_train_or_activations_is_one_line(tmp_path, train_py, multi_py, args, missing):
    package = tmp_path / "P"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train_neuralnet.py").write_text(train_py)
    (package / "multi_layer_net.py").write_text(multi_py)
    mark_package(package, ["__init__.py", "train_neuralnet.py", "multi_layer_net.py"])  # as if generated
    message = error_line(
        chainrule(
            "train",
            "--package",
            str(package),
            *args,
            "--out",
            str(tmp_path / "r"),
            cwd=tmp_path,
            env=offline_env(tmp_path),
        )
    )
    assert missing in message
    assert not (tmp_path / "r").exists()


# -- leftovers chainrule did not leave


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes, by path relative to it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def refused_mirror() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: a download fails at once, off the network."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


def downloading(cache: Path, mirror: str) -> dict[str, str]:
    """The environment of a train that tries a download into ``cache`` (and falls back to the sample)."""
    return {"CHAINRULE_OFFLINE": "", "CHAINRULE_CACHE_DIR": str(cache), "CHAINRULE_MNIST_MIRRORS": mirror}


def test_a_users_folder_named_like_a_download_folder_in_the_cache_keeps_everything(tmp_path, refused_mirror):
    mydata = tmp_path / "mydata"
    lookalike = mydata / ".chainrule-download-99999-0123456789abcdef"
    lookalike.mkdir(parents=True)
    (lookalike / "important.txt").write_text("precious\n")
    (lookalike / "train-images-idx3-ubyte.gz").write_bytes(b"my own copy")
    (lookalike / "tmpabcd1234").write_bytes(b"mine too")
    before = tree(mydata)
    r = chainrule(
        "train",
        "--iters",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
        env=offline_env(tmp_path, downloading(mydata, refused_mirror)),
    )
    assert r.returncode == 0, r.stderr
    assert tree(mydata) == before and "removed" not in r.stderr


def test_a_killed_download_folder_loses_only_what_chainrule_and_pooch_write_there(tmp_path, refused_mirror):
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = dead_pid()
    mixed = cache / own_name("", "chainrule-download", pid=dead)
    mixed.mkdir()
    (mixed / "train-labels-idx1-ubyte.gz").write_bytes(b"half a download")
    (mixed / "tmpabcd_123").write_bytes(b"pooch's partial file")
    (mixed / "notes.txt").write_text("mine")
    (mixed / "t10k-images-idx3-ubyte.gz").mkdir()  # a folder with MNIST's name is not chainrule's
    only_ours = cache / own_name("", "chainrule-download", pid=dead)
    only_ours.mkdir()
    (only_ours / "tmpzzzzzzzz").write_bytes(b"partial")
    r = chainrule(
        "train",
        "--iters",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
        cwd=tmp_path,
        env=offline_env(tmp_path, downloading(cache, refused_mirror)),
    )
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(mixed)) == ["notes.txt", "t10k-images-idx3-ubyte.gz"]
    assert (mixed / "notes.txt").read_text() == "mine" and not only_ours.exists()
    for gone in (mixed / "train-labels-idx1-ubyte.gz", mixed / "tmpabcd_123", only_ours):
        assert f"removed {gone}, left by chainrule process {dead} that was stopped" in r.stderr
    assert [name for name in os.listdir(cache) if name.startswith(".chainrule-download-")] == [mixed.name]


def test_a_users_file_named_like_a_temporary_beside_an_output_is_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = dead_pid()
    (out / ".thesis.chainrule-999999-deadbeef.tmp").write_text("my draft")
    (out / f".relu.tex.chainrule-{dead}-deadbeef.tmp").write_text("my other draft")
    (out / f".relu.tex.chainrule-{dead}-{'0' * 24}.tmp").write_text("a forged tag")
    (out / own_name("thesis.tex", "chainrule", ".tmp", pid=dead)).write_text("another file's temporary")
    before = tree(out)
    r = chainrule("derive", "relu", "-o", str(out / "relu.tex"), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "removed" not in r.stderr
    assert tree(out) == {**before, "relu.tex": (out / "relu.tex").read_bytes()}


def test_the_reaper_removes_only_what_a_stopped_chainrule_named_and_says_so(tmp_path, capsys):
    dead = dead_pid()
    left = tmp_path / own_name("a.tex", "chainrule", ".tmp", pid=dead)
    left.write_text("half")
    alive = tmp_path / own_name("a.tex", "chainrule", ".tmp")  # this process's: still being written
    alive.write_text("busy")
    other = tmp_path / own_name("b.tex", "chainrule", ".tmp", pid=dead)  # another target's
    other.write_text("theirs")
    lookalike = tmp_path / f".a.tex.chainrule-{dead}-{'0' * 24}.tmp"
    lookalike.write_text("mine")
    linked = tmp_path / own_name("a.tex", "chainrule", ".tmp", pid=dead)
    linked.symlink_to(other)  # a link is never a leftover file, nor followed
    folder = tmp_path / own_name("a.tex", "chainrule", ".tmp", pid=dead)
    folder.mkdir()  # a folder where a file is expected is left
    assert reap(tmp_path, "chainrule", target="a.tex", suffixes=(".npy", ".tmp")) == [left]
    assert capsys.readouterr().err == f"removed {left}, left by chainrule process {dead} that was stopped\n"
    assert all(p.exists() or p.is_symlink() for p in (alive, other, lookalike, linked, folder))
    kept = tmp_path / own_name("", "staging", pid=dead)
    kept.mkdir()
    asked = []
    assert reap(tmp_path, ("old", "staging"), lambda p: asked.append(p) or [p / "x"], say=False) == [
        kept / "x"
    ]
    assert asked == [kept] and capsys.readouterr().err == ""


def test_the_key_that_names_leftovers_is_this_accounts_alone(tmp_path):
    assert (
        chainrule(
            "derive", "relu", "-o", str(tmp_path / "relu.tex"), cwd=tmp_path, env=offline_env(tmp_path)
        ).returncode
        == 0
    )
    key = ledger_path().parent / ACCOUNT_KEY
    assert stat.S_IMODE(os.lstat(key).st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_a_users_folder_named_like_a_runs_old_set_keeps_everything(tmp_path):
    runs = tmp_path / "runs"
    dead = dead_pid()
    backup = runs / ".backup.old-999999-deadbeef"
    backup.mkdir(parents=True)
    (backup / "run.json").write_text('{"mine":1}\n')
    (backup / "metrics.csv").write_text("mine\n")
    (backup / "other.txt").write_text("keep\n")
    same_name = runs / f".new.old-{dead}-deadbeef"  # this run's name, but not a name chainrule made
    same_name.mkdir()
    (same_name / "params.npz").write_bytes(b"my weights")
    other_run = runs / own_name("other", "staging", pid=dead)  # chainrule's, but of another run
    other_run.mkdir()
    (other_run / "run.json").write_text("{}\n")
    before = tree(runs)
    r = chainrule(
        "train",
        "--iters",
        "2",
        "--quiet",
        "--out",
        str(runs / "new"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert "removed" not in r.stderr
    assert {k: v for k, v in tree(runs).items() if not k.startswith("new/")} == before


def test_a_killed_runs_old_set_of_this_run_is_still_cleaned(tmp_path):
    runs = tmp_path / "runs"
    old = runs / own_name("new", "old", pid=dead_pid())
    old.mkdir(parents=True)
    (old / "run.json").write_text("{}\n")
    (old / "params.npz").write_bytes(b"half")
    r = chainrule(
        "train",
        "--iters",
        "2",
        "--quiet",
        "--out",
        str(runs / "new"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert not old.exists() and f"removed {old}, left by chainrule process" in r.stderr


def test_a_users_folder_named_like_a_generate_staging_folder_keeps_everything(tmp_path):
    out = tmp_path / "pkg"
    lookalike = tmp_path / f".pkg.chainrule-staging-{dead_pid()}-0123456789abcdef"
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("precious\n")
    digest = hashlib.sha256(b"precious\n").hexdigest()
    (lookalike / ".chainrule-package").write_text(
        json.dumps({"files": {"notes.txt": digest}, "generator": "chainrule", "version": 1})
    )
    before = tree(lookalike)
    write.generate(out)
    assert tree(lookalike) == before


def test_a_long_output_name_still_gets_a_verifiable_temporary_name(tmp_path):
    name = "r" * 251 + ".md"
    made = own_name(name, "chainrule", ".tmp", pid=dead_pid())
    assert len(os.fsencode(made)) <= 255
    assert leftover_owner(made, "chainrule", name, ".tmp") is not None
    assert leftover_owner(made, "chainrule", "r" * 250 + ".md", ".tmp") is None


@pytest.mark.parametrize("name", ["outputs.json", "package-key"])
def test_an_output_named_as_chainrules_own_record_is_refused(tmp_path, name):
    cache = tmp_path / "xdg"
    target = cache / "chainrule" / name
    r = chainrule(
        "derive",
        "relu",
        "-o",
        str(target),
        cwd=tmp_path,
        env=offline_env(tmp_path, {"XDG_CACHE_HOME": str(cache)}),
    )
    assert error_line(r) == f"cannot write {target}: it is chainrule's own record in its cache folder"
    assert not target.exists()


def test_a_key_others_may_read_seals_nothing(tmp_path):
    from chainrule.fs.account import account_key
    from chainrule.fs.ledger import ledger_path

    assert account_key(create=True) is not None
    key = ledger_path().parent / "package-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    try:
        assert account_key() is None and account_key(create=True) is None
    finally:
        key.chmod(0o600)
    assert account_key() is not None


def test_force_replaces_only_a_run_this_account_saved_and_nobody_changed(tmp_path):
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / MARKER).write_text(rundir.MARKER_TEXT)
    (forged / "run.json").write_text('{"my": "thesis results"}')
    message = error_line(
        chainrule(
            "train",
            "--iters",
            "1",
            "--quiet",
            "--force",
            "--out",
            "forged",
            cwd=tmp_path,
            env=offline_env(tmp_path),
        )
    )
    assert message == (
        "forged holds a run that chainrule did not save on this account, or whose files changed since;"
        " chainrule replaces only its own runs: move it away or choose another --out"
    )
    assert (forged / "run.json").read_text() == '{"my": "thesis results"}'
    assert (
        chainrule(
            "train", "--iters", "1", "--quiet", "--out", "real", cwd=tmp_path, env=offline_env(tmp_path)
        ).returncode
        == 0
    )
    again = chainrule(
        "train",
        "--iters",
        "2",
        "--quiet",
        "--force",
        "--out",
        "real",
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert again.returncode == 0, again.stderr
    with open(tmp_path / "real" / "metrics.csv", "a") as f:
        f.write("my note\n")
    assert "did not save on this account" in error_line(
        chainrule(
            "train",
            "--iters",
            "1",
            "--quiet",
            "--force",
            "--out",
            "real",
            cwd=tmp_path,
            env=offline_env(tmp_path),
        )
    )
    assert (tmp_path / "real" / "metrics.csv").read_text().endswith("my note\n")
