"""The training loop arranged other ways: BLAS threads, and the per-epoch accuracies beside the steps.

Run: python benchmarks/bench_overlap.py [--runs 3] [--data-dir DIR] [--write]

The generated TwoLayerNet's steps and the chapter's per-epoch accuracies (train and test,
the whole sets, every 600 iterations), with the same weights and batches as
bench_train.py, in four arrangements:

- ``serial``: as ``generated.train_neuralnet.train`` runs them, with NumPy's BLAS threads
  (one per CPU);
- ``serial, 1 BLAS thread``: the same with ``OPENBLAS_NUM_THREADS=1``;
- ``beside``: the accuracies computed in a second Python thread, on a copy of the network
  taken at the epoch's end, while the steps go on; one per CPU;
- ``beside, 1 BLAS thread``: the same, each thread's products on one BLAS thread, so the
  steps keep one CPU and the accuracies the other.

Each arrangement runs in a fresh process (the BLAS thread count is read when NumPy loads),
alternating, ``--runs`` times; the table gives medians.  ``--write`` replaces the
"## Other arrangements of the loop" section of BENCHMARKS.md.  Linux only.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTION = "## Other arrangements of the loop"
ARRANGEMENTS = {  # name: (accuracies beside the steps, OPENBLAS_NUM_THREADS or None for NumPy's default)
    "serial": (False, None),
    "serial, 1 BLAS thread": (False, "1"),
    "beside": (True, None),
    "beside, 1 BLAS thread": (True, "1"),
}


def child(name: str, data_dir: str | None, iters: int) -> dict[str, float]:
    """Run one arrangement in this process; its loop time and last accuracies."""
    import numpy as np

    from benchmarks._impls import BATCH_SIZE, LEARNING_RATE, PARAM_KEYS, make_setup
    from benchmarks.bench_train import find_data, load_data
    from chainrule.generated.two_layer_net import TwoLayerNet

    beside, _threads = ARRANGEMENTS[name]
    data, _where = load_data(find_data(data_dir))
    setup = make_setup(data, 0, iters)
    net = TwoLayerNet(data.x_train.shape[1], 50, 10, dtype=np.float32)
    for key in PARAM_KEYS:
        net.params[key][...] = setup.init[key]
    x_batch = np.empty((BATCH_SIZE, data.x_train.shape[1]), dtype=np.float32)
    per_epoch = max(data.x_train.shape[0] / BATCH_SIZE, 1)

    def accuracies(network: TwoLayerNet) -> tuple[float, float]:
        return network.accuracy(data.x_train, data.labels_train), network.accuracy(
            data.x_test, data.labels_test
        )

    pool = ThreadPoolExecutor(1) if beside else None
    pending, done = [], []
    start = time.perf_counter()
    for i in range(iters):
        np.take(data.x_train, setup.batches[i], axis=0, out=x_batch, mode="clip")
        net.train_step(x_batch, data.labels_train[setup.batches[i]], LEARNING_RATE)
        if i % per_epoch == 0:
            if pool is None:
                done.append(accuracies(net))
            else:
                pending.append(pool.submit(accuracies, copy.deepcopy(net)))
        while pending and pending[0].done():
            done.append(pending.pop(0).result())
    done.extend(f.result() for f in pending)
    loop_s = time.perf_counter() - start
    if pool is not None:
        pool.shutdown()
    return {"loop_s": loop_s, "evaluations": len(done), "train_acc": done[-1][0], "test_acc": done[-1][1]}


def run_child(name: str, args: argparse.Namespace) -> dict[str, float]:
    """One arrangement in a fresh process, with its BLAS thread count in the environment."""
    env = dict(os.environ)
    threads = ARRANGEMENTS[name][1]
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    command = [sys.executable, __file__, "--child", name, "--iters", str(args.iters)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    r = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, where: str) -> str:
    """The section's Markdown: what was run, the table, and the ratio to the serial loop."""
    serial = statistics.median(r["loop_s"] for r in results["serial"])
    rows = [
        "| arrangement | loop, median (s) | min–max (s) | ÷ serial | last train acc | last test acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        times = [r["loop_s"] for r in runs]
        median = statistics.median(times)
        rows.append(
            f"| {name} | {median:.2f} | {min(times):.2f}–{max(times):.2f} | {median / serial:.2f} "
            f"| {runs[-1]['train_acc']:.4f} | {runs[-1]['test_acc']:.4f} |"
        )
    command = "python benchmarks/bench_overlap.py" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    return "\n".join(
        [
            f"Command: `{command} --runs {args.runs} --write` ({datetime.date.today().isoformat()}), "
            "same machine as above.",
            f"Data: {where}. {args.iters:,} iterations; each arrangement a fresh process, alternating; "
            f"{args.runs} runs each.",
            "",
            *rows,
            "",
            "- `serial` is `train()` as shipped. `beside` computes each epoch's accuracies in a second "
            "thread, on a copy of the network taken at the epoch's end (the same numbers as serial "
            "with the same BLAS threads), while the steps go on.",
            "- With one BLAS thread the steps are slower (a step's two large products no longer "
            "share two CPUs), and the accuracies, now beside them, mostly hide; the sum is "
            "close to the serial loop. Two BLAS threads and a second Python thread compete for "
            "the same two CPUs and lose.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--write", action="store_true", help=f"replace the '{SECTION}' section of BENCHMARKS.md"
    )
    parser.add_argument("--child", choices=list(ARRANGEMENTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.iters)))
        return 0
    from benchmarks.bench_train import find_data, replace_section

    where = find_data(args.data_dir).describe()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ARRANGEMENTS}
    for _round in range(args.runs):
        for name in ARRANGEMENTS:
            results[name].append(run_child(name, args))
            print(f"{name}: {results[name][-1]['loop_s']:.2f} s", file=sys.stderr)
    body = report(results, args, where)
    print(body)
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        path.write_text(replace_section(path.read_text(), SECTION, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
