"""benchmarks/bench_scale.py and bench_kernels.py: the two paths train the same thing; the rows are whole (no timings checked)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks import bench_kernels, bench_scale
from benchmarks.bench_scale import Data, parse_net

STEPS = 5


@pytest.fixture(scope="module")
def data():
    return bench_scale.make_data(1000, seed=0)


@pytest.mark.parametrize("name", ["784-20-10-relu", "784-16-16-10-gelu"])
def test_generated_and_torch_end_with_the_same_parameters_and_losses(data, name):
    pytest.importorskip("torch")
    net = parse_net(name)
    setup = bench_scale.make_setup(net, bench_scale.draw_batches(1000, STEPS, seed=0), seed=0)
    for start in (bench_scale.run_generated(data, setup, 0, 0), bench_scale.run_torch(data, setup, 0, 0)):
        for key, value in setup.init.items():
            np.testing.assert_array_equal(start.params[key], value, err_msg=f"{start.impl} {key}")
    generated = bench_scale.run_generated(data, setup, 0, STEPS)
    torch_run = bench_scale.run_torch(data, setup, 0, STEPS)

    assert setup.init["W1"].shape == (784, net.sizes[1]) and setup.init["W1"].dtype == np.float32
    assert generated.params.keys() == torch_run.params.keys() == setup.init.keys()
    for key in setup.init:
        np.testing.assert_allclose(
            torch_run.params[key], generated.params[key], rtol=1e-3, atol=1e-5, err_msg=key
        )
        assert generated.params[key].dtype == np.float32
    assert not np.allclose(generated.params["W1"], setup.init["W1"])  # it trained
    assert len(generated.losses) == len(torch_run.losses) == STEPS
    np.testing.assert_allclose(torch_run.losses, generated.losses, rtol=1e-4)


def test_warm_up_steps_are_the_first_steps_of_the_same_run(data):
    setup = bench_scale.make_setup(parse_net("784-8-10-tanh"), bench_scale.draw_batches(1000, STEPS), seed=1)
    whole = bench_scale.run_generated(data, setup, 0, STEPS)
    warmed = bench_scale.run_generated(data, setup, 2, STEPS - 2)
    assert warmed.steps == STEPS - 2 and warmed.losses == whole.losses
    np.testing.assert_array_equal(warmed.params["W2"], whole.params["W2"])


def test_the_generated_path_alone_learns_a_learnable_toy_set():
    # Class k brightens pixels 78k..78k+77: a set a 784-20-10 network learns in a few steps.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    x = 0.5 * rng.random((2000, 784), dtype=np.float32)
    for k in range(10):
        x[labels == k, 78 * k : 78 * k + 78] += 0.5
    setup = bench_scale.make_setup(parse_net("784-20-10-relu"), bench_scale.draw_batches(2000, 30), seed=0)
    run = bench_scale.run_generated(Data(x, labels), setup, 0, 30)
    assert run.seconds > 0 and len(run.losses) == 30
    assert np.mean(run.losses[-5:]) < 0.5 * np.mean(run.losses[:5])


def test_without_torch_the_table_has_the_generated_column_only(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    argv = ["--nets", "784-8-10-relu", "--steps", "3", "--warmup", "1", "--repeats", "1"]
    assert bench_scale.main([*argv, "--images", "500", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "torch: not installed, skipped" in out
    row = next(line for line in out.splitlines() if line.startswith("| 784-8-10-relu |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "6,370" and float(cells[2]) > 0 and cells[3] == "—" and cells[6] == "n/a"


def test_networks_parse_and_carry_the_issue_targets():
    net = parse_net("784-100-100-10-leaky_relu")
    assert (
        net == bench_scale.Net((784, 100, 100, 10), "leaky_relu") and net.name == "784-100-100-10-leaky_relu"
    )
    assert net.n_params == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert parse_net("784-50-10 relu") == parse_net("784-50-10:relu") == parse_net("784-50-10-relu")
    assert [parse_net(f"784-10-{a}").target for a in ("relu", "sigmoid", "tanh", "gelu", "elu")] == [
        0.8,
        0.8,
        0.8,
        1.0,
        1.0,
    ]
    for bad in ("784-relu", "relu", "784-x-10-relu", "784-50-10-swish"):
        with pytest.raises(Exception, match="784|relu|swish"):
            parse_net(bad)
    assert len(bench_scale.GRID) == 13 and {n.activation for n in bench_scale.GRID[5:]} == set(
        bench_scale.ACTIVATIONS
    )


def test_a_ratio_is_judged_against_its_target_unless_the_machine_was_busy():
    net = parse_net("784-10-relu")

    def pair(generated_ms, others):
        runs = {
            impl: [bench_scale.Run(impl, 1, ms / 1000, [2.3], {}) for ms in times]
            for impl, times in (("generated", generated_ms), ("torch", [1.0] * len(generated_ms)))
        }
        return bench_scale.Pair(net, runs, others)

    assert bench_scale.verdict(pair([0.7, 0.8, 0.9], [0.01] * 3)) == "met"  # median 0.8, target 0.8
    assert bench_scale.verdict(pair([0.7, 0.81, 0.9], [0.01] * 3)) == "**not met**"
    assert bench_scale.verdict(pair([0.7, 0.8, 0.9], [0.01, 0.30, 0.01])) == "withheld (busy)"


def test_kernel_rows_one_per_activation_with_float32_outputs():
    rows = bench_kernels.report_rows((4, 8), repeats=2, number=3, seed=0)
    readable = [f"{name}{bench_kernels.READABLE}" for name in bench_scale.ACTIVATIONS]
    assert [row.kernel for row in rows] == [
        bench_kernels.COPY,
        bench_kernels.TANH,
        *bench_scale.ACTIVATIONS,
        *readable,
    ]
    for row in rows:
        assert row.shape == (4, 8) and len(row.seconds) == len(row.ratios) == 2
        assert row.ns_per_element > 0 and all(s > 0 for s in row.seconds) and all(r > 0 for r in row.ratios)
        assert set(row.dtypes) == {"float32"}
    activations = [row for row in rows if row.kernel in bench_scale.ACTIVATIONS or row.kernel in readable]
    assert len(activations) == 16 and all(
        len(row.dtypes) == 2 for row in activations
    )  # forward's and backward's
    # only the training step (what train_step runs) at the target's shape is held to the target
    at = bench_kernels.TARGET_SHAPE

    def row(kernel, ratio, shape=at):
        return bench_kernels.Row(kernel, shape, [1.0], [ratio], [0.0], ("float32", "float32"))

    assert [bench_kernels.verdict(r) for r in (row("gelu", 2.9), row("gelu", 3.1))] == ["met", "**not met**"]
    assert bench_kernels.verdict(row(f"gelu{bench_kernels.READABLE}", 2.0)) == ""
    assert bench_kernels.verdict(row("gelu", 2.0, shape=(100, 256))) == ""
    busy = bench_kernels.Row("gelu", at, [1.0], [2.0], [0.4], ("float32", "float32"))
    assert bench_kernels.verdict(busy) == "withheld (busy)"
    assert rows[0].ratios == [1.0, 1.0]


def test_a_kernel_that_widens_to_float64_stops_the_benchmark(monkeypatch):
    class Widening:
        def forward(self, x):
            return x.astype(np.float64)

        def backward(self, dout):
            return dout

        step_forward, step_backward = forward, backward

    monkeypatch.setitem(bench_kernels.ACTIVATIONS, "widening", (Widening, "he"))
    with pytest.raises(bench_kernels.DtypeError, match="widening at 4x8 returns float64 and float32"):
        bench_kernels.report_rows((4, 8), repeats=1, number=1)
