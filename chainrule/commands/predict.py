"""``chainrule predict RUN_DIR IMAGE...``: the digit a saved run sees in each PNG or JPEG image.

Each image becomes a 28x28 grayscale digit the way MNIST's were made: light digit on a
dark background (inverted if the background is light), cropped to the digit, scaled to
fit 20x20 keeping its aspect ratio, and placed in 28x28 with its centre of mass at the
centre. Every image is read and converted before anything prints, so a bad one stops the
command with one line and no partial output.
"""

from __future__ import annotations

import argparse
import io
import warnings
from typing import TYPE_CHECKING

from chainrule.codegen.i18n import _

if TYPE_CHECKING:
    import numpy as np

IMAGE_MAX_BYTES = 64 * 2**20
MAX_PIXELS = 40_000_000  # a 48-megapixel photo is refused; Pillow's own bomb limit is higher
MAX_IMAGES = 1000
WORK_SIDE = 1024  # larger images are shrunk to this first: the digit ends up 20 pixels tall anyway
SIDE, BOX = 28, 20
# Where MNIST puts a digit's centre of mass, in pixel indices: measured on its test set, (14.0, 14.0)
# with a spread of 0.3.
CENTER = 14.0
INK = 0.15  # fraction of the way from background to the darkest stroke that counts as the digit


class ImageError(Exception):
    """An image that cannot be read or holds no digit: one line that says which and why."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``predict`` subcommand on the CLI's subparsers."""
    predict = sub.add_parser("predict", help=_("the digit a trained run sees in PNG or JPEG images"))
    predict.add_argument("run_dir", metavar="RUN_DIR", help=_("a folder written by 'chainrule train'"))
    predict.add_argument("images", metavar="IMAGE", nargs="+", help=_("PNG or JPEG files, one digit each"))
    predict.set_defaults(func=run)


def read_image(path: str) -> np.ndarray:
    """The image's gray levels, from 0 (black) to 1 (white); transparent parts count as white."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    from chainrule.fs.guard import UnsafeSource, read_regular

    try:
        data = read_regular(path, IMAGE_MAX_BYTES)
    except FileNotFoundError:
        raise ImageError(_("{path} does not exist", path=path)) from None
    except UnsafeSource as exc:
        raise ImageError(_("refusing to read {path}: {reason}", path=path, reason=exc.strerror)) from None
    except OSError as exc:
        raise ImageError(_("cannot read {path}: {reason}", path=path, reason=exc.strerror or exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    _(
                        "{path} is {width}x{height} pixels, more than the {max_pixels} chainrule reads; shrink it first",
                        path=path,
                        width=format(image.width, ","),
                        height=format(image.height, ","),
                        max_pixels=format(MAX_PIXELS, ","),
                    )
                )
            if image.format == "JPEG":
                image.draft("L", (WORK_SIDE, WORK_SIDE))  # decode at a reduced size where JPEG can
            image = ImageOps.exif_transpose(image)  # a phone photo stands the way it was taken
            gray = _gray(image)
            gray.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
            levels = np.asarray(gray, dtype=np.float32)
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(_("{path} is not a PNG or JPEG image", path=path)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                _(
                    "{path} has more than the {max_pixels} pixels chainrule reads; shrink it first",
                    path=path,
                    max_pixels=format(MAX_PIXELS, ","),
                )
            ) from None
        except Exception as exc:  # noqa: BLE001 - a damaged file fails inside Pillow in many ways
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise ImageError(_("{path} cannot be decoded: {detail}", path=path, detail=detail)) from None
    return levels / 255 if gray.mode == "L" else levels


def _gray(image: object) -> object:
    """One channel: 8-bit ``L`` (alpha over white), or ``F`` for 16- and 32-bit images, in their own units."""
    from PIL import Image

    mode = image.mode  # type: ignore[attr-defined]
    if mode.startswith("I") or mode == "F":
        return image.convert("F")  # type: ignore[attr-defined]
    if "A" in mode or "a" in mode or "transparency" in image.info:  # type: ignore[attr-defined]
        rgba = image.convert("RGBA")  # type: ignore[attr-defined]
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("L")
    return image.convert("L")  # type: ignore[attr-defined]


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A 28x28 float32 digit, 0 background to 1 ink, made from any grayscale image of one digit.

    ValueError when the image holds no digit (one flat colour, or nothing above the ink level).
    """
    import numpy as np
    from PIL import Image

    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(
            _("a grayscale image is two-dimensional and not empty, not of shape {shape}", shape=a.shape)
        )
    low, high = float(a.min()), float(a.max())
    if not high > low:
        raise ValueError(_("the image is one flat colour"))
    a = (a - low) / (high - low)
    # The background is what most of the border is; MNIST's is black, so a light one is inverted.
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        a = 1 - a
        background = 1 - background
    a = np.clip((a - background) / (1 - background), 0, 1)
    a[a < INK] = 0  # paper texture and sensor noise are not ink
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # Pillow's (width, height)
    small = np.clip(np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS)), 0, 1)
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = small
    mass = float(canvas.sum())
    if not mass > 0:
        raise ValueError(_("nothing of the digit is left at 20x20"))
    centre_y = float(canvas.sum(axis=1) @ np.arange(SIDE)) / mass
    centre_x = float(canvas.sum(axis=0) @ np.arange(SIDE)) / mass
    return _shift(canvas, round(CENTER - centre_y), round(CENTER - centre_x))


def _shift(image: np.ndarray, down: int, right: int) -> np.ndarray:
    """``image`` moved by whole pixels, zeros coming in; what moves past the edge is lost, as in MNIST."""
    import numpy as np

    out = np.zeros_like(image)
    rows, cols = image.shape
    src_r, dst_r = slice(max(0, -down), min(rows, rows - down)), slice(max(0, down), min(rows, rows + down))
    src_c, dst_c = (
        slice(max(0, -right), min(cols, cols - right)),
        slice(max(0, right), min(cols, cols + right)),
    )
    out[dst_r, dst_c] = image[src_r, src_c]
    return out


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64, shifted by the maximum so no exp overflows."""
    import numpy as np

    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def run(args: argparse.Namespace) -> int:
    """Print, for each image, the digit the run's network chooses and its ten probabilities."""
    import numpy as np

    from chainrule.console import write_stdout
    from chainrule.errors import UsageError
    from chainrule.runs.record import RunFileError, load_run, scores

    if len(args.images) > MAX_IMAGES:
        raise UsageError(
            _(
                "{len} images is more than the {max_images} one command reads",
                len=format(len(args.images), ","),
                max_images=format(MAX_IMAGES, ","),
            )
        )
    try:
        loaded = load_run(args.run_dir)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    if loaded.info.input_size != SIDE * SIDE:
        raise UsageError(
            _(
                "{describe} takes {input_size} pixels, not a 28x28 image's 784; predict reads images for networks trained on 28x28 digits",
                describe=loaded.info.describe(),
                input_size=format(loaded.info.input_size, ","),
            )
        )
    digits = []
    for path in args.images:
        try:
            digits.append(to_mnist(read_image(path)))
        except ImageError as exc:
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(_("no digit found in {path}: {exc}", path=path, exc=exc)) from None
    x = np.stack(digits).reshape(len(digits), SIDE * SIDE)
    p = probabilities(scores(loaded.network, x))
    lines = []
    for path, row in zip(args.images, p, strict=True):
        shown = "  ".join(f"{d}:{q:.4f}" for d, q in enumerate(row))
        lines.append(f"{path}: {int(np.argmax(row))}  ({shown})")
    write_stdout("\n".join(lines) + "\n")
    return 0
