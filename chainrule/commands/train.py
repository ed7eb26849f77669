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

    try:
        return _train(args)
    except RunError as exc:
        raise UsageError(message_of(exc)) from None


def _train(args: argparse.Namespace) -> int:
    """Check the settings, claim a folder, load data, train, save, say where."""
    import sys
    from pathlib import Path

    from chainrule.errors import Stopped
    from chainrule.mnist import MnistError, load_mnist, locate_mnist
    from chainrule.mnist.sources import image_pixels, peek_image_pixels
    from chainrule.runs.folder import RunDir, RunError, claim_out, fresh_run_dir
    from chainrule.runs.settings import INPUTS, check_batch, check_settings
    from chainrule.runs.training import Stops, _package_attr, check_activation, run, say, signal_name

    settings = Settings(
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=tuple(args.hidden),
        seed=args.seed,
        activation=args.activation,
        package=getattr(args, "package", None),
    )
    if settings.activation is not None:
        check_activation(settings)
    if settings.package is not None:
        _package_attr(
            settings.package, "train_neuralnet", "train"
        )  # a folder that is no package: before any data
    # Before any folder is made or any data loaded: the pixels per image from a named folder's header.
    check_settings(settings, inputs=peek_image_pixels(args.data_dir) or INPUTS)
    out = getattr(args, "out", None)
    run_dir: RunDir | None = None
    with Stops() as stops:
        try:
            run_dir = claim_out(Path(out), getattr(args, "force", False)) if out else fresh_run_dir()
            try:
                source = locate_mnist(args.data_dir, verbose=getattr(args, "verbose", False))
                check_settings(settings, inputs=image_pixels(source))
                data = load_mnist(normalize=True, one_hot_label=True, source=source)
            except MnistError as exc:
                raise RunError(message_of(exc)) from None
            (x_train, _labels), (x_test, _test_labels) = data
            check_batch(settings, len(x_train))
            say(
                _(
                    "training {network} on {train} images, testing on {test}: {iters} iterations,"
                    " batch {batch}, lr {lr}, seed {seed}",
                    network=settings.describe(x_train.shape[1]),
                    train=format(len(x_train), ","),
                    test=format(len(x_test), ","),
                    iters=format(settings.iters, ","),
                    batch=settings.batch_size,
                    lr=settings.lr,
                    seed=settings.seed,
                ),
                sys.stderr,
            )
            quiet = getattr(args, "quiet", False)
            record, _params, paths = run(
                settings,
                data,
                run_dir,
                progress=False if quiet else None,
                stops=stops,
                log_every=0 if quiet else getattr(args, "log_every", None),
                source=source,
                package=None if settings.package is None else Path(settings.package),
            )
        except Stopped as exc:
            if run_dir is not None:
                run_dir.release()
            say(
                _(
                    "interrupted by {signal} before training started; nothing was saved",
                    signal=signal_name(exc.signum),
                ),
                sys.stderr,
            )
            return 128 + exc.signum
        except BaseException:
            if run_dir is not None:
                run_dir.release()
            raise
    if record.interrupted_at is not None:
        say(
            _(
                "interrupted after {iterations} iterations by {signal}; saved what was done",
                iterations=format(record.interrupted_at, ","),
                signal=signal_name(record.stopped_by or 2),
            ),
            sys.stderr,
        )
    elif stops.signum is not None:
        say(
            _("{signal} came while saving; the whole set was saved first", signal=signal_name(stops.signum)),
            sys.stderr,
        )
    if stops.count > 1:
        say(
            _(
                "{count} more stop signal(s) ignored, so that the saved set stays whole",
                count=stops.count - 1,
            ),
            sys.stderr,
        )
    final = record.final
    if final is not None:
        # The saved weights, scored after the last step (the epoch lines may be many steps earlier).
        say(
            _(
                "final (the saved weights, after {iterations} iterations, {seconds} s): loss {loss},"
                " train acc {train}, test acc {test}",
                iterations=format(final.iterations, ","),
                seconds=format(final.seconds, ".1f"),
                loss="nan" if final.loss is None else format(final.loss, ".4f"),
                train=final.accuracy("train"),
                test=final.accuracy("test"),
            )
        )
    say(_("wrote {paths}", paths=", ".join(str(p) for p in paths)))
    return 0 if stops.signum is None else 128 + stops.signum
