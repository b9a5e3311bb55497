"""Small datasets written in the real on-disk formats, shared by the tests.

Every image's pixels are a function of its name only (not of what other tests drew before), so a
test's data does not depend on which tests ran before it in the process: the DDP equality test
failed in full runs only, because a shared module-level generator gave it other images.
"""
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from udaseg.data import labels as L

def _rgb(h=6, w=8, name=""):
    """Random pixels seeded by ``name`` (the file's name in its dataset)."""
    return np.random.default_rng(zlib.crc32(name.encode())).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _palette_png(path, ids):
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    pal = np.zeros((256, 3), np.uint8)
    for t, lid in enumerate(L.TRAINID_TO_LABELID):
        pal[lid] = L.PALETTE_19[t]
    im.putpalette(pal.flatten().tolist())
    im.save(path)


def _synthia_png(path, ids):
    arr = np.zeros(ids.shape + (3,), np.uint16)
    arr[..., 0] = ids
    arr[..., 1] = 1000 + ids  # instance channel, to show only channel 0 is read
    assert cv2.imwrite(str(path), arr[..., ::-1])


def make_gta5(root, n=3, drop_label=None, h=6, w=8, vary_labels=False):
    """Every label map is ``ids`` (8-column class stripes, one of them ignored), or with
    ``vary_labels`` each image's own stripes: 7 classes drawn per image and the ignored stripe in
    its own column, so images differ in class counts but not in their number of ignored pixels."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    ids = np.tile(np.array([7, 8, 11, 0, 26, 33, 24, 23], np.uint8), (h, -(-w // 8)))[:, :w]
    for i in range(1, n + 1):
        Image.fromarray(_rgb(h, w, f"gta5/{i}")).save(root / "images" / f"{i:05d}.png")
        if i == drop_label:
            continue
        own = ids
        if vary_labels:
            row = np.insert(np.random.default_rng(i).choice(L.TRAINID_TO_LABELID, 7), i % 8, 0).astype(np.uint8)
            own = np.tile(row, (h, -(-w // 8)))[:, :w]
        _palette_png(root / "labels" / f"{i:05d}.png", own)
    return ids


def make_cityscapes(root, split="val", cities=("frankfurt", "lindau"), h=6, w=8):
    ids = np.tile(np.array([7, 21, 23, 1, 26, 17, 19, 20], np.uint8), (h, -(-w // 8)))[:, :w]
    for c in cities:
        (root / "leftImg8bit" / split / c).mkdir(parents=True)
        (root / "gtFine" / split / c).mkdir(parents=True)
        stem = f"{c}_000000_000019"
        Image.fromarray(_rgb(h, w, f"cityscapes/{split}/{stem}")).save(
            root / "leftImg8bit" / split / c / f"{stem}_leftImg8bit.png")
        Image.fromarray(ids, mode="L").save(root / "gtFine" / split / c / f"{stem}_gtFine_labelIds.png")
    return ids




def tiny_benchmark(root, h=32, w=64, vary_labels=False):
    """GTA5-layout source (4 images), Cityscapes-layout target train (2) and val (2)."""
    make_gta5(root / "gta5", n=4, h=h, w=w, vary_labels=vary_labels)
    make_cityscapes(root / "cs", "train", cities=("a", "b"), h=h, w=w)
    make_cityscapes(root / "cs", "val", cities=("c", "d"), h=h, w=w)
    return root


def tiny_config(root, run_overrides=()):
    """A resolved config training R18 on :func:`tiny_benchmark` at 32×64 (fast on a CPU)."""
    from udaseg.config import load_config

    return load_config(None, [
        "model.arch=deeplabv2_resnet18", "model.bn_mode=trainable", "model.input_norm=per_image",
        f"data.source.root={root}/gta5", f"data.target.root={root}/cs", f"data.val.root={root}/cs",
        "data.source.transforms={resize: [64, 32], hflip: 0.5, color_jitter: {brightness: 0.2}}",
        "data.target.transforms={resize: [64, 32], hflip: 0.5}",
        "data.val.transforms={resize_image: [32, 16]}",
        "data.workers=0", "train.log_every=1", "train.image_every=0", "train.lr=0.01", "train.lr_d=0.001",
        *run_overrides])


def assert_same_tensors(a: dict, b: dict, keys) -> None:
    """Checkpoints ``a`` and ``b`` hold bit-identical tensors under each of ``keys`` (``"segmentor"``,
    ``"teacher"`` …): what an exact resume must give."""
    import torch

    for key in keys:
        assert a[key].keys() == b[key].keys(), key
        differ = [k for k in a[key] if not torch.equal(a[key][k], b[key][k])]
        assert differ == [], f"{key}: {differ[:5]} differ"


def fake_last_checkpoint(run_dir) -> Path:
    """A stand-in ``<run_dir>/checkpoints/last.pt`` for fake trainings: a file with content, since
    the dev grid records its stage-1 checkpoint's SHA-256."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_bytes(Path(run_dir).name.encode())
    return last
