"""A run folder is data: loading one runs no code chainrule did not write, and ``report`` embeds only its plot.

Each test builds what a hostile user could hand over (a run folder, the package it names, a
runs/ folder) and checks that chainrule refuses it in one line, or reads it without following
it anywhere, and that the code planted in it never ran (no PWNED file appears).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chainrule import mnist
from chainrule.commands.report import TrainingRun, latest_run
from chainrule.packages.marker import MARKER, content_digest, mark_package
from chainrule.runs.settings import Settings
from chainrule.runs.training import run
from tests.helpers import chainrule, chainrule_process, error_line, offline_env

SAMPLE = mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)
GENERATED = Path(__file__).resolve().parents[2] / "generated"
MODULES = ("__init__.py", "layers.py", "multi_layer_net.py", "two_layer_net.py")
EVIL = 'open("PWNED", "w").close()\n'


def copy_package(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def remark(package: Path) -> str:
    """Rewrite the marker so that it lists the folder's files as they are now, as a forger would."""
    marker = json.loads((package / MARKER).read_text())
    files = {name: (package / name).read_bytes() for name in marker["files"]}
    marker["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    (package / MARKER).write_text(json.dumps(marker))
    return content_digest(files)


def edit_run_json(run_dir: Path, **fields: object) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    record.update(fields)
    (run_dir / "run.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A run trained with a generated package (a copy of generated/), and that package."""
    base = tmp_path_factory.mktemp("trained")
    made = chainrule("generate", "--out", "mylayers", cwd=base, env=offline_env(base))
    assert made.returncode == 0, made.stderr
    package = base / "mylayers"
    data = mnist.load_mnist(normalize=True, one_hot_label=True, announce=None, source=SAMPLE)
    settings = Settings(iters=20, hidden=(9,), activation="relu", package=str(package))
    run(settings, data, base / "run", echo=lambda _: None, progress=False, package=package)
    return base / "run", package


@pytest.fixture
def copied(trained, tmp_path) -> tuple[Path, Path]:
    """This test's own copy of the run and its package, run.json naming the copy."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    package = copy_package(trained[1], tmp_path / "mylayers")
    edit_run_json(run_dir, package=str(package))
    return run_dir, package


@pytest.fixture
def digit(tmp_path) -> Path:
    """A PNG of a light stroke on a dark background, for predict."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:16] = 255
    path = tmp_path / "one.png"
    Image.fromarray(image).save(path)
    return path


def evaluate_and_predict(
    tmp_path: Path, run_dir: Path, digit: Path
) -> list[subprocess.CompletedProcess[str]]:
    return [
        chainrule("evaluate", str(run_dir), cwd=tmp_path, env=offline_env(tmp_path)),
        chainrule("predict", str(run_dir), str(digit), cwd=tmp_path, env=offline_env(tmp_path)),
    ]


# --- a run folder never runs code chainrule did not write --------------------------------------


def test_a_real_package_run_loads_and_records_its_packages_digest(copied, tmp_path, digit):
    run_dir, package = copied
    marker = json.loads((package / MARKER).read_text())
    files = {name: (package / name).read_bytes() for name in marker["files"]}
    assert set(files) == {p.name for p in GENERATED.glob("*.py")}
    assert marker["files"] == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert len(marker["seal"]) == 64 and "seal" not in json.loads((GENERATED / MARKER).read_text())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["package_sha256"] == content_digest(files)
    evaluated, predicted = evaluate_and_predict(tmp_path, run_dir, digit)
    assert evaluated.returncode == 0 and evaluated.stdout.startswith("test accuracy "), evaluated.stderr
    assert predicted.returncode == 0 and predicted.stdout.startswith(f"{digit}: "), predicted.stderr
    assert sorted(p.name for p in package.iterdir()) == sorted([MARKER, *files])  # no __pycache__ written


def test_the_reproducer_an_unmarked_package_with_code_in_its_four_modules_never_runs(copied, tmp_path, digit):
    """Copy a run, put code into four modules of a folder, point 'package' at it."""
    run_dir, _package = copied
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in MODULES:
        (evil / name).write_text(EVIL + (GENERATED / name).read_text())
    edit_run_json(run_dir, package=str(evil))
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"the run's package cannot be loaded: {evil} is not a package chainrule generated "
            f"(it holds no {MARKER})"
        )
    assert not (tmp_path / "PWNED").exists()


def test_a_marked_package_whose_bytes_changed_never_runs(copied, tmp_path, digit):
    run_dir, package = copied
    for name in MODULES:
        (package / name).write_text(EVIL + (package / name).read_text())
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"the run's package cannot be loaded: {package}: __init__.py is not the file chainrule "
            "generated (its bytes changed since); generate the package again"
        )
    # train and verify check the same way before they import anything
    trained = chainrule(
        "train",
        "--package",
        str(package),
        "--iters",
        "1",
        "--out",
        "r2",
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert error_line(trained).endswith(
        "__init__.py is not the file chainrule generated (its bytes changed since); generate the package again"
    )
    verified = chainrule("verify", "--package", str(package), cwd=tmp_path, env=offline_env(tmp_path))
    assert error_line(verified).endswith("generate the package again")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "r2").exists()


def test_a_marker_forged_for_other_code_carries_no_seal(copied, tmp_path, digit):
    """The forger lists the planted code's hashes in the marker, and its digest in run.json."""
    run_dir, package = copied
    for name in MODULES:
        (package / name).write_text(EVIL + (package / name).read_text())
    edit_run_json(run_dir, package_sha256=remark(package))
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"the run's package cannot be loaded: {package}: its {MARKER} does not carry this account's seal "
            "(the package was made elsewhere, or by hand); generate it again"
        )
    trained = chainrule(
        "train",
        "--package",
        str(package),
        "--iters",
        "1",
        "--out",
        "r2",
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert error_line(trained).endswith("generate it again")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "r2").exists()


def test_a_package_generated_again_is_not_the_one_the_run_was_trained_with(copied, tmp_path, digit):
    run_dir, package = copied
    layers = package / "layers.py"
    layers.write_text(layers.read_text() + "# changed\n")
    mark_package(package, json.loads((package / MARKER).read_text())["files"])  # as generate seals it
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"the run's package cannot be loaded: {package} is not the package the run was trained with "
            "(its files changed since); train the run again"
        )


def test_a_module_that_is_a_symbolic_link_is_never_followed(copied, tmp_path, digit):
    """Marker and run.json both agree with the linked file's bytes: only the link is wrong."""
    run_dir, package = copied
    outside = tmp_path / "elsewhere.py"
    outside.write_text(EVIL + (package / "layers.py").read_text())
    (package / "layers.py").unlink()
    (package / "layers.py").symlink_to(outside)
    names = json.loads((package / MARKER).read_text())["files"]
    mark_package(package, names)  # sealed too (the seal covers the whole marker): only the link is wrong
    edit_run_json(
        run_dir, package_sha256=content_digest({name: (package / name).read_bytes() for name in names})
    )
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"the run's package cannot be loaded: {package}: cannot read layers.py: "
            "it is a symbolic link, not a regular file"
        )
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("how", ["link", "proc"])
def test_a_package_path_that_goes_through_a_link_is_refused(copied, tmp_path, digit, how):
    run_dir, package = copied
    if how == "link":
        named = tmp_path / "alias"
        named.symlink_to(package)
    else:
        named = Path("/proc/self/cwd") / package.name  # absolute, but it means: wherever the command runs
    edit_run_json(run_dir, package=str(named))
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"refusing to load the run's package {named}: the path goes through a symbolic link; "
            "train the run again"
        )


def test_a_relative_package_path_is_refused(copied, tmp_path, digit):
    run_dir, package = copied
    edit_run_json(run_dir, package=package.name)
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == f"{run_dir / 'run.json'}: 'package' is \"mylayers\", not an absolute path"


@pytest.mark.parametrize("form", ["{parent}/./{name}", "{parent}//{name}", "{parent}/{name}/"])
def test_a_package_path_not_in_its_plain_form_is_refused_as_such(copied, tmp_path, digit, form):
    run_dir, package = copied
    named = form.format(parent=package.parent, name=package.name)
    edit_run_json(run_dir, package=named)
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"refusing to load the run's package {named}: its path is not one plain absolute path;"
            " train the run again"
        )
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("digest", [None, "0" * 12, 5])
def test_a_package_run_json_without_the_packages_digest_is_refused(copied, tmp_path, digit, digest):
    run_dir, _package = copied
    edit_run_json(run_dir, package_sha256=digest)
    shown = json.dumps(digest)
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert error_line(r) == (
            f"{run_dir / 'run.json'}: 'package_sha256' is {shown}, not the SHA-256 of the package it names"
        )


def test_bytecode_and_shadowing_files_beside_the_checked_modules_never_run(copied, tmp_path, digit):
    """Files the marker does not list are never imported, even those Python's own import would prefer.

    A __pycache__ entry that claims the source's size and time, and a layers/ sub-package, would
    each win over layers.py in a normal import; the run loads from the checked bytes instead.
    """
    run_dir, package = copied
    layers = package / "layers.py"
    info = layers.stat()
    fake = tmp_path / "fake_layers.py"
    fake.write_bytes(EVIL.encode() + b"#" * (info.st_size - len(EVIL) - 1) + b"\n")  # the same size
    os.utime(fake, ns=(info.st_atime_ns, info.st_mtime_ns))  # and the same time
    pyc = package / "__pycache__" / f"layers.{sys.implementation.cache_tag}.pyc"
    mode = py_compile.PycInvalidationMode.TIMESTAMP
    py_compile.compile(str(fake), cfile=str(pyc), doraise=True, invalidation_mode=mode)
    (package / "two_layer_net").mkdir()
    (package / "two_layer_net" / "__init__.py").write_text(EVIL)
    for r in evaluate_and_predict(tmp_path, run_dir, digit):
        assert r.returncode == 0, r.stderr
    assert not (tmp_path / "PWNED").exists()


def test_evaluate_of_a_package_run_loads_no_sympy(copied, tmp_path):
    run_dir, _package = copied
    code = (
        "import sys\nfrom chainrule.cli import main\n"
        f"code = main(['evaluate', {str(run_dir)!r}])\n"
        "print(code, 'sympy' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert r.stderr.splitlines()[-1] == "0 False", r.stderr


# --- report embeds a run's plot, never a file a link points to ---------------------------------

SECRET = "api-key: hunter2\n"


def make_runs(tmp_path: Path) -> tuple[Path, Path]:
    """runs/ with one run as train leaves it (a real PNG plot, metrics.csv), and a secret outside it."""
    from chainrule.runs.outputs import Record, accuracy_png, metrics_csv

    record = Record(losses=[2.3, 0.5])
    record.epochs += [(0, 0, 2.3, 0.11, 0.1), (1, 600, 0.5, 0.9, 0.89)]
    run_dir = tmp_path / "runs" / "good"
    run_dir.mkdir(parents=True)
    (run_dir / "accuracy.png").write_bytes(accuracy_png(record))
    (run_dir / "metrics.csv").write_text(metrics_csv(record))
    os.utime(run_dir / "accuracy.png", (1_700_000_000, 1_700_000_000))
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    return tmp_path / "runs", secret


def never_disclosed(text: str, secret: str = SECRET) -> None:
    for data in [secret.encode(), b"\x89PNG\r\n\x1a\n" + secret.encode()]:
        assert base64.b64encode(data).decode()[:16] not in text
    assert secret.strip() not in text


def test_the_reproducer_a_plot_linked_to_a_secret_is_left_out_with_a_note(tmp_path):
    """ln -s ~/secret.txt runs/evil/accuracy.png; chainrule report -o site: the page is written, without it."""
    runs, secret = make_runs(tmp_path)
    (runs / "evil").mkdir()
    (runs / "evil" / "accuracy.png").symlink_to(secret)
    (runs / "evil" / "metrics.csv").symlink_to(secret)
    r = chainrule(
        "report", "-o", str(tmp_path / "site"), "--runs", str(runs), cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    page = (tmp_path / "site" / "report.html").read_text(encoding="utf-8")
    plot, metrics = runs / "evil" / "accuracy.png", runs / "evil" / "metrics.csv"
    reason = f"refusing to read {plot}: it is a symbolic link, not a regular file"
    metrics_reason = f"refusing to read {metrics}: it is a symbolic link, not a regular file"
    assert r.stderr.splitlines() == [
        f"note: {reason}; the report leaves it out",
        f"note: {metrics_reason}; the report leaves it out",
        f"wrote {tmp_path / 'site' / 'report.html'}",
    ]
    never_disclosed(page)
    assert "data:image/png" not in page  # the newest run's plot is out; no other run's plot stands in
    assert f"The newest run, {runs / 'evil'}: no metrics: {metrics_reason}." in page
    assert f'<p class="run-note">{reason}; the report leaves it out.</p>' in page
    assert f'<p class="run-note">{metrics_reason}; the report leaves it out.</p>' in page


def test_a_run_folder_that_is_a_link_is_left_out(tmp_path):
    runs, _secret = make_runs(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n" + SECRET.encode())
    (elsewhere / "metrics.csv").write_text(SECRET)
    (runs / "evil").symlink_to(elsewhere)
    found = latest_run(runs)
    reason = f"refusing to read {runs / 'evil'}: it is a symbolic link, not a run folder"
    assert found == TrainingRun(str(runs / "evil"), None, f"no metrics: {reason}", (reason,))


@pytest.mark.parametrize("content", [SECRET.encode(), b"", b"GIF89a" + bytes(100)])
def test_a_plot_that_is_not_a_png_is_left_out(tmp_path, content):
    runs, _secret = make_runs(tmp_path)
    shutil.copytree(runs / "good", runs / "evil")
    (runs / "evil" / "accuracy.png").write_bytes(content)
    found = latest_run(runs)
    reason = f"refusing to embed {runs / 'evil' / 'accuracy.png'}: it is not a PNG image"
    assert (found.path, found.image, found.notes) == (str(runs / "evil"), None, (reason,))
    assert found.summary.startswith("final epoch 1 (iteration 600)")


def test_metrics_that_are_a_fifo_are_left_out(tmp_path):
    runs, _secret = make_runs(tmp_path)
    (runs / "good" / "metrics.csv").unlink()
    os.mkfifo(runs / "good" / "metrics.csv")  # opened without blocking: never waits for a writer
    found = latest_run(runs)
    reason = f"refusing to read {runs / 'good' / 'metrics.csv'}: it is a FIFO, not a regular file"
    assert found.image.startswith("data:image/png;base64,iVBORw0KGgo")
    assert (found.summary, found.notes) == (f"no metrics: {reason}", (reason,))


def test_a_good_run_is_embedded_whole(tmp_path):
    runs, _secret = make_runs(tmp_path)
    png = (runs / "good" / "accuracy.png").read_bytes()
    assert latest_run(runs) == TrainingRun(
        str(runs / "good"),
        f"data:image/png;base64,{base64.b64encode(png).decode()}",
        "final epoch 1 (iteration 600): loss 0.5000, train accuracy 0.9000, test accuracy 0.8900",
    )


# --- params.npz headers are checked before any array is read ----------------------------------


def npz_with(run_dir: Path, name: str, header: dict[str, object], data: bytes = b"") -> None:
    """params.npz of the run, with member ``name`` replaced by a header (and data) written by hand."""
    import io
    import zipfile

    from numpy.lib import format as npy

    with np.load(run_dir / "params.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    member = io.BytesIO()
    npy.write_array_header_1_0(member, header)
    with zipfile.ZipFile(run_dir / "params.npz", "w") as archive:
        for key, array in arrays.items():
            if key == name:
                archive.writestr(f"{key}.npy", member.getvalue() + data)
            else:
                out = io.BytesIO()
                np.save(out, array)
                archive.writestr(f"{key}.npy", out.getvalue())


def limited(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command under 4 GB of address space (ulimit -v 4000000)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4_000_000 * 1024, 4_000_000 * 1024))

    return chainrule_process(*args, cwd=tmp_path, env=offline_env(tmp_path), preexec_fn=limit)


def test_the_reproducer_a_header_claiming_100000_by_100000_is_refused_before_allocating(
    copied, tmp_path, digit
):
    run_dir, _package = copied
    npz_with(run_dir, "W1", {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
    for r in [
        limited(tmp_path, "evaluate", str(run_dir)),
        limited(tmp_path, "predict", str(run_dir), str(digit)),
    ]:
        assert error_line(r) == (
            f"{run_dir / 'params.npz'}: W1 has shape (100000, 100000), but "
            "MultiLayerNet(784, [9], 10, activation='relu') needs (784, 9)"
        )


@pytest.mark.parametrize(
    ("descr", "shown"), [("|O", "object"), ("<c16", "complex128"), ("<i8", "int64"), ("|V8", "|V8")]
)
def test_a_header_of_another_type_is_refused_before_reading(copied, tmp_path, descr, shown):
    run_dir, _package = copied
    npz_with(run_dir, "b1", {"descr": descr, "fortran_order": False, "shape": (9,)}, b"\0" * 72)
    r = limited(tmp_path, "evaluate", str(run_dir))
    assert error_line(r) == f"{run_dir / 'params.npz'}: b1 is {shown}, not float32 or float64"


def test_a_header_whose_data_is_short_is_one_line(copied, tmp_path):
    run_dir, _package = copied
    npz_with(run_dir, "b1", {"descr": "<f8", "fortran_order": False, "shape": (9,)}, b"\0" * 8)
    r = limited(tmp_path, "evaluate", str(run_dir))
    assert error_line(r).startswith(f"{run_dir / 'params.npz'} is not a readable weights file: ")


# --- the current folder never stands in for chainrule's own packages ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("package", ["codegen", "symbolic", "generated", "ruff"])
def test_python_m_chainrule_never_imports_a_same_named_folder_of_the_current_folder(tmp_path, package):
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text('open("PWNED", "w").close()\n')
    env = {**offline_env(tmp_path)}
    env.pop("PYTHONPATH", None)  # the installed chainrule, found after the current folder
    for args in (["--help"], ["derive", "relu"], ["generate", "--out", "pkg"], ["gradcheck"]):
        r = chainrule_process(*args, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "PWNED").exists()
    assert (tmp_path / "pkg" / "layers.py").is_file()


def test_a_name_with_a_terminals_escape_sequences_is_shown_never_acted_on(tmp_path):
    name = "r\x1b]0;PWN\x07\x1b[2J"
    for expected in (0, 2):  # written, then refused as a run already there
        r = chainrule(
            "train", "--iters", "1", "--quiet", "--out", name, cwd=tmp_path, env=offline_env(tmp_path)
        )
        assert r.returncode == expected, r.stderr
        text = r.stdout + r.stderr
        assert "\x1b" not in text and "\x07" not in text
        assert "r\\x1b]0;PWN\\x07\\x1b[2J" in text
    assert (tmp_path / name / "params.npz").is_file()
