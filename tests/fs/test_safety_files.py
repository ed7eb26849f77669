"""chainrule replaces or deletes only what it made: generated packages, output files, the MNIST cache."""

from __future__ import annotations

import gzip
import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.codegen import generate
from chainrule.commands.report import latest_run
from chainrule.fs.atomic import atomic_write_text
from chainrule.fs.guard import UnsafeTarget, read_regular
from chainrule.fs.reaper import own_name
from chainrule.mnist import LOAD_MAX_BYTES, MnistError, load_mnist, load_size
from chainrule.mnist import idx as mnist_idx
from chainrule.mnist.download import _clean_downloads, _place
from chainrule.mnist.idx import read_idx, write_idx
from chainrule.mnist.sources import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from chainrule.packages import write
from chainrule.packages.marker import MARKER, MARKER_FORMAT, mark_package, marker_text
from tests.helpers import chainrule, chainrule_process

ROOT = Path(__file__).resolve().parents[2]


def one_line_error(stderr: str) -> str:
    """The single error line; fails on a traceback or a second line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("chainrule: error: "), stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, hidden ones included, with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def dead_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- generate --out


def test_generate_refuses_a_users_folder_and_keeps_it(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.txt").write_text("hi\n")
    r = chainrule("generate", "--out", str(d))
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    assert f"refusing to write {d}: it is not empty and holds no .chainrule-package" in line
    assert snapshot(d) == {"thesis.txt": b"hi\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging folder left


def test_generate_refuses_a_file_and_a_link(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    for target, reason in ((afile, "it exists and is not a folder"), (link, "it is a symbolic link")):
        r = chainrule("generate", "--out", str(target))
        assert r.returncode == 2
        assert reason in one_line_error(r.stderr)
    assert afile.read_text() == "mine\n" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "elsewhere", "link"]
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("out", [".", "..", "../.."])
def test_generate_refuses_the_current_folder_and_its_parents(tmp_path, out):
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    (here / "notes.txt").write_text("keep")
    r = chainrule("generate", "--out", out, cwd=here)
    assert r.returncode == 2
    assert "it is the current folder or holds it" in one_line_error(r.stderr)
    assert snapshot(tmp_path) == {"a/b/notes.txt": b"keep"}


def test_generate_refuses_the_root_without_reading_it():
    r = chainrule("generate", "--out", "/")
    assert r.returncode == 2
    assert "refusing to write /: the root folder" in one_line_error(r.stderr)


def test_a_mount_point_is_refused_by_its_path_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked: list[str] = []
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: asked.append(str(p)) or real_ismount(p))

    def never(*args, **kwargs):
        raise AssertionError(f"read a folder it will not write: {args}")

    monkeypatch.setattr(write, "_tree", never)
    monkeypatch.setattr(write, "_has_entries", never)
    monkeypatch.setattr(write, "build", never)
    with pytest.raises(generate.GenerateError, match=r"^refusing to write /proc: it is a mount point$"):
        write.generate(Path("/proc"))
    assert asked == ["/proc"]


def test_generate_replaces_its_own_package_and_writes_the_marker(tmp_path):
    out = write.generate(tmp_path / "pkg").out
    marker = json.loads((out / MARKER).read_text())
    assert marker["generator"] == "chainrule" and marker["version"] == MARKER_FORMAT
    assert sorted(marker["files"]) == sorted(p.name for p in out.iterdir() if p.name != MARKER)
    # A file chainrule did not write stops the replacement (and is kept); its own files are replaced.
    (out / "stray.txt").write_text("inside chainrule's package")
    with pytest.raises(generate.GenerateError, match="chainrule did not write .*stray.txt"):
        write.generate(out)
    assert (out / "stray.txt").read_text() == "inside chainrule's package"
    (out / "stray.txt").unlink()
    (out / "layers.py").unlink()
    result = write.generate(out)
    assert result.changed == ("layers.py",) and (out / "layers.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_an_empty_folder_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    out = write.generate(tmp_path / "empty").out
    assert (out / MARKER).is_file() and (out / "layers.py").is_file()


def test_a_forged_or_broken_marker_is_not_a_package(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.txt").write_text("hi")
    for text in ('{"generator": "someone"}', "not json", "[1, 2]"):
        (d / MARKER).write_text(text)
        with pytest.raises(generate.GenerateError, match="holds no .chainrule-package"):
            write.generate(d)
    (d / MARKER).unlink()
    os.mkfifo(d / MARKER)  # opened without blocking, so this cannot hang
    with pytest.raises(generate.GenerateError, match="holds no .chainrule-package"):
        write.generate(d)
    assert (d / "thesis.txt").read_text() == "hi"


def test_new_package_folders_have_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = write.generate(tmp_path / "pkg").out
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}


def test_staging_left_by_a_killed_run_is_cleaned_and_nothing_else(tmp_path):
    out = tmp_path / "pkg"
    dead = dead_pid()
    ours = tmp_path / own_name("pkg", "chainrule-staging", pid=dead)
    ours.mkdir()
    mark_package(ours, [], {"writing": ["__init__.py", "layers.py"]})  # sealed, as build starts a package
    (ours / "layers.py").write_text("half")
    empty = tmp_path / own_name("pkg", "chainrule-staging", pid=dead)
    empty.mkdir()
    unmarked = tmp_path / own_name("pkg", "chainrule-staging", pid=dead)
    unmarked.mkdir()
    (unmarked / "user.txt").write_text("not ours")
    running = tmp_path / own_name("pkg", "chainrule-staging")
    running.mkdir()
    (running / MARKER).write_text(marker_text())
    other_name = tmp_path / own_name("pkgs", "chainrule-staging", pid=dead)
    other_name.mkdir()
    (other_name / MARKER).write_text(marker_text())

    write.generate(out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["pkg", unmarked.name, running.name, other_name.name])
    assert (unmarked / "user.txt").read_text() == "not ours"


def test_the_old_tree_is_read_only_up_to_a_limit(tmp_path, monkeypatch):
    out = write.generate(tmp_path / "pkg").out
    monkeypatch.setattr(write, "OLD_TREE_MAX_FILES", 3)
    with pytest.raises(generate.GenerateError, match="holds more than 3 files"):
        write.generate(out)
    assert (out / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_a_link_inside_an_old_package_is_never_followed(tmp_path):
    out = write.generate(tmp_path / "pkg").out
    (out / "zero").symlink_to("/dev/zero")
    with pytest.raises(generate.GenerateError, match="chainrule did not write .*zero"):
        write.generate(out)
    assert os.readlink(out / "zero") == "/dev/zero"  # not chainrule's: kept, never read


# ---------------------------------------------------------------- -o and --out of derive, graph, report


@pytest.mark.parametrize("command", [["derive", "add"], ["graph", "apples"]])
def test_a_device_target_is_refused_and_stays_a_device(command):
    r = chainrule(*command, "-o", "/dev/null")
    assert r.returncode == 2
    assert one_line_error(r.stderr) == (
        "chainrule: error: cannot write /dev/null: it is a character device; chainrule only replaces regular files"
    )
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_a_fifo_and_a_link_target_are_refused_and_kept(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    real = tmp_path / "real.tex"
    real.write_text("the user's own\n")
    link = tmp_path / "link.tex"
    link.symlink_to(real)
    for target in (fifo, link):
        assert main(["derive", "add", "-o", str(target)]) == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "the user's own\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.tex", "pipe", "real.tex"]


def test_the_messages_for_fifo_and_link_name_what_they_are(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    assert main(["graph", "apples", "-o", str(fifo)]) == 2
    assert main(["graph", "apples", "-o", str(link)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"chainrule: error: cannot write {fifo}: it is a FIFO; chainrule only replaces regular files",
        f"chainrule: error: cannot write {link}: it is a symbolic link; chainrule only replaces regular files",
    ]
    assert not (tmp_path / "nowhere").exists()


def test_a_regular_file_is_replaced_whole(tmp_path):
    target = tmp_path / "out.tex"
    assert main(["derive", "mul", "-o", str(target)]) == 0
    assert target.read_text().startswith("\\section*{Multiply node}")
    assert main(["derive", "add", "-o", str(target)]) == 0
    assert target.read_text().startswith("\\section*{Add node}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tex"]
    with pytest.raises(UnsafeTarget):
        atomic_write_text(tmp_path, "a folder is not replaced")


def test_report_refuses_a_link_as_its_page(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    mine = tmp_path / "mine.html"
    mine.write_text("keep")
    (out / "report.html").symlink_to(mine)
    (tmp_path / "runs").mkdir()
    assert main(["report", "-o", str(out), "--runs", str(tmp_path / "runs")]) == 2
    assert (out / "report.html").is_symlink() and mine.read_text() == "keep"


@pytest.mark.parametrize("command", [["derive"], ["graph", "apples"], ["derive", "--help"]])
def test_a_full_stdout_is_one_line(command):
    with open("/dev/full", "w") as full:
        r = chainrule_process(*command, stdout=full, stderr=subprocess.PIPE)
    assert r.returncode == 2
    assert (
        one_line_error(r.stderr)
        == "chainrule: error: cannot write to standard output: No space left on device"
    )


def test_a_broken_pipe_is_one_line():
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "derive"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before chainrule writes: as with `| head -1` on a long text
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 2
    assert one_line_error(err) == "chainrule: error: cannot write to standard output: Broken pipe"


def test_a_closed_stdout_is_one_line():
    r = chainrule_process("derive", "add", stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    assert r.returncode == 2
    assert one_line_error(r.stderr) == "chainrule: error: standard output is closed: name a file with -o FILE"


# ---------------------------------------------------------------- one-line errors that were tracebacks


@pytest.mark.parametrize("command", [["train"], ["verify"], ["gradcheck"]])
@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5"])
def test_a_bad_seed_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, command, seed):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"chainrule: error: argument --seed: '{seed}' is not a whole number from 0 to 4294967295 "
        f"(see 'chainrule {command[0]} --help')\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_verify_spec_without_package_is_one_line(tmp_path, capsys):
    spec = tmp_path / "ok.toml"
    spec.write_text('[layers.square]\nforward = "x**2"\n')
    assert main(["verify", "--spec", str(spec)]) == 2
    assert capsys.readouterr().err == (
        "chainrule: error: --spec describes a package made with 'generate --spec FILE --out DIR': "
        "name it with --package DIR\n"
    )


def test_verify_a_package_that_does_not_import_is_one_line(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "layers.py").write_text("def broken(:\n")
    # A folder chainrule did not generate is never imported: its code does not run.
    assert main(["verify", "--package", str(pkg)]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: {pkg} is not a package chainrule generated (no .chainrule-package): verify runs only those\n"
    )
    (pkg / ".chainrule-package").write_text('{"generator": "chainrule", "version": 1}')
    assert main(["verify", "--package", str(pkg)]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: {pkg}: its .chainrule-package lists no files with their SHA-256 "
        "(an older chainrule made it); generate it again\n"
    )
    mark_package(pkg, ["layers.py"])
    assert main(["verify", "--package", str(pkg)]) == 2
    assert capsys.readouterr().err == f"chainrule: error: {pkg} is not a generated package (no __init__.py)\n"
    (pkg / "__init__.py").write_text("")
    mark_package(pkg, ["__init__.py", "layers.py"])
    assert main(["verify", "--package", str(pkg)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"chainrule: error: {pkg}: the package does not import: SyntaxError: invalid syntax (layers.py, line 1)\n"
    )


def make_run(runs: Path) -> Path:
    run = runs / "r1"
    run.mkdir(parents=True)
    (run / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "metrics.csv").write_text("epoch,iteration,loss,train_acc,test_acc\n1,600,0.5,0.9,0.9\n")
    return run


# A run file that is not what train writes is left out of the report with a one-line note
# (tests/runs/test_safety_runs_data.py runs the command): nothing of it is embedded or waited for.


def test_report_with_a_huge_csv_field_leaves_the_metrics_out(tmp_path):
    run = make_run(tmp_path / "R")
    (run / "metrics.csv").write_text('epoch,iteration,loss,train_acc,test_acc\n"' + "x" * 200_000 + '"\n')
    found = latest_run(tmp_path / "R")
    reason = f"{run / 'metrics.csv'} is not a metrics file: field larger than field limit (131072)"
    assert (found.summary, found.notes) == (f"no metrics: {reason}", (reason,))
    assert found.image == "data:image/png;base64,iVBORw0KGgo="


def test_report_with_a_3_gb_plot_leaves_it_out_and_reads_nothing(tmp_path):
    run = make_run(tmp_path / "R")
    with open(run / "accuracy.png", "wb") as f:
        f.truncate(3 * 2**30)  # sparse: takes no disk space
    found = latest_run(tmp_path / "R")
    assert found.image is None and found.notes == (
        f"refusing to read {run / 'accuracy.png'}: it is 3,221,225,472 bytes, "
        "more than the 16,777,216 chainrule reads here",
    )


def test_report_with_a_fifo_for_metrics_leaves_it_out(tmp_path):
    run = make_run(tmp_path / "R")
    (run / "metrics.csv").unlink()
    os.mkfifo(run / "metrics.csv")
    found = latest_run(tmp_path / "R")
    reason = f"refusing to read {run / 'metrics.csv'}: it is a FIFO, not a regular file"
    assert (found.summary, found.notes) == (f"no metrics: {reason}", (reason,))


def test_read_regular_reads_a_small_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert read_regular(path, 3) == b"abc"


# ---------------------------------------------------------------- the MNIST cache


def write_users_set(folder: Path) -> dict[str, bytes]:
    """Four valid IDX files that are not MNIST (as Fashion-MNIST would be), named as MNIST's."""
    rng = np.random.default_rng(7)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: np.arange(6, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        TEST_LABELS: np.array([3, 4], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        write_idx(folder / f"{base}.gz", array)
    return snapshot(folder)


def test_a_users_files_in_the_cache_are_never_deleted(tmp_path):
    mydata = tmp_path / "mydata"
    before = write_users_set(mydata)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHAINRULE_OFFLINE": "1", "CHAINRULE_CACHE_DIR": "mydata"}
    env.pop("CHAINRULE_DATA_DIR", None)
    r = chainrule("gradcheck", cwd=tmp_path, env=env)
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    assert line.startswith("chainrule: error: mydata/train-images-idx3-ubyte.gz: ")
    assert " bytes, not the 9,912,422 bytes of MNIST's train-images-idx3-ubyte.gz; " in line  # before any MD5
    assert "chainrule did not download this file and leaves it alone" in line
    assert snapshot(mydata) == before


def test_a_verified_download_never_replaces_a_file_already_there(tmp_path):
    fetched = tmp_path / "private" / "x.gz"
    fetched.parent.mkdir()
    fetched.write_bytes(b"downloaded")
    target = tmp_path / "x.gz"
    target.write_bytes(b"the user's")
    with pytest.raises(MnistError, match="appeared while chainrule was downloading it; left it alone"):
        _place(fetched, target)
    assert target.read_bytes() == b"the user's"


def test_only_private_download_folders_of_dead_runs_are_cleaned(tmp_path):
    dead = dead_pid()
    leftover = tmp_path / own_name("", "chainrule-download", pid=dead)
    leftover.mkdir()
    (leftover / "tmpabcd1234").write_bytes(b"partial")  # pooch's temporary file
    live = tmp_path / own_name("", "chainrule-download")
    live.mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    lookalike = tmp_path / f".chainrule-download-{dead}"
    lookalike.mkdir()
    _clean_downloads(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "notes.txt", lookalike.name])


# ---------------------------------------------------------------- IDX bounds


def idx_gz(path: Path, header: bytes, body_size: int) -> None:
    """A gzip IDX file of a header and body_size zero bytes, compressed in pieces."""
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        chunk = bytes(1 << 20)
        left = body_size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def test_headers_claiming_2_28_images_are_refused_before_loading(tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    n = 2**28
    # As in the report: ~260 KB each, and every promised byte is really there once decompressed.
    idx_gz(d / f"{TRAIN_IMAGES}.gz", struct.pack(">IIII", 0x803, n, 1, 1), n)
    idx_gz(d / f"{TRAIN_LABELS}.gz", struct.pack(">II", 0x801, n), n)
    assert (d / f"{TRAIN_IMAGES}.gz").stat().st_size < 2**20
    write_idx(d / f"{TEST_IMAGES}.gz", np.zeros((2, 1, 1), np.uint8))
    write_idx(d / f"{TEST_LABELS}.gz", np.zeros(2, np.uint8))
    before = snapshot(d)
    r = chainrule("gradcheck", "--data-dir", str(d), env={**os.environ, "CHAINRULE_OFFLINE": "1"})
    assert r.returncode == 2
    assert one_line_error(r.stderr) == (
        f"chainrule: error: {d / (TRAIN_IMAGES + '.gz')}: the headers describe data that needs about "
        "22.5 GiB as float64 arrays, more than chainrule's limit of 1.0 GiB"
    )
    assert snapshot(d) == before


def test_a_header_past_the_data_limit_is_refused_before_allocating(tmp_path, monkeypatch):
    path = tmp_path / "img"
    path.write_bytes(struct.pack(">IIII", 0x803, 2**20, 2**10, 2**10) + bytes(10))
    monkeypatch.setattr(np, "empty", lambda *a, **k: pytest.fail("allocated for a refused header"))
    with pytest.raises(MnistError) as err:
        read_idx(path, ndim=3)
    assert str(err.value) == (
        f"{path}: header dimensions 1048576x1024x1024 describe 1,099,511,627,776 bytes, "
        "more than the 268,435,456 chainrule reads from one IDX file"
    )


def test_gzip_is_decompressed_only_as_far_as_the_header_promises(tmp_path, monkeypatch):
    path = tmp_path / "lab.gz"
    idx_gz(path, struct.pack(">II", 0x801, 10), 64 * 2**20)  # 64 MiB of zeros behind a 10-byte promise
    read_sizes: list[int] = []
    real_open = mnist_idx._open_binary

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n=-1):
            data = self.f.read(n)
            read_sizes.append(len(data))
            return data

        def readinto(self, buf):
            n = self.f.readinto(buf)
            read_sizes.append(n)
            return n

    monkeypatch.setattr(mnist_idx, "_open_binary", lambda p: Counting(real_open(p)))
    with pytest.raises(
        MnistError, match=r"too long: header dimensions 10 need 10 data bytes, the file has more$"
    ):
        read_idx(path, ndim=1)
    assert sum(read_sizes) == 8 + 10 + 1


def test_a_fifo_is_not_read_as_idx(tmp_path):
    fifo = tmp_path / "img"
    os.mkfifo(fifo)
    with pytest.raises(MnistError, match=rf"^{fifo}: not a regular file$"):
        read_idx(fifo)


def test_the_load_estimate_counts_what_load_mnist_builds():
    f64 = np.dtype(np.float64)
    # full MNIST for the gradient check: pixels, their floats, labels and one-hot rows
    assert load_size(70_000, 784, True, True, f64) == 70_000 * (784 + 1 + 784 * 8 + 10 * 8)
    assert load_size(70_000, 784, True, True, f64) < LOAD_MAX_BYTES
    assert load_size(10, 4, False, False, f64) == 10 * (4 + 1 + 8)


def test_full_size_mnist_shapes_pass_the_estimate(tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    write_idx(d / TRAIN_IMAGES, np.zeros((3, 28, 28), np.uint8))
    write_idx(d / TRAIN_LABELS, np.zeros(3, np.uint8))
    write_idx(d / TEST_IMAGES, np.zeros((2, 28, 28), np.uint8))
    write_idx(d / TEST_LABELS, np.zeros(2, np.uint8))
    (x, t), _ = load_mnist(data_dir=d, one_hot_label=True, dtype=np.float64, announce=None)
    assert x.shape == (3, 784) and t.shape == (3, 10)


def test_the_projects_own_generated_folder_needs_no_marker(tmp_path, monkeypatch):
    own = tmp_path / "generated"
    own.mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "chainrule"\n')  # a source checkout
    (own / "layers.py").write_text("# from a version that wrote no marker\n")
    monkeypatch.setattr(write, "DEFAULT_OUT", own)
    result = write.generate(own)
    assert "layers.py" in result.changed and (own / MARKER).is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "layers.py").write_text("# someone else's\n")
    with pytest.raises(generate.GenerateError, match="holds no .chainrule-package"):
        write.generate(other)


def test_verify_a_package_without_the_specs_layer_is_one_line(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("class Other:\n    pass\n")
    mark_package(pkg, ["__init__.py", "layers.py"])  # as generate marks what it wrote
    spec = tmp_path / "s.toml"
    spec.write_text('[[layer]]\nname = "Square"\nforward = "x**2"\n')
    assert main(["verify", "--spec", str(spec), "--package", str(pkg)]) == 2
    err = capsys.readouterr().err
    # A layer in the package that the spec does not describe would go unchecked: refused first.
    assert err == (
        f"chainrule: error: {pkg}: the spec given does not describe Other; "
        "name the spec the package was made from\n"
    )
    chapter = tmp_path / "chapter"  # the shipped package: every layer but the spec's
    chapter.mkdir()
    for name in ("__init__.py", "layers.py"):
        (chapter / name).write_text((ROOT / "generated" / name).read_text())
    mark_package(chapter, ["__init__.py", "layers.py"])
    assert main(["verify", "--spec", str(spec), "--package", str(chapter)]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: {chapter}/layers.py has no class Square: generate the package again "
        "from the same spec with 'chainrule generate --spec FILE --out DIR'\n"
    )
