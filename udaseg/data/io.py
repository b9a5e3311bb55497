"""Reading images and label files with errors that name the file.

Pillow and OpenCV fail deep inside their decoders (or, for cv2, by returning None); every reader
here turns that into a :class:`DatasetError` that says which file and what was expected.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset file or folder is missing, unreadable or not in the expected format."""


def name_files(items, limit: int = 10) -> str:
    """The first ``limit`` names for a message, then "and N more"."""
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        im = Image.open(path)
        im.load()  # decode now: a truncated file fails here, not later in a worker
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read as an image ({exc})") from None
    return im


# EXIF orientation ignored, as Pillow (and so the references' loaders) ignore it
_CV2_RGB = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB. Grey, palette and RGBA images are converted.

    Decoded by OpenCV (a 1914×1052 PNG: 36 ms vs Pillow's 43); when OpenCV cannot read the file
    (a truncated file, a format it lacks) Pillow reads it or says precisely what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    bgr = cv2.imread(str(path), _CV2_RGB)
    if bgr is not None:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    im = _open(path)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8)


def read_id_label(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit id label (Cityscapes ``L``, GTA5 palette ``P``) → (H, W) uint8 raw ids.

    A colour (RGB) label is refused: its values are colours, not ids, and reading them as ids
    would silently give a wrong label (a common mistake is pointing at ``*_gtFine_color.png``).
    """
    path = Path(path)
    im = _open(path)
    if im.mode in ("L", "P"):
        return np.asarray(im, dtype=np.uint8)
    if im.mode in ("I;16", "I"):
        arr = np.asarray(im)
        if arr.size and int(arr.max()) > 255:
            raise DatasetError(f"{path}: label holds ids > 255 (mode {im.mode}); expected 8-bit ids")
        return arr.astype(np.uint8)
    raise DatasetError(
        f"{path}: label image has mode {im.mode!r}; expected a single-channel id map "
        f"(mode 'L' or palette 'P' holding Cityscapes labelIds), not a colour image"
    )


def read_synthia_label(path: str | os.PathLike) -> np.ndarray:
    """A SYNTHIA-RAND-CITYSCAPES ``GT/LABELS`` PNG → (H, W) uint16 class ids (channel 0, RGB order).

    These are 16-bit multi-channel PNGs; Pillow keeps only the high byte of 16-bit RGB (every id
    becomes 0), so they are decoded with OpenCV, which keeps all 16 bits (and returns BGR).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DatasetError(f"{path}: cannot read as an image (truncated or not a PNG)")
    if arr.ndim == 2:
        ids = arr  # a single-channel id map (e.g. converted labels) is accepted as is
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        ids = arr[:, :, 2]  # OpenCV order is BGR(A): RGB channel 0 is index 2
    else:
        raise DatasetError(f"{path}: SYNTHIA label has shape {arr.shape}; expected H×W×3 or H×W×4")
    if ids.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"{path}: SYNTHIA label has dtype {ids.dtype}; expected 16-bit PNG")
    return ids.astype(np.uint16, copy=False)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(W, H) of an image from its header only; DatasetError if it is not an image."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: not an image ({exc})") from None
