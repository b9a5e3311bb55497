"""``udaseg data check ROOT``: every unreadable or inconsistent file of a dataset, in one pass.

Training and ``predict`` meet a bad file when they reach it (a truncated image hours into a run),
and the readers stop at the first one. This pre-scan reads every file of a GTA5, SYNTHIA or
Cityscapes tree the way the readers of :mod:`udaseg.data.datasets` do and lists all problems:

- an image or label that does not decode (a truncated PNG or JPEG, bytes that are no image): each
  file is verified (``PIL.Image.verify``: chunk checksums, truncation) and fully decoded;
- an image whose label file is missing;
- a label whose size differs from its image's;
- a label that is not an id map (a colour PNG where Cityscapes labelIds belong), or holds ids
  above the format's range (the readers ignore those pixels, with a warning).

    result = check_dataset("data/cityscapes")      # layout detected from the folders
    for p in result.problems: print(p)             # "path: reason"
    print(result.summary())                        # "N files checked, M problems"
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from udaseg.data import labels as L
from udaseg.data.datasets import _read_split_list, _require_dir
from udaseg.data.io import DatasetError, read_id_label, read_synthia_label

KINDS = ("gta5", "synthia", "cityscapes")
LAYOUTS = {"gta5": "images/ + labels/", "synthia": "RGB/ + GT/LABELS/", "cityscapes": "leftImg8bit/ + gtFine/"}


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class _Entry:
    image: Path
    label: Path | None  # None: no label expected (a Cityscapes split without gtFine)


@dataclass
class CheckResult:
    root: Path
    kind: str
    checked: int = 0  # files opened: images and the labels that exist
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not problems: e.g. a split without labels

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"{self.checked} files checked, {len(self.problems)} problems"


def detect_kind(root) -> str:
    """gta5 / synthia / cityscapes from the folders under ``root``; DatasetError if none or several fit."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset root {root} not found")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder")
    found = [k for k, ok in (("gta5", (root / "images").is_dir() and (root / "labels").is_dir()),
                             ("synthia", (root / "RGB").is_dir() and (root / "GT" / "LABELS").is_dir()),
                             ("cityscapes", (root / "leftImg8bit").is_dir())) if ok]
    layouts = "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items())
    if not found:
        raise DatasetError(f"{root}: no known dataset layout under it ({layouts}); point at the dataset's root "
                           "folder or give --kind")
    if len(found) > 1:
        raise DatasetError(f"{root}: holds the layouts of {' and '.join(found)}; give --kind")
    return found[0]


def _png_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png")


def _entries(root: Path, kind: str, split, result: CheckResult) -> list[_Entry]:
    """The (image, expected label) pairs the reader of ``kind`` would read, missing labels included."""
    if kind in ("gta5", "synthia"):
        img_dir, lab_dir = (("images", "labels") if kind == "gta5" else ("RGB", Path("GT") / "LABELS"))
        layout = f"{img_dir}/*.png and {lab_dir}/*.png"
        _require_dir(root / img_dir, kind.upper(), layout)
        _require_dir(root / lab_dir, kind.upper(), layout)
        names = _read_split_list(root, split) if split else _png_names(root / img_dir)
        if not names:
            raise DatasetError(f"{kind.upper()}: no PNG images in {root / img_dir}")
        return [_Entry(root / img_dir / n, root / lab_dir / n) for n in names]
    splits = [s for s in split.split(",") if s] if split else sorted(
        p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())
    layout = "leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png"
    entries = []
    for s in splits:
        image_dir, label_dir = root / "leftImg8bit" / s, root / "gtFine" / s
        _require_dir(image_dir, f"Cityscapes split {s!r}", layout)
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not label_dir.is_dir():
            if split:  # asked for: its labels are missing
                result.problems.append(Problem(label_dir, f"folder not found: no labels for the {len(images)} "
                                                          f"image(s) of split {s!r}"))
            else:
                result.notes.append(f"{label_dir} not found: the {len(images)} image(s) of split {s!r} "
                                    "are checked without labels")
            entries += [_Entry(p, None) for p in images]
            continue
        entries += [_Entry(p, label_dir / p.parent.name / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
                    for p in images]
    if not entries:
        raise DatasetError(f"Cityscapes: no *_leftImg8bit.png files under {root / 'leftImg8bit'} "
                           f"(split(s) {', '.join(splits) or 'none'})")
    return entries


def _why(exc: Exception, path: Path) -> str:
    msg, prefix = str(exc), f"{path}: "
    msg = msg[len(prefix):] if msg.startswith(prefix) else msg
    return msg if isinstance(exc, DatasetError) else f"{type(exc).__name__}: {msg}"


def verify_decodes(path: Path) -> tuple[int, int]:
    """(W, H) of an image file that is complete and decodes; DatasetError otherwise.

    ``verify()`` checks the structure and checksums (it catches a PNG cut anywhere, even after its
    pixel data) and a full ``load()`` decodes the pixels (it catches a truncated JPEG, which
    OpenCV decodes silently, filling the rest with grey)."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            return im.size
    except Exception as exc:  # noqa: BLE001  (any decoder failure is this file's problem)
        raise DatasetError(f"{path}: does not decode ({type(exc).__name__}: {exc})") from None


def _check_entry(entry: _Entry, kind: str) -> tuple[int, list[Problem]]:
    problems, checked = [], 1
    try:
        size = verify_decodes(entry.image)
    except DatasetError as exc:
        problems.append(Problem(entry.image, _why(exc, entry.image)))
        size = None
    if entry.label is None:
        return checked, problems
    if not entry.label.is_file():
        return checked, problems + [Problem(entry.image, f"label missing ({entry.label} not found)")]
    checked += 1
    try:
        verify_decodes(entry.label)
        raw = read_synthia_label(entry.label) if kind == "synthia" else read_id_label(entry.label)
    except DatasetError as exc:
        return checked, problems + [Problem(entry.label, _why(exc, entry.label))]
    if size is not None and raw.shape != (size[1], size[0]):
        note = " (the GTA5 reader resizes such labels, with a warning)" if kind == "gta5" else ""
        problems.append(Problem(entry.label, f"label is {raw.shape[1]}×{raw.shape[0]} but its image {entry.image} "
                                             f"is {size[0]}×{size[1]}{note}"))
    max_id, lut = ((L.MAX_SYNTHIA_ID, L.SYNTHIA_LUT_16) if kind == "synthia" else (L.MAX_LABELID, L.LABELID_TO_TRAINID))
    _, outside = L.map_labels(raw, lut, max_id)  # the readers' own count
    if outside:
        problems.append(Problem(entry.label, f"{outside} pixel(s) hold ids above {max_id}, which this format does "
                                             "not define (the readers ignore them)"))
    return checked, problems


def check_dataset(root, kind: str = "auto", split=None, *, workers: int | None = None,
                  progress: bool = False) -> CheckResult:
    """Read every image and label of the dataset at ``root`` and list the problems.

    kind: gta5, synthia, cityscapes or auto (from the folders). split: Cityscapes split folder(s),
    comma-separated (default: every split under ``leftImg8bit/``); GTA5 / SYNTHIA: a split list
    file of image names, as the readers take it (default: every image). workers: decoding threads
    (Pillow and OpenCV decode outside the GIL); default min(4, CPUs). A bad root, layout or split
    raises DatasetError; problems with files are returned, never raised.
    """
    root = Path(root)
    if kind == "auto":
        kind = detect_kind(root)
    elif kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; available: auto, {', '.join(KINDS)}")
    elif not root.is_dir():
        raise DatasetError(f"dataset root {root} not found" if not root.exists() else f"dataset root {root} is not a folder")
    result = CheckResult(root, kind)
    entries = _entries(root, kind, split, result)
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(entries), desc=f"check {kind}", unit="img", dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for checked, problems in pool.map(lambda e: _check_entry(e, kind), entries):
                result.checked += checked
                result.problems += problems
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return result
