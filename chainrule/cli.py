"""The ``chainrule`` command: derive, and more as the project grows."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line and carry no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# numpy's legacy seeding, which the chapter's scripts use, takes seeds below 2**32.
SEED_MAX = 2**32 - 1


def seed_int(text: str) -> int:
    """A random seed as argparse reads it: a whole number from 0 to SEED_MAX."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {SEED_MAX}")
    return value


class StdoutFailed(Exception):
    """Standard output is full or broken: main says so in one line."""


class _GuardedStdout:
    """Standard output whose failed writes say they came from it, so main tells them from other I/O errors.

    BrokenPipeError passes unchanged: a command may catch it to stop cleanly (main reports it too).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.strerror or str(exc)) from None

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def write_stdout(text: str) -> None:
    """Print ``text``; a closed standard output is a user error, a full or broken one is reported by main."""
    if sys.stdout is None:
        raise UsageError("standard output is closed: name a file with -o FILE")
    sys.stdout.write(text)


def _output(text: str, path: str | None) -> None:
    """Print ``text``, or write it atomically to ``path``."""
    if path is None:
        write_stdout(text)
        return
    from chainrule.files import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)


def _read_specs(path: str | None) -> tuple:
    """The specs of a TOML file, or none, each derived within the limits; a bad file is a one-line error.

    Derived here, once, in a child process with a time and memory limit; the rest of the
    command reuses the derivations.
    """
    if path is None:
        return ()
    from chainrule.bounded import derive_bounded
    from chainrule.specfile import read_specs
    from codegen.names import package_names
    from symbolic.shipped import SHIPPED
    from symbolic.spec import SpecError, check_names

    try:
        specs = read_specs(path)
        check_names([*SHIPPED, *specs], *package_names())
        derive_bounded(specs)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    return specs


def cmd_derive(args: argparse.Namespace) -> int:
    """Print derivations as LaTeX or Markdown."""
    import symbolic
    from codegen.document import document
    from symbolic.spec import SpecError, derive_spec

    specs = {s.key: s for s in _read_specs(args.spec)}
    names = args.names or [*symbolic.NAMES, *specs]
    derivations = []
    for name in names:
        try:
            derivations.append(
                derive_spec(specs[name]).derivation if name in specs else symbolic.derive(name)
            )
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        except symbolic.UnknownDerivation as exc:
            more = f", {', '.join(specs)}" if specs else ""
            raise UsageError(f"{exc}{more}") from None
    if args.standalone and args.format != "latex":
        raise UsageError("--standalone makes a LaTeX document; it cannot go with --format markdown")
    _output(document(derivations, args.format, args.standalone), args.output)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write generated/ from the templates, or check that it is up to date."""
    from codegen.generate import DEFAULT_OUT, GenerateError, generate

    specs = _read_specs(args.spec)
    if specs and not args.out:
        raise UsageError("--spec writes a new package: name its folder with --out DIR")
    out = args.out or DEFAULT_OUT
    accept = None
    if specs:
        from chainrule.verify import verify_package

        def accept(staging: Path) -> None:
            verify_package(staging, specs)

    try:
        result = generate(Path(out), check=args.check, specs=specs, accept=accept)
    except GenerateError as exc:
        raise UsageError(str(exc)) from None
    if args.check:
        if result.changed:
            sys.stdout.write(result.diff)
            print(
                f"chainrule: {result.out} is stale: {', '.join(result.changed)} differ; run 'chainrule generate'",
                file=sys.stderr,
            )
            return 1
        print(f"{result.out} is up to date", file=sys.stderr)
        return 0
    if result.changed:
        print(f"wrote {result.out}: {', '.join(result.changed)}", file=sys.stderr)
    else:
        print(f"{result.out} was already up to date", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every generated gradient three ways, plus gradcheck's hygiene checks."""
    from chainrule.verify import run
    from codegen.model import catalog

    if args.per_sign is not None and not args.accuracy:
        raise UsageError("--points goes with --accuracy")
    if args.spec and not args.package:
        raise UsageError(
            "--spec describes a package made with 'generate --spec FILE --out DIR': name it with --package DIR"
        )
    specs = _read_specs(args.spec)
    module = "generated.layers"
    if args.package:
        module = _import_layers(Path(args.package))
    if args.accuracy:
        from chainrule import accuracy

        return 0 if accuracy.run(module, catalog(specs), per_sign=args.per_sign or 400) else 1
    return 0 if run(module, seed=args.seed, cat=catalog(specs)) else 1


def _import_layers(folder: Path) -> str:
    """Import a generated package's layers module; any failure is a one-line user error."""
    import importlib

    from chainrule.verify import import_package

    for name in ("__init__.py", "layers.py"):
        if not (folder / name).is_file():
            raise UsageError(f"{folder} is not a generated package (no {name})")
    try:
        module = f"{import_package(folder)}.layers"
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's code may fail in any way; say how in one line
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise UsageError(f"{folder}: the package does not import: {detail}") from None
    return module


def cmd_train(args: argparse.Namespace) -> int:
    """Train the generated TwoLayerNet on MNIST and save metrics, the figure and the weights."""
    from chainrule.train import RunError, main_train

    try:
        return main_train(args)
    except RunError as exc:
        raise UsageError(str(exc)) from None


def cmd_gradcheck(args: argparse.Namespace) -> int:
    """The chapter's gradient check on the first 3 MNIST training images."""
    import numpy as np

    from chainrule.mnist import MnistError, load_mnist
    from generated.gradient_check import main as check

    try:
        (x_train, t_train), _ = load_mnist(one_hot_label=True, data_dir=args.data_dir, dtype=np.float64)
    except MnistError as exc:
        raise UsageError(str(exc)) from None
    diffs = check(x_train, t_train, seed=args.seed)
    return 0 if all(v <= 1e-6 for v in diffs.values()) else 1


def _grid_points(text: str) -> int:
    """Points per sign of the accuracy grid: 2 to 5000, so a run stays bounded."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 2 <= value <= 5000:
        raise argparse.ArgumentTypeError(f"{value} is not between 2 and 5000")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per job."""
    parser = _Parser(
        prog="chainrule",
        description="Backpropagation derived by SymPy, generated as NumPy, and verified.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    derive = sub.add_parser("derive", help="print the chapter's derivations as LaTeX or Markdown")
    derive.add_argument("names", nargs="*", help="derivations to print (default: all)")
    derive.add_argument("--format", choices=("latex", "markdown"), default="latex")
    derive.add_argument("--standalone", action="store_true", help="a whole LaTeX document")
    derive.add_argument("-o", "--output", metavar="FILE", help="write here instead of printing")
    derive.add_argument("--spec", metavar="FILE", help="also derive the layers of this TOML spec file")
    derive.set_defaults(func=cmd_derive)

    generate = sub.add_parser("generate", help="write generated/ from the derivations and templates")
    generate.add_argument("--check", action="store_true", help="only compare; exit 1 with a diff when stale")
    generate.add_argument(
        "--out", metavar="DIR", help="where the generated package goes (default: generated/)"
    )
    generate.add_argument(
        "--spec", metavar="FILE", help="add the layers of this TOML spec file (verified before writing)"
    )
    generate.set_defaults(func=cmd_generate)

    verify = sub.add_parser(
        "verify", help="check every generated gradient against SymPy and central differences"
    )
    verify.add_argument("--seed", type=seed_int, default=0, help="seed of the random inputs")
    verify.add_argument("--spec", metavar="FILE", help="the spec file the package was generated with")
    verify.add_argument(
        "--package", metavar="DIR", help="a package written by generate --out (default: generated/)"
    )
    verify.add_argument(
        "--accuracy",
        action="store_true",
        help="instead: worst float64 error in ulps of every kernel and activation against 50-digit mpmath",
    )
    verify.add_argument(
        "--points",
        dest="per_sign",
        type=_grid_points,
        metavar="N",
        help="with --accuracy: grid points per sign (default 400, at most 5000)",
    )
    verify.set_defaults(func=cmd_verify)

    from chainrule.train import Settings, positive_float, positive_int

    d = Settings()
    train = sub.add_parser("train", help="train the generated TwoLayerNet on MNIST (the chapter's run)")
    train.add_argument("--iters", type=positive_int, default=d.iters, help=f"iterations (default {d.iters})")
    train.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help=f"default {d.batch_size}"
    )
    train.add_argument("--lr", type=positive_float, default=d.lr, help=f"learning rate (default {d.lr})")
    train.add_argument(
        "--hidden",
        type=positive_int,
        nargs="+",
        default=list(d.hidden),
        metavar="N",
        help=f"hidden units, one number per hidden layer (default {d.hidden[0]})",
    )
    train.add_argument(
        "--activation",
        metavar="NAME",
        help="use a MultiLayerNet with this activation: relu, sigmoid, tanh, leaky_relu, elu, softplus, silu, gelu",
    )
    train.add_argument("--seed", type=seed_int, default=d.seed, help=f"random seed (default {d.seed})")
    train.add_argument("--data-dir", metavar="DIR", help="a folder with the four MNIST IDX files")
    train.add_argument(
        "--out", metavar="DIR", help="where to save the outputs (default: a new folder in runs/)"
    )
    train.set_defaults(func=cmd_train)

    gradcheck = sub.add_parser("gradcheck", help="backprop vs numerical gradient on 3 MNIST images")
    gradcheck.add_argument("--data-dir", metavar="DIR", help="a folder with the four MNIST IDX files")
    gradcheck.add_argument("--seed", type=seed_int, default=0, help="seed of the initial weights")
    gradcheck.set_defaults(func=cmd_gradcheck)

    from chainrule import graph_cmd

    graph_cmd.add_parser(sub)
    from chainrule import report

    report.add_parser(sub)
    from chainrule import notebook

    notebook.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors are one line on stderr and exit status 2."""
    parser = build_parser()
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _GuardedStdout(stdout)  # type: ignore[assignment]
    try:
        args = parser.parse_args(argv)
        status = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, not at exit, so a full or broken pipe is reported below
        return status
    except UsageError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return 130
    except (StdoutFailed, BrokenPipeError) as exc:
        _silence_stdout(stdout)
        reason = exc.strerror if isinstance(exc, OSError) else exc
        print(f"chainrule: error: cannot write to standard output: {reason}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


def _silence_stdout(stdout: TextIO | None) -> None:
    """Point standard output at the null device, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())  # type: ignore[union-attr]
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
