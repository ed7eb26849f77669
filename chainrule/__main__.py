"""``python -m chainrule`` runs the command line."""

try:
    from chainrule.cli import run
except KeyboardInterrupt:  # Ctrl-C while the command line is still loading
    import sys

    print("chainrule: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

run()
