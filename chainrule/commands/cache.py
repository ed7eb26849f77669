"""``chainrule cache``: what the MNIST cache holds, and clearing the decoded copies chainrule wrote."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _, message_of, ngettext
from chainrule.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``cache`` subcommand."""
    cache = sub.add_parser(
        "cache", help=_("list the decoded copies of MNIST files chainrule keeps, or clear them")
    )
    cache.add_argument(
        "--clear",
        action="store_true",
        help=_(
            "remove every decoded copy chainrule wrote (never another file, nor the downloaded MNIST files)"
        ),
    )
    cache.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List the decoded cache, or clear it."""
    from chainrule.console import human_bytes
    from chainrule.mnist import MnistError, cache, download, sources

    try:
        budget = cache.decoded_cache_budget()
        folder = cache.decoded_cache_dir()
    except MnistError as exc:
        raise UsageError(message_of(exc)) from None
    if args.clear:
        removed, freed, left = cache.clear_decoded(folder)
        print(
            ngettext(
                "removed {n} decoded copy ({size}) from {folder}",
                "removed {n} decoded copies ({size}) from {folder}",
                removed,
            ).format(n=removed, size=human_bytes(freed), folder=folder)
        )
        if left:
            print(
                ngettext(
                    "kept {n} copy that another chainrule run is writing",
                    "kept {n} copies that another chainrule run is writing",
                    left,
                ).format(n=left)
            )
        return 0
    entries = cache.decoded_entries(folder)
    print(
        _(
            "{folder}: decoded copies of MNIST files, at most {budget} together (set {variable} to change it)",
            folder=folder,
            budget=human_bytes(budget),
            variable=cache.ENV_CACHE_MAX,
        )
    )
    notes = {
        "ok": "",
        "orphan": _(" (its source is gone)"),
        "stale": _(" (its source has changed)"),
        "incomplete": _(" (its copy is missing)"),
    }
    import datetime

    for entry in entries:
        used = datetime.datetime.fromtimestamp(entry.last_used_ns / 1e9).strftime("%Y-%m-%d %H:%M")
        print(
            f"  {human_bytes(entry.size):>10}  {used}  {entry.pixels:<7}  {entry.source}{notes[entry.state]}"
        )
    total = sum(e.size for e in entries)
    print(
        ngettext("{n} copy, {size} in all", "{n} copies, {size} in all", len(entries)).format(
            n=len(entries), size=human_bytes(total)
        )
    )
    downloads = download.cached_downloads()
    if downloads:
        print(
            ngettext(
                "{cache}: {n} downloaded MNIST file, {size} (cache --clear leaves it)",
                "{cache}: {n} downloaded MNIST files, {size} (cache --clear leaves them)",
                len(downloads),
            ).format(
                cache=sources.mnist_cache_dir(),
                n=len(downloads),
                size=human_bytes(sum(size for _path, size in downloads)),
            )
        )
    return 0
