"""``chainrule gradcheck``: backprop against the numerical gradient on the first 3 MNIST images."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _
from chainrule.commands.options import seed_int
from chainrule.errors import UsageError

# The network generated/gradient_check.py builds: TwoLayerNet(pixels, HIDDEN, CLASSES).
HIDDEN, CLASSES = 50, 10
# One central difference per parameter: MNIST's network has 39,760 and takes a fraction of a
# second; the default limit (26 times that, images of up to about 140x140) a few seconds.
MAX_PARAMS = 2**20
MAX_PARAMS_CEILING = 2**24  # the most --max-params allows: 800 MB of float64 arrays, minutes of work


def parameters(pixels: int) -> int:
    """The parameters of the gradient check's network for images of ``pixels`` pixels."""
    return pixels * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES


def _max_params(text: str) -> int:
    """--max-params: a whole number from 1 to MAX_PARAMS_CEILING."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARAMS_CEILING:
        raise argparse.ArgumentTypeError(
            _("{text} is not a whole number from 1 to {most}", text=repr(text), most=MAX_PARAMS_CEILING)
        )
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``gradcheck`` subcommand."""
    gradcheck = sub.add_parser("gradcheck", help=_("backprop vs numerical gradient on 3 MNIST images"))
    gradcheck.add_argument("--data-dir", metavar="DIR", help=_("a folder with the four MNIST IDX files"))
    gradcheck.add_argument("--seed", type=seed_int, default=0, help=_("seed of the initial weights"))
    gradcheck.add_argument(
        "--max-params",
        type=_max_params,
        default=MAX_PARAMS,
        metavar="N",
        help=_(
            "refuse images that give the network more than N parameters, each one central difference"
            " (default {default}, at most {most})",
            default=MAX_PARAMS,
            most=MAX_PARAMS_CEILING,
        ),
    )
    gradcheck.add_argument(
        "--verbose", action="store_true", help=_("say in full why the MNIST sample is used")
    )
    gradcheck.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The chapter's gradient check on the first 3 MNIST training images."""
    import numpy as np

    from chainrule.mnist import MnistError, load_mnist, locate_mnist
    from chainrule.mnist.sources import image_pixels

    try:
        source = locate_mnist(args.data_dir, verbose=args.verbose)
        pixels = image_pixels(source)
        if parameters(pixels) > args.max_params:
            raise UsageError(
                _(
                    "{path}: images of {pixels} pixels give the gradient check's network {params}"
                    " parameters, one central difference each: more than --max-params {limit}",
                    path=source.path,
                    pixels=format(pixels, ","),
                    params=format(parameters(pixels), ","),
                    limit=args.max_params,
                )
            )
        (x_train, t_train), _test = load_mnist(one_hot_label=True, dtype=np.float64, source=source)
    except MnistError as exc:
        raise UsageError(str(exc)) from None
    from chainrule.packages.importer import import_package

    (check,) = import_package(None, ("gradient_check",))
    diffs = check.main(x_train, t_train, seed=args.seed)
    return 0 if all(v <= 1e-6 for v in diffs.values()) else 1
