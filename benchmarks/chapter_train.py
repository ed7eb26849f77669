"""The chapter's ch05/train_neuralnet.py as a program of its own, for timing the whole command.

Run: python benchmarks/chapter_train.py --data-dir DIR --cache DIR [--iters 10000]

What the book's script does, step by step, so that it can be timed as a user runs it
(one process, interpreter start and data loading included):

- load the data the way the book's ``dataset/mnist.py`` does: on the first run the four
  gzipped IDX files are decoded into uint8 arrays and kept in a pickle next to the
  loader (here: in --cache); every later run reads that pickle, converts the images to
  float32 and divides by 255 (``normalize=True``), and builds the one-hot labels with a
  Python loop over the rows (``one_hot_label=True``);
- build the chapter's TwoLayerNet (784, 50, 10) from ``0.01 * np.random.randn`` weights;
- run the listing of section 5.7.4: ``np.random.choice`` batches of 100, ``gradient``,
  the update, a second forward pass for the loss, and once per epoch the train and test
  accuracy, printed as ``print(train_acc, test_acc)``.

The layers are the chapter's, as written in benchmarks/_impls.py.
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._impls import PARAM_KEYS, ChapterTwoLayerNet  # noqa: E402

FILES = {
    "train_img": "train-images-idx3-ubyte.gz",
    "train_label": "train-labels-idx1-ubyte.gz",
    "test_img": "t10k-images-idx3-ubyte.gz",
    "test_label": "t10k-labels-idx1-ubyte.gz",
}


def init_mnist(data_dir: Path, save_file: Path) -> None:
    """Decode the four gzipped IDX files (images after a 16-byte header, labels after 8) and pickle them."""
    dataset = {}
    for key, name in FILES.items():
        with gzip.open(data_dir / name, "rb") as f:
            raw = f.read()
        if key.endswith("img"):
            dataset[key] = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)
        else:
            dataset[key] = np.frombuffer(raw, np.uint8, offset=8)
    with open(save_file, "wb") as f:
        pickle.dump(dataset, f, -1)


def change_one_hot_label(labels: np.ndarray) -> np.ndarray:
    """One row of ten per label, set one row at a time."""
    t = np.zeros((labels.size, 10))
    for idx, row in enumerate(t):
        row[labels[idx]] = 1
    return t


def load_mnist(
    data_dir: Path, cache: Path
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """load_mnist(normalize=True, one_hot_label=True) of the book's loader."""
    save_file = cache / "mnist.pkl"
    if not save_file.exists():
        init_mnist(data_dir, save_file)
    with open(save_file, "rb") as f:
        dataset = pickle.load(f)
    for key in ("train_img", "test_img"):
        dataset[key] = dataset[key].astype(np.float32)
        dataset[key] /= 255.0
    for key in ("train_label", "test_label"):
        dataset[key] = change_one_hot_label(dataset[key])
    return (dataset["train_img"], dataset["train_label"]), (dataset["test_img"], dataset["test_label"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a folder with the four gzipped MNIST IDX files")
    parser.add_argument("--cache", required=True, help="where the decoded pickle is kept between runs")
    parser.add_argument("--iters", type=int, default=10000)
    args = parser.parse_args(argv)

    (x_train, t_train), (x_test, t_test) = load_mnist(Path(args.data_dir), Path(args.cache))

    init = {
        "W1": 0.01 * np.random.randn(784, 50),
        "b1": np.zeros(50),
        "W2": 0.01 * np.random.randn(50, 10),
        "b2": np.zeros(10),
    }
    network = ChapterTwoLayerNet(init)

    iters_num = args.iters
    train_size = x_train.shape[0]
    batch_size = 100
    learning_rate = 0.1

    train_loss_list = []
    train_acc_list = []
    test_acc_list = []

    iter_per_epoch = max(train_size / batch_size, 1)

    for i in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]

        grad = network.gradient(x_batch, t_batch)

        for key in PARAM_KEYS:
            network.params[key] -= learning_rate * grad[key]

        loss = network.loss(x_batch, t_batch)
        train_loss_list.append(loss)

        if i % iter_per_epoch == 0:
            train_acc = network.accuracy(x_train, t_train)
            test_acc = network.accuracy(x_test, t_test)
            train_acc_list.append(train_acc)
            test_acc_list.append(test_acc)
            print(train_acc, test_acc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
