"""``chainrule gradcheck``: backprop against the numerical gradient on the first 3 MNIST images."""

from __future__ import annotations

import argparse

from chainrule.commands.options import seed_int
from chainrule.errors import UsageError
from codegen.i18n import _


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``gradcheck`` subcommand."""
    gradcheck = sub.add_parser("gradcheck", help=_("backprop vs numerical gradient on 3 MNIST images"))
    gradcheck.add_argument("--data-dir", metavar="DIR", help=_("a folder with the four MNIST IDX files"))
    gradcheck.add_argument("--seed", type=seed_int, default=0, help=_("seed of the initial weights"))
    gradcheck.add_argument(
        "--verbose", action="store_true", help=_("say in full why the MNIST sample is used")
    )
    gradcheck.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The chapter's gradient check on the first 3 MNIST training images."""
    import numpy as np

    from chainrule.mnist import MnistError, load_mnist
    from generated.gradient_check import main as check

    try:
        (x_train, t_train), _ = load_mnist(
            one_hot_label=True, data_dir=args.data_dir, dtype=np.float64, verbose=args.verbose
        )
    except MnistError as exc:
        raise UsageError(str(exc)) from None
    diffs = check(x_train, t_train, seed=args.seed)
    return 0 if all(v <= 1e-6 for v in diffs.values()) else 1
