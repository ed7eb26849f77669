"""Shared tools for the tests: central differences in float64, and the two ways to run the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The gradient of a scalar function of an array, one central difference per entry."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        keep = x[i]
        x[i] = keep + h
        up = f(x)
        x[i] = keep - h
        down = f(x)
        x[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest entry-wise error, relative to the larger magnitude (absolute near zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
    return float(np.max(np.abs(a - b) / scale))


# The chapter's derivations in its order, written here as the tests' own expectation.
CHAPTER = (
    "add",
    "mul",
    "chain_rule",
    "apples",
    "apples_oranges",
    "relu",
    "sigmoid",
    "affine",
    "softmax_with_loss",
)


ROOT = Path(__file__).resolve().parent.parent


def offline_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command that must use the shipped MNIST sample and a cache of its own.

    ``extra`` adds or replaces variables; CHAINRULE_DATA_DIR is never inherited from the user.
    """
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "CHAINRULE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CHAINRULE_DATA_DIR", None)
    return {**env, **(extra or {})}


# A safety net against a hang of a real process, never a measurement.
TIMEOUT = 300


def chainrule_process(
    *args: str | Path,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = TIMEOUT,
    **popen: object,
) -> subprocess.CompletedProcess[str]:
    """``python -m chainrule ARGS`` in a fresh interpreter: for what only a real process shows.

    That is signals and the exit status of a killed process, a closed or full standard output or
    error, variables read at startup (PYTHONIOENCODING), memory limits and import-time checks.
    ``env`` is the whole environment, as for subprocess.run (default: this process's, which
    conftest.py makes English with private caches). Output is captured as text unless ``popen``
    names stdout or stderr.
    """
    streams = {"stdout", "stderr"} & popen.keys()
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *map(str, args)],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=not streams,
        text=True,
        timeout=timeout,
        **popen,
    )


def chainrule(
    *args: str | Path,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command line run in this interpreter: what ``chainrule_process`` gives, without a new SymPy.

    ``chainrule.cli.main`` runs with standard input, output and error swapped for strings, in
    ``cwd`` and with ``env`` as the whole environment (both given back after); it ends as the
    program does: SystemExit's code is the status, and the output is read as a parent reads a
    pipe in text mode (universal newlines). Warnings are shown on standard error as Python shows
    them by default, not collected by pytest. An exception main lets through fails the test with
    its traceback, where the program would print it and exit with status 1.
    """
    from chainrule.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr, os.getcwd(), dict(os.environ)
    try:
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        os.environ.setdefault("COLUMNS", "80")  # argparse's width when standard output is a pipe
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings():
            _default_warnings()
            try:
                status = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's --help
                status = exc.code
        if status is None:
            status = 0
        elif not isinstance(status, int):
            print(status, file=sys.stderr)
            status = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved[:3]
        os.chdir(saved[3])
        if os.environ != saved[4]:
            os.environ.clear()
            os.environ.update(saved[4])
    return subprocess.CompletedProcess(
        ["chainrule", *map(str, args)], status, _as_pipe_reads(out.getvalue()), _as_pipe_reads(err.getvalue())
    )


def _default_warnings() -> None:
    """Python's own warning filters and display, as a fresh interpreter has them."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]


def _as_pipe_reads(text: str) -> str:
    """``text`` as subprocess.run(text=True) reads it: carriage returns become newlines."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def error_line(r: subprocess.CompletedProcess[str], *, notes: bool = False) -> str:
    """The error a refused command prints, without its prefix: exit 2, no traceback, nothing on stdout.

    The error is the only line on standard error, or with ``notes`` the last one after notes such as
    what was cleaned up.
    """
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr
    lines = r.stderr.strip().splitlines()
    assert notes or len(lines) == 1, r.stderr
    assert lines[-1].startswith("chainrule: error: "), r.stderr
    return lines[-1].removeprefix("chainrule: error: ")


def start_long_run(tmp_path: Path, out: Path, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """A long training run on the sample, once it has printed three epoch lines."""
    command = [sys.executable, "-m", "chainrule", "train", "--iters", "1000000", "--log-every", "1"]
    proc = subprocess.Popen(
        [*command, "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(tmp_path),
    )
    lines = []
    while len(lines) < 3:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        lines.append(line)
    return proc, lines


def compile_tex(engine: str, tex: Path) -> str:
    """Compile ``tex`` with ``engine`` (pdflatex, lualatex) in its folder; check the PDF and return the log.

    Fails on an error, on a missing or tiny PDF, and on any overfull box (a line that ran off the page).
    """
    done = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    pdf = tex.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    log = tex.with_suffix(".log").read_text(errors="replace")
    assert [line for line in log.splitlines() if line.startswith("Overfull")] == []
    return log


def run_notebook(nb, root: Path, quiet_matplotlib: bool = False):
    """Run a notebook top to bottom in a fresh kernel of this interpreter, offline; return it.

    The kernelspec is installed into ``root`` for sys.executable, so the kernel has this
    interpreter's packages and PYTHONPATH; it talks over Unix sockets, not the network; MNIST is
    the shipped sample (CHAINRULE_OFFLINE and an empty cache); the notebook's own language wins
    over the kernel's locale and CHAINRULE_LANG. ``quiet_matplotlib`` builds Matplotlib's font
    cache first, as a learner's machine has it, so that its one-time note is not on stderr.
    """
    import pytest
    from ipykernel.kernelspec import install as install_kernelspec
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    install_kernelspec(kernel_name="python3", prefix=str(root))
    env = {
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "MPLCONFIGDIR": str(root / "mpl"),
        "CHAINRULE_OFFLINE": "1",
        "CHAINRULE_CACHE_DIR": str(root / "cache"),
        "LANG": "C.UTF-8",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("CHAINRULE_LANG", raising=False)
        mp.delenv("CHAINRULE_DATA_DIR", raising=False)
        if quiet_matplotlib:
            subprocess.run(
                [sys.executable, "-c", "import matplotlib.pyplot"], check=True, capture_output=True
            )
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(root / "kernel"))
        assert km.kernel_spec.argv[0] == sys.executable
        client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(root)}})
        client.execute()
    return nb


def layers_package(tmp_path: Path, monkeypatch, name: str, source: str) -> str:
    """A package ``name`` under ``tmp_path`` holding ``source`` as its layers.py, importable: its module's name."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}.layers"
