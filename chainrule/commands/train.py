"""``chainrule train``: the chapter's MNIST run, with saved metrics, figure and weights."""

from __future__ import annotations

import argparse

from chainrule.commands.options import seed_int
from chainrule.errors import UsageError
from chainrule.train import Settings, add_output_options, positive_float, positive_int
from codegen.i18n import message_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``train`` subcommand, its defaults the chapter's."""
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
    train.add_argument(
        "--package",
        metavar="DIR",
        help="train this generated package's MultiLayerNet with its own layers (default: generated/)",
    )
    train.add_argument("--seed", type=seed_int, default=d.seed, help=f"random seed (default {d.seed})")
    train.add_argument("--data-dir", metavar="DIR", help="a folder with the four MNIST IDX files")
    train.add_argument(
        "--out", metavar="DIR", help="where to save the outputs (default: a new folder in runs/)"
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="replace the run already in --out (never a folder of other files)",
    )
    add_output_options(train)
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the generated TwoLayerNet on MNIST and save metrics, the figure and the weights."""
    from chainrule.train import RunError, main_train

    try:
        return main_train(args)
    except RunError as exc:
        raise UsageError(message_of(exc)) from None
