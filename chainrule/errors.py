"""The one error type a command raises for a user's mistake: the CLI prints it in one line, exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP asked chainrule to stop: it unwinds (removing its temporary files) and exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
