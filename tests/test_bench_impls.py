"""benchmarks/_impls.py: the benchmarked training loops compute the same training (no timings checked)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _impls
from benchmarks.bench_train import replace_section
from chainrule import mnist
from chainrule.mnist import load_mnist

ITERS = 50


@pytest.fixture(scope="module")
def data():
    source = mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=True, one_hot_label=True, announce=None, source=source
    )
    # 6,000 rows: an epoch is 60 iterations, so 50 iterations evaluate once, at i = 0.
    return _impls.Data.from_one_hot(x_train, t_train, x_test, t_test).tiled(6000, 1500)


@pytest.fixture(scope="module")
def setup(data):
    return _impls.make_setup(data, seed=3, iters=ITERS)


@pytest.fixture(scope="module")
def generated(data, setup):
    return _impls.run_generated(data, setup, ITERS)


def assert_same_params(result, reference):
    for key in _impls.PARAM_KEYS:
        np.testing.assert_allclose(
            result.params[key], reference.params[key], rtol=1e-3, atol=1e-5, err_msg=key
        )


def test_tiling_repeats_the_sample_to_the_requested_size(data):
    assert data.x_train.shape == (6000, 784) and data.x_train.dtype == np.float32
    assert data.t_test.shape == (1500, 10) and data.labels_test.shape == (1500,)
    np.testing.assert_array_equal(data.x_train[4000:], data.x_train[:2000])
    np.testing.assert_array_equal(data.labels_train, data.t_train.argmax(axis=1))


def test_setup_draws_one_batch_per_iteration(data, setup):
    assert setup.batches.shape == (ITERS, 100)
    assert setup.batches.min() >= 0 and setup.batches.max() < 6000
    assert {k: v.dtype for k, v in setup.init.items()} == dict.fromkeys(_impls.PARAM_KEYS, np.float32)


def test_generated_trains_from_the_shared_setup(generated, setup):
    assert generated.n_evals == 1
    assert not np.allclose(generated.params["W1"], setup.init["W1"])
    assert generated.eval_s > 0 and generated.loop_s > 0


def test_chapter_code_ends_with_the_generated_weights(data, setup, generated):
    chapter = _impls.run_chapter(data, setup, ITERS)
    assert chapter.params["W1"].dtype == np.float64
    assert_same_params(chapter, generated)
    assert chapter.n_evals == generated.n_evals == 1
    assert chapter.test_acc == pytest.approx(generated.test_acc, abs=0.01)


def test_torch_ends_with_the_generated_weights(data, setup, generated):
    pytest.importorskip("torch")
    torch_result = _impls.run_torch(data, setup, ITERS)
    assert torch_result.params["W1"].shape == (784, 50)
    assert_same_params(torch_result, generated)
    assert torch_result.test_acc == pytest.approx(generated.test_acc, abs=0.01)


def test_floor_runs_the_products_only(data, setup):
    floor = _impls.run_floor(data, setup, ITERS)
    generated = _impls.run_generated(data, setup, ITERS)
    assert (floor.iters, floor.train_acc, floor.params) == (ITERS, None, {})
    # it evaluates (its products only) as often as the real run does
    assert floor.n_evals == generated.n_evals > 0 and floor.eval_s > 0


def test_writing_the_section_keeps_the_other_sections():
    text = "# Benchmarks\n\n## Derive\n\nold derive\n\n## Training loop\n\nold table\n\n## Later\n\nkept\n"
    new = replace_section(text, "## Training loop", "new table")
    assert (
        new
        == "# Benchmarks\n\n## Derive\n\nold derive\n\n## Training loop\n\nnew table\n\n## Later\n\nkept\n"
    )
    assert replace_section(new, "## Training loop", "new table") == new
    assert replace_section("", "## Training loop", "t") == "# Benchmarks\n\n## Training loop\n\nt\n"
    assert replace_section("# B\n\n## Derive\n\nd\n", "## Training loop", "t") == (
        "# B\n\n## Derive\n\nd\n\n## Training loop\n\nt\n"
    )


def test_the_chapter_script_loads_as_the_book_does_and_trains(tmp_path):
    """benchmarks/chapter_train.py: pickle on the first run, float32 / 255 and one-hot rows, an epoch line each epoch."""
    import subprocess
    import sys

    from benchmarks import chapter_train
    from chainrule.mnist.idx import write_idx
    from chainrule.mnist.sources import IDX_FILES

    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    t_train = (np.arange(300) % 10).astype(np.uint8)
    x_test = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    t_test = (np.arange(50) % 10).astype(np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    for base, array in zip(IDX_FILES, (x_train, t_train, x_test, t_test), strict=True):
        write_idx(data / f"{base}.gz", array)
    cache = tmp_path / "cache"
    cache.mkdir()

    (xt, tt), (xs, ts) = chapter_train.load_mnist(data, cache)
    assert (cache / "mnist.pkl").is_file()
    assert xt.dtype == np.float32 and xt.shape == (300, 784)
    np.testing.assert_allclose(xt[7], x_train[7].reshape(784) / 255.0, rtol=1e-6)
    assert tt.shape == (300, 10) and tt[13].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert ts.argmax(axis=1).tolist() == t_test.tolist()

    done = subprocess.run(
        [
            sys.executable,
            chapter_train.__file__,
            "--data-dir",
            str(data),
            "--cache",
            str(cache),
            "--iters",
            "7",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()  # 300 images, batch 100: an epoch is 3 iterations, so i = 0, 3, 6
    assert len(lines) == 3
    assert all(0.0 <= float(v) <= 1.0 for line in lines for v in line.split())


@pytest.mark.slow
def test_accuracies_beside_the_steps_are_those_of_the_serial_loop():
    from benchmarks.bench_overlap import child

    # 1,000 iterations: the evaluation at i = 600 runs on a copy while the steps go on to 999.
    serial = child("serial", None, 1000)
    beside = child("beside", None, 1000)
    assert serial["evaluations"] == beside["evaluations"] == 2
    assert (beside["train_acc"], beside["test_acc"]) == (serial["train_acc"], serial["test_acc"])
    assert 0.5 < serial["test_acc"] < 1.0
