"""Readers for the real on-disk layouts of GTA5, SYNTHIA-RAND-CITYSCAPES and Cityscapes, and a
plain image folder. No conversion step: each reads the files as the datasets ship them.

Every item is a dict ``{"image": uint8 (3, H, W) tensor, "label": int64 (H, W) tensor of class
indices with 255 = ignore (absent when the dataset has no labels), "name": str, "orig_size":
(H, W) of the file}``. Normalisation belongs to the model (it depends on the init weights), so
images stay uint8 until they reach the device.

Indexing with ``(index, seed)`` instead of ``index`` seeds the random transforms of that draw;
the trainer's samplers do this so that augmentation is exact on resume and independent of the
worker a sample lands in.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from udaseg.data import labels as L
from udaseg.data.io import (IMAGE_EXTENSIONS, DatasetError, image_size, name_files, read_id_label, read_rgb,
                            read_synthia_label)
from udaseg.data.transforms import Compose, resize_label

def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder {path} not found (expected layout: {layout})")


class SegmentationDataset(Dataset):
    """A list of (image path, label path or None) pairs plus how to turn a label into classes.

    label_mode: ``"ids"`` (8-bit labelIds, mapped with ``lut``) or ``"synthia"`` (16-bit
    multi-channel PNG, channel 0). ``size_mismatch``: what to do when a label's size differs from
    its image's — ``"error"`` (default) or ``"resize"`` (nearest, with a warning; GTA5 ships a
    few such pairs).
    """

    def __init__(self, pairs, *, lut: np.ndarray, max_known_id: int, num_classes: int,
                 label_mode: str = "ids", transform: Compose | None = None, seed: int = 0,
                 size_mismatch: str = "error", name: str = "dataset"):
        if not pairs:
            raise DatasetError(f"{name}: no images found")
        if size_mismatch not in ("error", "resize"):
            raise ValueError(f"size_mismatch must be 'error' or 'resize', got {size_mismatch!r}")
        self.pairs = list(pairs)
        self.lut, self.max_known_id, self.num_classes = lut, max_known_id, num_classes
        self.label_mode, self.transform, self.seed = label_mode, transform, seed
        self.size_mismatch, self.name = size_mismatch, name

    @property
    def has_labels(self) -> bool:
        return self.pairs[0][1] is not None

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The untransformed (image (H, W, 3) uint8, label (H, W) uint8 class indices or None)."""
        image_path, label_path = self.pairs[index]
        image = read_rgb(image_path)
        if label_path is None:
            return image, None
        raw = read_synthia_label(label_path) if self.label_mode == "synthia" else read_id_label(label_path)
        label, outside = L.map_labels(raw, self.lut, self.max_known_id)
        if outside:
            warnings.warn(f"{label_path}: {outside} pixels hold ids above {self.max_known_id}, "
                          f"which this format does not define; they are ignored (255)", stacklevel=2)
        if label.shape != image.shape[:2]:
            msg = (f"{label_path}: label is {label.shape[1]}×{label.shape[0]} but its image "
                   f"{image_path} is {image.shape[1]}×{image.shape[0]}")
            if self.size_mismatch == "error":
                raise DatasetError(msg)
            warnings.warn(msg + "; label resized (nearest)", stacklevel=2)
            label = resize_label(label, (image.shape[1], image.shape[0]))
        return image, label

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, label = self.load(index)
        orig_size = image.shape[:2]
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, index] if seed is None else [self.seed, index, seed])
            image, label = self.transform(image, label, rng)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous(),  # torch's copy is faster
            "name": Path(self.pairs[index][0]).name,
            "orig_size": tuple(int(s) for s in orig_size),
        }
        if label is not None:
            item["label"] = torch.from_numpy(label.astype(np.int64))
        return item


def _read_split_list(root: Path, split_list: str | os.PathLike) -> list[str]:
    path = Path(split_list)
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise DatasetError(f"split list {path} not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"split list {path} is empty")
    return names


def _pair_up(names, image_of, label_of, what: str) -> list[tuple[Path, Path]]:
    """Keep the names whose image and label both exist; one warning names the incomplete ones."""
    pairs, missing = [], []
    for n in names:
        img, lab = image_of(n), label_of(n)
        if img.is_file() and lab.is_file():
            pairs.append((img, lab))
        else:
            missing.append(img if not img.is_file() else lab)
    if missing:
        warnings.warn(f"{what}: skipped {len(missing)} pair(s) with a missing file: {name_files(missing)}", stacklevel=3)
    return pairs


def gta5(root, *, split_list=None, transform=None, seed=0, size_mismatch="resize") -> SegmentationDataset:
    """GTA5: ``images/NNNNN.png`` + ``labels/NNNNN.png`` (palette PNG of Cityscapes labelIds).

    ``split_list``: a file of image names (ADVENT's ``gta5_list/all.txt`` form), relative to
    ``root`` or absolute; default all images. A few real GTA5 pairs differ in size, hence the
    ``"resize"`` default for ``size_mismatch``.
    """
    root = Path(root)
    layout = "images/NNNNN.png and labels/NNNNN.png"
    _require_dir(root, "GTA5 root", layout)
    _require_dir(root / "images", "GTA5", layout)
    _require_dir(root / "labels", "GTA5", layout)
    names = _read_split_list(root, split_list) if split_list else sorted(
        p.name for p in (root / "images").iterdir() if p.suffix.lower() == ".png")
    if not names:
        raise DatasetError(f"GTA5: no PNG images in {root / 'images'}")
    pairs = _pair_up(names, lambda n: root / "images" / n, lambda n: root / "labels" / n, f"GTA5 {root}")
    return SegmentationDataset(pairs, lut=L.LABELID_TO_TRAINID, max_known_id=L.MAX_LABELID, num_classes=19,
                               transform=transform, seed=seed, size_mismatch=size_mismatch, name=f"GTA5 {root}")


def synthia(root, *, num_classes=16, split_list=None, transform=None, seed=0, size_mismatch="error") -> SegmentationDataset:
    """SYNTHIA-RAND-CITYSCAPES: ``RGB/*.png`` + ``GT/LABELS/*.png`` (16-bit, id in channel 0).

    ``num_classes`` 16 gives the 16-class protocol's indices; 19 places the same classes at their
    Cityscapes trainIds (terrain, truck, train never occur).
    """
    if num_classes not in (16, 19):
        raise ValueError(f"SYNTHIA: num_classes must be 16 or 19, got {num_classes}")
    root = Path(root)
    layout = "RGB/*.png and GT/LABELS/*.png"
    _require_dir(root, "SYNTHIA root", layout)
    _require_dir(root / "RGB", "SYNTHIA", layout)
    _require_dir(root / "GT" / "LABELS", "SYNTHIA", layout)
    names = _read_split_list(root, split_list) if split_list else sorted(
        p.name for p in (root / "RGB").iterdir() if p.suffix.lower() == ".png")
    if not names:
        raise DatasetError(f"SYNTHIA: no PNG images in {root / 'RGB'}")
    pairs = _pair_up(names, lambda n: root / "RGB" / n, lambda n: root / "GT" / "LABELS" / n, f"SYNTHIA {root}")
    lut = L.SYNTHIA_LUT_16 if num_classes == 16 else L.SYNTHIA_LUT_19
    return SegmentationDataset(pairs, lut=lut, max_known_id=L.MAX_SYNTHIA_ID, num_classes=num_classes,
                               label_mode="synthia", transform=transform, seed=seed,
                               size_mismatch=size_mismatch, name=f"SYNTHIA {root}")


def cityscapes(root, split="train", *, num_classes=19, with_labels=True, transform=None, seed=0) -> SegmentationDataset:
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``.

    ``with_labels=False`` never opens the label files (the unlabelled target of adaptation).
    ``num_classes=16`` maps to the SYNTHIA protocol's indices (terrain, truck, train → ignore).
    """
    if num_classes not in (16, 19):
        raise ValueError(f"Cityscapes: num_classes must be 16 or 19, got {num_classes}")
    root = Path(root)
    layout = "leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png"
    _require_dir(root, "Cityscapes root", layout)
    image_dir = root / "leftImg8bit" / split
    _require_dir(image_dir, f"Cityscapes split {split!r}", layout)
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise DatasetError(f"Cityscapes: no *_leftImg8bit.png files under {image_dir}")
    if with_labels:
        label_dir = root / "gtFine" / split
        _require_dir(label_dir, f"Cityscapes split {split!r}", layout)
        names = [p.relative_to(image_dir) for p in images]
        pairs = _pair_up(
            names, lambda n: image_dir / n,
            lambda n: label_dir / n.parent / n.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"),
            f"Cityscapes {split} {root}")
    else:
        pairs = [(p, None) for p in images]
    lut = L.LABELID_TO_TRAINID if num_classes == 19 else L.TRAINID19_TO_16[L.LABELID_TO_TRAINID]
    return SegmentationDataset(pairs, lut=lut, max_known_id=L.MAX_LABELID, num_classes=num_classes,
                               transform=transform, seed=seed, name=f"Cityscapes {split} {root}")


def image_folder(root, *, transform=None, recursive=False) -> SegmentationDataset:
    """Every image under a folder (for prediction); non-image files are skipped with one warning."""
    root = Path(root)
    _require_dir(root, "image folder", "any image files")
    files = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file())
    good, bad = [], []
    for p in files:
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            bad.append(p)
            continue
        try:
            image_size(p)
            good.append((p, None))
        except DatasetError:
            bad.append(p)
    if bad:
        warnings.warn(f"{root}: skipped {len(bad)} non-image file(s): {name_files(bad)}", stacklevel=2)
    if not good:
        raise DatasetError(f"{root}: no images found")
    return SegmentationDataset(good, lut=L.LABELID_TO_TRAINID, max_known_id=L.MAX_LABELID, num_classes=19,
                               transform=transform, name=f"folder {root}")


DATASETS = {"gta5": gta5, "synthia": synthia, "cityscapes": cityscapes, "folder": image_folder}


def build_dataset(kind: str, **kwargs) -> SegmentationDataset:
    """``build_dataset("gta5", root=..., transform=...)``; kinds: gta5, synthia, cityscapes, folder."""
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; available: {sorted(DATASETS)}")
    return DATASETS[kind](**kwargs)
