"""``python -m chainrule`` runs the command line."""

from chainrule.cli import run

run()
