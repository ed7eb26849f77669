"""Where the time of one `chainrule train` goes: run it in this process with a clock around each phase.

Run by bench_command.py as a fresh process: python benchmarks/_phases.py ARGS... (the train
subcommand's own arguments).  Prints one JSON object: seconds spent importing chainrule's
command line, loading the data, in TwoLayerNet.train_step, in the per-epoch accuracies,
drawing accuracy.png, and writing the run folder; "other" is the rest of the command.
The interpreter's own start (before this script runs) is not in it.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

spent: dict[str, float] = {}


def clocked(owner: object, name: str, phase: str) -> None:
    """Replace ``owner.name`` by the same function with its time added to ``spent[phase]``."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - t0

    setattr(owner, name, wrapper)


def main() -> int:
    from chainrule import cli

    spent["import the command line"] = time.perf_counter() - START
    from chainrule import mnist
    from chainrule.generated.two_layer_net import TwoLayerNet
    from chainrule.runs import folder as rundir
    from chainrule.runs import training as train

    clocked(mnist, "load_mnist", "load the data")
    clocked(TwoLayerNet, "train_step", "training steps")
    clocked(TwoLayerNet, "accuracy", "per-epoch accuracies")
    clocked(train, "accuracy_png", "draw accuracy.png (Matplotlib imported here)")
    clocked(rundir.RunDir, "install", "write the run folder")
    status = cli.main(["train", *sys.argv[1:]])
    total = time.perf_counter() - START
    spent["other (settings, batches, progress, run.json, ...)"] = total - sum(spent.values())
    spent["total, after the interpreter's start"] = total
    print(json.dumps(spent))
    return status


if __name__ == "__main__":
    sys.exit(main())
