"""One module per subcommand, each with ``add_parser(sub)`` and ``run(args) -> int``.

Modules here import only argparse and light helpers at the top; SymPy, NumPy and
Matplotlib are imported inside ``run``, so ``chainrule --help`` starts at once.
"""
