"""``python -m chainrule``, and the ``chainrule`` program: the command line, once it has loaded.

Loading it takes a moment; a Ctrl-C meanwhile is one line and exit status 130, as later.
"""


def entry() -> None:
    """Load the command line and run it (``chainrule.cli.run`` never returns)."""
    try:
        from chainrule.cli import run
    except KeyboardInterrupt:  # Ctrl-C while the command line is still loading
        import sys

        print("chainrule: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    entry()
