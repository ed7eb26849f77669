"""The gradient check's numerical gradient: the chapter's one-parameter-at-a-time loop vs the vectorized one.

Run: python benchmarks/bench_gradcheck.py [--runs 3]
Both take central differences with h = 1e-4 of the same float64 TwoLayerNet(784, 50, 10)
on the first 3 MNIST training images (the shipped sample when MNIST is not installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from chainrule.generated.two_layer_net import TwoLayerNet
from chainrule.mnist import load_mnist


def timed(f, *args):
    start = time.perf_counter()
    result = f(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    os.environ.setdefault("CHAINRULE_OFFLINE", "1")
    (x, t), _ = load_mnist(one_hot_label=True, dtype=np.float64, announce=None)
    x, t = x[:3], t[:3]
    net = TwoLayerNet(784, 50, 10, seed=0)
    slow, fast = [], []
    for _ in range(runs):
        seconds, reference = timed(net.numerical_gradient_reference, x, t)
        slow.append(seconds)
        seconds, vectorized = timed(net.numerical_gradient, x, t)
        fast.append(seconds)
    worst = max(float(np.max(np.abs(reference[k] - vectorized[k]))) for k in reference)
    print("| numerical gradient of 39,760 parameters | median (s) |")
    print("|---|---:|")
    print(f"| one parameter at a time (the chapter) | {statistics.median(slow):.3f} |")
    print(f"| vectorized | {statistics.median(fast):.3f} |")
    print(f"| speed-up | {statistics.median(slow) / statistics.median(fast):.1f}x |")
    print(f"| largest difference between the two | {worst:.1e} |")


if __name__ == "__main__":
    main()
