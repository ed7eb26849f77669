"""``chainrule train``: the chapter's MNIST run, with saved metrics, figure and weights."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _, message_of
from chainrule.commands.options import seed_int
from chainrule.errors import UsageError
from chainrule.runs.settings import Settings, add_output_options, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``train`` subcommand, its defaults the chapter's."""
    d = Settings()
    train = sub.add_parser("train", help=_("train the generated TwoLayerNet on MNIST (the chapter's run)"))
    train.add_argument(
        "--iters", type=positive_int, default=d.iters, help=_("iterations (default {iters})", iters=d.iters)
    )
    train.add_argument(
        "--batch-size",
        type=positive_int,
        default=d.batch_size,
        help=_("default {batch_size}", batch_size=d.batch_size),
    )
    train.add_argument(
        "--lr", type=positive_float, default=d.lr, help=_("learning rate (default {lr})", lr=d.lr)
    )
    train.add_argument(
        "--hidden",
        type=positive_int,
        nargs="+",
        default=list(d.hidden),
        metavar="N",
        help=_("hidden units, one number per hidden layer (default {value})", value=d.hidden[0]),
    )
    train.add_argument(
        "--activation",
        metavar="NAME",
        help=_(
            "use a MultiLayerNet with this activation: relu, sigmoid, tanh, leaky_relu, elu, softplus, silu, gelu"
        ),
    )
    train.add_argument(
        "--package",
        metavar="DIR",
        help=_("train this generated package's MultiLayerNet with its own layers (default: generated/)"),
    )
    train.add_argument(
        "--seed", type=seed_int, default=d.seed, help=_("random seed (default {seed})", seed=d.seed)
    )
    train.add_argument("--data-dir", metavar="DIR", help=_("a folder with the four MNIST IDX files"))
    train.add_argument(
        "--out", metavar="DIR", help=_("where to save the outputs (default: a new folder in runs/)")
    )
    train.add_argument(
        "--force",
        action="store_true",
        help=_("replace the run already in --out (never a folder of other files)"),
    )
    add_output_options(train)
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the generated TwoLayerNet on MNIST and save metrics, the figure and the weights."""
    from chainrule.runs.folder import RunError
    from chainrule.runs.training import main_train

    try:
        return main_train(args)
    except RunError as exc:
        raise UsageError(message_of(exc)) from None
