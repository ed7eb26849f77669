"""``python -m chainrule``, and the ``chainrule`` program: the command line, once it has loaded.

Loading it takes a moment; a Ctrl-C meanwhile is one line and exit status 130, as later.
"""

import os
import sys


def _safe_path() -> None:
    """Under ``python -m``, stop the current folder from standing in for chainrule's own packages.

    Python puts the current folder first on ``sys.path``, so a ``numpy/`` or ``sympy/`` folder
    there would be imported instead of the library (as ``python -P`` would avoid). The entry is kept only when chainrule itself was found there, as in a source checkout.
    """
    if not sys.path or __spec__ is None:
        return
    first = os.path.realpath(sys.path[0] or os.curdir)
    home = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if first == os.path.realpath(os.getcwd()) and first != home:
        del sys.path[0]


def entry() -> None:
    """Load the command line and run it (``chainrule.cli.run`` never returns)."""
    try:
        from chainrule.cli import run
    except KeyboardInterrupt:  # Ctrl-C while the command line is still loading
        print("chainrule: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    _safe_path()
    entry()
