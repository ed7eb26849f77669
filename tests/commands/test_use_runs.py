"""Using what was trained: ``chainrule evaluate`` and ``predict`` on a saved run; run.json; how much train prints."""

from __future__ import annotations

import csv
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chainrule import mnist
from chainrule.commands.predict import probabilities, read_image, to_mnist
from chainrule.packages.marker import mark_package
from chainrule.runs.record import load_run, scores
from chainrule.runs.settings import Settings
from chainrule.runs.training import epoch_count, log_stride, run
from tests.helpers import chainrule, error_line, offline_env

SAMPLE = mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the chapter's TwoLayerNet on the shipped sample, saved by the command line.

    201 iterations: the last epoch line is scored at iteration 200, after the last step, so
    metrics.csv's final test accuracy belongs to the weights in params.npz.
    """
    tmp = tmp_path_factory.mktemp("trained")
    r = chainrule("train", "--iters", "201", "--out", str(tmp / "run"), cwd=tmp, env=offline_env(tmp))
    assert r.returncode == 0, r.stderr
    return tmp / "run"


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    """The sample's 1,000 test digits as uint8 28x28 arrays, and their labels."""
    _, (x, t) = mnist.load_mnist(normalize=False, flatten=False, announce=None, source=SAMPLE)
    return x[:, 0], t


def final_test_acc(run_dir: Path) -> float:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return float(rows[-1]["test_acc"])


def parse_evaluate(stdout: str) -> tuple[str, np.ndarray]:
    """The accuracy line, and the confusion matrix read back from the printed table."""
    lines = stdout.splitlines()
    assert lines[1] == "confusion matrix (rows: true digit, columns: predicted digit)"
    assert lines[2].split() == ["true\\pred", *map(str, range(10))]
    rows = [line.split() for line in lines[3:]]
    assert [int(r[0]) for r in rows] == list(range(10))
    return lines[0], np.array([[int(n.replace(",", "")) for n in r[1:]] for r in rows])


# --- evaluate -------------------------------------------------------------------------------------


def test_evaluate_gives_the_runs_final_test_accuracy_and_its_confusion_matrix(trained, tmp_path):
    before = sorted(os.listdir(trained))
    r = chainrule(
        "evaluate",
        str(trained),
        "-o",
        str(tmp_path / "confusion.png"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    head, matrix = parse_evaluate(r.stdout)
    assert matrix.sum() == 1000 and matrix.sum(axis=1).tolist() == [100] * 10  # the sample: 100 per digit
    assert np.trace(matrix) / matrix.sum() == final_test_acc(trained)
    assert head == f"test accuracy {final_test_acc(trained):.4f} ({np.trace(matrix)} of 1,000 images)"
    assert 0.8 < final_test_acc(trained) < 1
    png = (tmp_path / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(tmp_path / "confusion.png").size == (640, 560)
    assert sorted(os.listdir(trained)) == before  # the run folder keeps the one set train wrote
    assert f"wrote {tmp_path / 'confusion.png'}" in r.stderr


def test_evaluate_agrees_with_the_network_applied_by_hand(trained, test_digits):
    """The matrix counts what the loaded network chooses, image by image."""
    x, t = test_digits
    network = load_run(trained).network
    chosen = np.argmax(network.predict(x.reshape(1000, 784).astype(np.float32) / 255), axis=1)
    expected = np.zeros((10, 10), dtype=int)
    for label, digit in zip(t, chosen, strict=True):
        expected[label, digit] += 1
    r = chainrule("evaluate", str(trained), cwd=Path(trained).parent, env=offline_env(Path(trained).parent))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(parse_evaluate(r.stdout)[1], expected)


def test_a_multilayer_run_loads_back_with_its_activation(tmp_path):
    data = mnist.load_mnist(normalize=True, one_hot_label=True, announce=None, source=SAMPLE)
    settings = Settings(iters=41, hidden=(12, 8), activation="tanh", seed=3)
    record, params, _ = run(
        settings, data, tmp_path / "r", echo=lambda _: None, progress=False, source=SAMPLE
    )
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert (info["network"], info["hidden"], info["activation"], info["seed"]) == (
        "MultiLayerNet",
        [12, 8],
        "tanh",
        3,
    )
    loaded = load_run(tmp_path / "r")
    assert type(loaded.network).__name__ == "MultiLayerNet" and loaded.network.sizes == [784, 12, 8, 10]
    assert all(np.array_equal(loaded.network.params[k], params[k]) for k in params)
    (_, _), (x_test, t_test) = data
    chosen = np.argmax(scores(loaded.network, x_test), axis=1)
    assert np.mean(chosen == t_test.argmax(axis=1)) == record.epochs[-1][4]


def test_run_json_records_what_loads_the_run(trained):
    info = json.loads((trained / "run.json").read_text())
    final = info.pop(
        "final"
    )  # the saved weights scored at the end; here the last epoch line is the last step
    assert final["iterations"] == 201 and final["test_acc"] == final_test_acc(trained)
    assert sorted(final) == ["iterations", "loss", "seconds", "test_acc", "train_acc"]
    assert info == {
        "format": 1,
        "network": "TwoLayerNet",
        "input_size": 784,
        "hidden": [50],
        "output_size": 10,
        "activation": None,
        "package": None,
        "package_sha256": None,
        "seed": 0,
        "iters": 201,
        "batch_size": 100,
        "lr": 0.1,
        "data": {"kind": "sample", "path": str(mnist.SAMPLE_PATH), "n_train": 4000, "n_test": 1000},
        "chainrule": version("chainrule"),
    }
    with np.load(trained / "params.npz", allow_pickle=False) as saved:
        assert {k: saved[k].shape for k in saved.files} == {
            "W1": (784, 50),
            "b1": (50,),
            "W2": (50, 10),
            "b2": (10,),
        }


# --- predict --------------------------------------------------------------------------------------


def drawn(digit: np.ndarray, path: Path, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Path:
    """A test digit as a user would draw it: four times larger, black on white, saved by Pillow."""
    Image.fromarray(255 - digit).resize((112, 112), resample).save(path)
    return path


def confident(network, x: np.ndarray, labels: np.ndarray, digits: list[int]) -> list[int]:
    """For each of ``digits``, the first test image of it the network gives at least 0.9 probability."""
    p = probabilities(scores(network, x.reshape(len(x), 784).astype(np.float32) / 255))
    return [int(np.flatnonzero((labels == d) & (p.max(axis=1) >= 0.9))[0]) for d in digits]


def test_predict_recovers_the_label_the_network_gives_the_original(trained, test_digits, tmp_path):
    x, t = test_digits
    network = load_run(trained).network
    picked = confident(network, x, t, [0, 1, 2, 3, 6, 7])
    paths = [drawn(x[i], tmp_path / f"digit{i}.png") for i in picked[:5]]
    Image.open(drawn(x[picked[5]], tmp_path / "d.png")).convert("RGB").save(
        tmp_path / "digit.jpg", quality=95
    )
    paths.append(tmp_path / "digit.jpg")
    r = chainrule("predict", str(trained), *map(str, paths), cwd=tmp_path, env=offline_env(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 6
    expected = np.argmax(scores(network, x[picked].reshape(6, 784).astype(np.float32) / 255), axis=1)
    assert len(set(expected.tolist())) >= 5  # different digits, not one answer six times
    for line, path, label in zip(lines, paths, expected, strict=True):
        name, rest = line.split(": ", 1)
        digit, shown = rest.split("  ", 1)
        p = [float(item.split(":")[1]) for item in shown.strip("()").split()]
        assert name == str(path) and int(digit) == label
        assert len(p) == 10 and int(np.argmax(p)) == label and abs(sum(p) - 1) < 1e-3


def test_a_drawn_test_digit_comes_back_as_the_mnist_array(test_digits, tmp_path):
    x, _ = test_digits
    rows, cols = np.mgrid[:28, :28]
    errors = []
    for i in range(0, 1000, 50):
        digit = to_mnist(read_image(str(drawn(x[i], tmp_path / f"{i}.png", Image.Resampling.NEAREST))))
        original = x[i] / 255
        assert digit.shape == (28, 28) and digit.dtype == np.float32
        errors.append(np.abs(digit - original).mean())
        # Centring rounds the centre of mass to a whole pixel, as MNIST did: allow one pixel either way.
        moved = [np.roll(digit, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert min(np.abs(m - original).mean() for m in moved) < 0.03
        mass = digit.sum()
        assert abs((digit * rows).sum() / mass - 14) <= 0.5 and abs((digit * cols).sum() / mass - 14) <= 0.5
    assert np.mean(errors) < 0.02


def test_the_digit_is_cropped_scaled_to_20_keeping_its_shape_and_centred():
    page = np.ones((300, 200))  # white paper, light background: inverted
    page[40:140, 120:130] = 0.0  # a black bar 100 tall and 10 wide, off centre
    digit = to_mnist(page)
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    assert rows.size == 20 and cols.size in (2, 3)  # 10 * 20 / 100 = 2, plus a column of resampling
    assert digit.max() == pytest.approx(1, abs=0.05) and digit[0].max() == 0
    mass = digit.sum()
    assert abs((digit.sum(axis=1) @ np.arange(28)) / mass - 14) <= 0.5
    dark = to_mnist(1 - page)  # already light on dark: used as it is
    assert np.allclose(dark, digit, atol=1e-6)


def test_a_transparent_background_counts_as_white(test_digits, tmp_path):
    x, _ = test_digits
    ink = np.zeros((112, 112, 4), dtype=np.uint8)
    ink[..., 3] = np.asarray(Image.fromarray(x[0]).resize((112, 112), Image.Resampling.BICUBIC))
    Image.fromarray(ink, "RGBA").save(tmp_path / "t.png")  # black strokes, alpha = the digit
    digit = to_mnist(read_image(str(tmp_path / "t.png")))
    assert np.abs(digit - x[0] / 255).mean() < 0.05


# --- bad input: one line, exit 2 ------------------------------------------------------------------


def copy_of(trained: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(trained, out)
    return out


def test_a_folder_that_is_not_a_run(trained, tmp_path):
    (tmp_path / "empty").mkdir()
    assert (
        error_line(chainrule("evaluate", str(tmp_path / "empty"), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"{tmp_path / 'empty'} is not a chainrule run folder (it has no .chainrule-run)"
    )
    assert (
        error_line(chainrule("evaluate", str(tmp_path / "nope"), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"{tmp_path / 'nope'} does not exist"
    )
    (tmp_path / "file").write_text("x")
    assert error_line(
        chainrule("predict", str(tmp_path / "file"), "a.png", cwd=tmp_path, env=offline_env(tmp_path))
    ).startswith(f"{tmp_path / 'file'} is not a folder")
    copy = copy_of(trained, tmp_path)
    (copy / "run.json").unlink()
    assert error_line(chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path))).startswith(
        f"{copy / 'run.json'} is missing"
    )
    shutil.copy(trained / "run.json", copy)
    (copy / "params.npz").unlink()
    assert error_line(chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path))).startswith(
        f"{copy / 'params.npz'} is missing"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(network="ThreeLayerNet"), "'network' is \"ThreeLayerNet\", not one of"),
        (lambda r: r.update(hidden=[0]), "'hidden' holds 0, not a whole number from 1 to 1,000,000"),
        (lambda r: r.update(hidden="50"), "'hidden' is \"50\", not a list of 1 to 100 sizes"),
        (lambda r: r.update(hidden=[50] * 101), "not a list of 1 to 100 sizes"),
        (lambda r: r.update(seed=-1), "'seed' is -1, not a whole number from 0 to 4,294,967,295"),
        (lambda r: r.update(input_size=True), "'input_size' is true, not a whole number"),
        (lambda r: r.update(output_size=12), "'output_size' is 12, not a whole number from 10 to 10"),
        (lambda r: r.update(lr=float("nan")), "'lr' is NaN, not a positive number"),
        (lambda r: r.update(activation="relu"), "a TwoLayerNet has one hidden layer and a null 'activation'"),
        (lambda r: r.update(network="MultiLayerNet", activation="rm -rf"), "'activation' is \"rm -rf\", not"),
        (
            lambda r: r.update(network="MultiLayerNet", activation="swish"),
            "the run's activation 'swish' is not in the installed generated package; it has relu, sigmoid",
        ),
        (lambda r: r.update(package="relative/dir"), "'package' is \"relative/dir\", not an absolute path"),
        (lambda r: r.update(format=2), "format 2 is not 1, the one this chainrule reads"),
        (lambda r: r.pop("seed"), "no 'seed' field"),
        (lambda r: r.update(data={"kind": "web", "path": "x", "n_train": 1, "n_test": 1}), "data 'kind'"),
        (lambda r: r.update(hidden=[1_000_000]), "more than chainrule loads"),
    ],
)
def test_run_json_is_checked_field_by_field(trained, tmp_path, change, message):
    copy = copy_of(trained, tmp_path)
    record = json.loads((copy / "run.json").read_text())
    change(record)
    (copy / "run.json").write_text(json.dumps(record))
    line = error_line(chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path)))
    assert message in line
    assert str(copy / "run.json") in line or "activation" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON: Expecting property name"),
        (b"[1, 2]", "holds list, not a JSON object"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"[" * 60_000, "is not valid JSON"),
        (b" " * 70_000, "it is 70,000 bytes, more than the 65,536 chainrule reads here"),
    ],
)
def test_a_corrupt_or_oversized_run_json(trained, tmp_path, content, message):
    copy = copy_of(trained, tmp_path)
    (copy / "run.json").write_bytes(content)
    line = error_line(chainrule("predict", str(copy), "a.png", cwd=tmp_path, env=offline_env(tmp_path)))
    assert str(copy / "run.json") in line and message in line


def test_params_that_do_not_fit_the_network(trained, tmp_path):
    copy = copy_of(trained, tmp_path)
    with np.load(trained / "params.npz", allow_pickle=False) as saved:
        params = {k: saved[k] for k in saved.files}
    cases = [
        ({**params, "W1": params["W1"][:, :49]}, "W1 has shape (784, 49), but TwoLayerNet(784, 50, 10) needs (784, 50)"),
        ({k: v for k, v in params.items() if k != "b2"}, "does not hold the arrays of TwoLayerNet(784, 50, 10): missing b2"),
        ({**params, "W3": params["W2"]}, "unexpected W3"),
        ({**params, "b1": np.full(50, np.inf, np.float32)}, "b1 holds numbers that are not finite"),
        ({**params, "b1": np.zeros(50, np.int64)}, "b1 is int64, not float32 or float64"),
        ({**params, "b1": np.array([None] * 50, dtype=object)}, "b1 is object, not float32 or float64"),  # from its header
    ]  # fmt: skip
    for arrays, message in cases:
        np.savez(copy / "params.npz", **arrays)
        line = error_line(chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path)))
        assert line.startswith(str(copy / "params.npz")) and message in line, line
    (copy / "params.npz").write_bytes(b"PK not a zip")
    assert "is not a readable weights file" in error_line(
        chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path))
    )
    (copy / "params.npz").write_bytes(b"\0" * 400_000)
    assert "more than the" in error_line(
        chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path))
    )


def test_images_that_cannot_be_read(trained, tmp_path):
    bad = tmp_path / "text.png"
    bad.write_text("not an image")
    assert (
        error_line(chainrule("predict", str(trained), str(bad), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"{bad} is not a PNG or JPEG image"
    )
    gif = tmp_path / "a.gif"
    Image.new("L", (10, 10)).save(gif)
    assert (
        error_line(chainrule("predict", str(trained), str(gif), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"{gif} is not a PNG or JPEG image"
    )
    missing = tmp_path / "missing.png"
    assert (
        error_line(chainrule("predict", str(trained), str(missing), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"{missing} does not exist"
    )
    flat = tmp_path / "flat.png"
    Image.new("L", (50, 50), 255).save(flat)
    assert (
        error_line(chainrule("predict", str(trained), str(flat), cwd=tmp_path, env=offline_env(tmp_path)))
        == f"no digit found in {flat}: the image is one flat colour"
    )
    whole = tmp_path / "whole.png"
    Image.new("L", (50, 50), 0).save(whole)
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:60])
    assert error_line(
        chainrule("predict", str(trained), str(tmp_path / "cut.png"), cwd=tmp_path, env=offline_env(tmp_path))
    ).startswith(f"{tmp_path / 'cut.png'} cannot be decoded: ")
    os.mkfifo(tmp_path / "fifo.png")
    assert error_line(
        chainrule(
            "predict", str(trained), str(tmp_path / "fifo.png"), cwd=tmp_path, env=offline_env(tmp_path)
        )
    ) == (f"refusing to read {tmp_path / 'fifo.png'}: it is a FIFO, not a regular file")


def test_huge_images_are_refused_before_decoding(trained, tmp_path):
    big = tmp_path / "big.png"
    Image.new("1", (8000, 6000), 1).save(big)  # 48 megapixels in a few kilobytes
    assert error_line(
        chainrule("predict", str(trained), str(big), cwd=tmp_path, env=offline_env(tmp_path))
    ) == (f"{big} is 8,000x6,000 pixels, more than the 40,000,000 chainrule reads; shrink it first")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 10000), 1).save(bomb)  # past Pillow's own decompression-bomb limit
    assert error_line(
        chainrule("predict", str(trained), str(bomb), cwd=tmp_path, env=offline_env(tmp_path))
    ) == (f"{bomb} has more than the 40,000,000 pixels chainrule reads; shrink it first")
    assert big.stat().st_size < 100_000 and bomb.stat().st_size < 1_000_000


def test_evaluate_output_is_written_only_where_safe(trained, tmp_path):
    target = tmp_path / "mine.txt"
    target.write_text("keep me")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    assert error_line(
        chainrule("evaluate", str(trained), "-o", str(link), cwd=tmp_path, env=offline_env(tmp_path))
    ) == (f"cannot write {link}: it is a symbolic link; chainrule only replaces regular files")
    assert target.read_text() == "keep me"
    assert error_line(
        chainrule("evaluate", str(trained), "-o", "/dev/null", cwd=tmp_path, env=offline_env(tmp_path))
    ).startswith("cannot write /dev/null: it is a character device")


@pytest.mark.parametrize("name", ["params.npz", "accuracy.png", "confusion.png"])
def test_evaluate_writes_nothing_into_the_run_folder(trained, tmp_path, name):
    """-o naming the run's own weights (or any file beside them) would break the saved set."""
    run = copy_of(trained, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    output = run / name
    assert error_line(
        chainrule("evaluate", str(run), "-o", str(output), cwd=tmp_path, env=offline_env(tmp_path))
    ) == (
        f"refusing to write {output}: it is in the run folder {run}, which holds only what"
        " 'chainrule train' saved; name a file outside it"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_evaluate_data_that_is_gone_is_an_error_not_a_switch(trained, tmp_path):
    copy = copy_of(trained, tmp_path)
    record = json.loads((copy / "run.json").read_text())
    record["data"] = {"kind": "dir", "path": str(tmp_path / "gone"), "n_train": 4000, "n_test": 1000}
    (copy / "run.json").write_text(json.dumps(record))
    assert error_line(chainrule("evaluate", str(copy), cwd=tmp_path, env=offline_env(tmp_path))) == (
        f"{tmp_path / 'gone'}: MNIST data directory does not exist (the run's data);"
        " name a copy with --data-dir DIR"
    )


# --- how much train prints ------------------------------------------------------------------------


def epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("epoch ")]


@pytest.mark.slow
def test_a_default_run_on_the_sample_prints_at_most_20_epoch_lines_and_the_last(tmp_path):
    r = chainrule(
        "train", "--hidden", "5", "--out", str(tmp_path / "r"), cwd=tmp_path, env=offline_env(tmp_path)
    )  # 10,000 iterations
    assert r.returncode == 0, r.stderr
    lines = epoch_lines(r.stdout)
    assert len(list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))) == 250  # all epochs kept
    assert len(lines) <= 20
    assert lines[0].startswith("epoch   0  iteration      0")
    assert lines[-1].startswith("epoch 249  iteration   9960")
    # The sample notice is one short line, with no mirror or URL in it.
    notice = [line for line in r.stderr.splitlines() if "MNIST" in line]
    assert notice == [
        "using the MNIST sample shipped with chainrule (4,000 training and 1,000 test digits):"
        " CHAINRULE_OFFLINE is set (--verbose for details)"
    ]


@pytest.mark.slow
def test_log_every_quiet_and_verbose(tmp_path):
    r = chainrule(
        "train",
        "--iters",
        "2001",
        "--log-every",
        "10",
        "--out",
        str(tmp_path / "a"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert [int(line.split()[1]) for line in epoch_lines(r.stdout)] == [0, 10, 20, 30, 40, 50]
    r = chainrule(
        "train",
        "--iters",
        "121",
        "--log-every",
        "2",
        "--out",
        str(tmp_path / "b"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert [int(line.split()[1]) for line in epoch_lines(r.stdout)] == [0, 2, 3]  # and the last
    r = chainrule(
        "train",
        "--iters",
        "81",
        "--quiet",
        "--verbose",
        "--out",
        str(tmp_path / "c"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert epoch_lines(r.stdout) == [] and r.stdout.startswith(
        "final (the saved weights, after 81 iterations, "
    )
    assert len(list(csv.DictReader((tmp_path / "c" / "metrics.csv").open()))) == 3
    notice = [line for line in r.stderr.splitlines() if "MNIST" in line]
    assert notice == [
        "using the MNIST sample shipped with chainrule (4,000 training and 1,000 test digits): CHAINRULE_OFFLINE is set",
        f"MNIST is not in the cache {tmp_path / 'cache'} and CHAINRULE_OFFLINE is set; for the full 70,000 set,"
        " connect to the internet once or pass --data-dir DIR (or set CHAINRULE_DATA_DIR) with the four IDX files",
    ]
    r = chainrule("train", "--quiet", "--log-every", "3", cwd=tmp_path, env=offline_env(tmp_path))
    assert "argument --log-every: not allowed with argument --quiet" in error_line(r)
    assert "must be at least 1, not 0" in error_line(
        chainrule("train", "--log-every", "0", cwd=tmp_path, env=offline_env(tmp_path))
    )


def test_the_stride_keeps_every_run_within_20_lines_and_always_the_last():
    for epochs in range(1, 3000):
        stride = log_stride(epochs)
        shown = [e for e in range(epochs) if e % stride == 0 or e == epochs - 1]
        assert len(shown) <= 20 and shown[-1] == epochs - 1
        assert stride == 1 or len(shown) >= 10  # no sparser than it needs to be
    assert log_stride(17) == 1  # full MNIST's chapter run: 10,000 iterations of 600 per epoch


@pytest.mark.parametrize(
    ("train_size", "batch", "iters"), [(400, 10, 401), (400, 10, 400), (70, 20, 200), (5, 10, 7)]
)
def test_epoch_count_is_the_number_of_epochs_the_loop_scores(train_size, batch, iters):
    from chainrule.generated.train_neuralnet import train

    rng = np.random.default_rng(0)
    x = rng.random((train_size, 4), dtype=np.float32)
    t = np.arange(train_size) % 3
    seen = []
    train(
        x,
        t,
        x[:5],
        t[:5],
        iters_num=iters,
        batch_size=batch,
        hidden_size=3,
        on_epoch=lambda *a: seen.append(a),
    )
    assert epoch_count(iters, train_size, batch) == len(seen) > 0


def test_a_run_of_a_generated_package_loads_that_packages_network(tmp_path):
    """run.json's package names the folder whose network classes load the run, not the installed ones."""
    from chainrule import generated

    package = tmp_path / "mylayers"
    shutil.copytree(Path(generated.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    mark_package(package, [p.name for p in package.glob("*.py")])  # sealed, as generate --out seals it
    data = mnist.load_mnist(normalize=True, one_hot_label=True, announce=None, source=SAMPLE)
    settings = Settings(iters=41, hidden=(9,), activation="relu")
    record, _, _ = run(settings, data, tmp_path / "r", echo=lambda _: None, progress=False, package=package)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["package"] == str(package)
    loaded = load_run(tmp_path / "r")
    assert type(loaded.network).__module__.startswith("_chainrule_package_")
    (_, _), (x_test, t_test) = data
    assert (
        np.mean(np.argmax(scores(loaded.network, x_test), axis=1) == t_test.argmax(axis=1))
        == record.epochs[-1][4]
    )
    shutil.rmtree(package)
    assert error_line(
        chainrule("evaluate", str(tmp_path / "r"), cwd=tmp_path, env=offline_env(tmp_path))
    ) == (f"the run's package cannot be loaded: {package} is not a generated package (no __init__.py)")
