"""``udaseg predict``: a checkpoint's predictions for image files and folders.

For each image, four files (at the image's own size):

- ``<name>_color.png``    the prediction in the Cityscapes palette;
- ``<name>_overlay.png``  that colour map blended over the image;
- ``<name>_entropy.png``  the normalised entropy map (paper eq. 4, Fig. 3), perceptual colormap;
- the labelId PNG (Cityscapes submission format): ``<stem>_labelIds.png``, or for a Cityscapes
  ``<city>_<seq>_<frame>_leftImg8bit.png`` input ``<city>_<seq>_<frame>_gtFine_labelIds.png``.

Images of any size: they are grouped by size so a batch holds one size. The network sees each
image at the width of its config's val input (aspect kept) unless told otherwise.

    written = predict_images("runs/x/checkpoints/last.pt", ["photos/"], "out/")
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from udaseg import viz
from udaseg.data.io import IMAGE_EXTENSIONS, DatasetError, image_size, name_files, read_rgb
from udaseg.data.transforms import resize_image
from udaseg.engine.inference import forward_options, predict_probs
from udaseg.engine.official_check import labelid_name, write_labelids


@dataclass
class ImageItem:
    path: Path
    rel: Path  # where its outputs go, relative to the output folder (keeps sub-folders of an input folder)
    size: tuple[int, int]  # (W, H)


def collect_images(inputs) -> tuple[list[ImageItem], list[Path]]:
    """Image files and folders (searched recursively) → (images, skipped non-image files).

    A folder's images keep their sub-folder under the output folder; a missing input is an error,
    a file that is not a readable image is skipped (and returned, to be named).
    """
    items, skipped = [], []
    for inp in inputs:
        inp = Path(inp)
        if inp.is_dir():
            files = sorted(p for p in inp.rglob("*") if p.is_file())
            pairs = [(p, p.relative_to(inp)) for p in files]
        elif inp.is_file():
            pairs = [(inp, Path(inp.name))]
        else:
            raise FileNotFoundError(f"input {inp} not found")
        for p, rel in pairs:
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(p)
                continue
            try:
                items.append(ImageItem(p, rel, image_size(p)))
            except DatasetError:
                skipped.append(p)
    return items, skipped


def network_size(image_wh: tuple[int, int], input_size) -> tuple[int, int]:
    """(W, H) the network sees: ``None`` → the image's own size; ``("width", W)`` → width W with
    the aspect kept; ``(W, H)`` → exactly that."""
    w, h = image_wh
    if input_size is None:
        return w, h
    if input_size[0] == "width":
        tw = int(input_size[1])
        return tw, max(1, round(h * tw / w))
    return int(input_size[0]), int(input_size[1])


def config_input_size(cfg: dict):
    """The val input width of a config (``resize_image`` or ``resize``), as ``("width", W)``; None
    when the config evaluates at the file's size."""
    tf = cfg["data"]["val"].get("transforms") or {}
    size = tf.get("resize_image") or tf.get("resize")
    return ("width", int(size[0])) if size else None


def output_names(item: ImageItem) -> dict[str, Path]:
    stem = item.rel.stem
    base = stem[: -len("_leftImg8bit")] if stem.endswith("_leftImg8bit") else stem
    folder = item.rel.parent
    return {"color": folder / f"{base}_color.png", "overlay": folder / f"{base}_overlay.png",
            "entropy": folder / f"{base}_entropy.png", "labelIds": folder / labelid_name(stem)}


def write_outputs(out_dir: Path, item: ImageItem, image: np.ndarray, pred: np.ndarray, entropy: np.ndarray,
                  num_classes: int, cmap: str = "magma") -> dict[str, Path]:
    """The four files of one image; returns their paths."""
    names = {k: out_dir / v for k, v in output_names(item).items()}
    names["color"].parent.mkdir(parents=True, exist_ok=True)
    color = viz.colorize(pred, num_classes)
    Image.fromarray(color).save(names["color"])
    Image.fromarray(viz.overlay(image, color)).save(names["overlay"])
    Image.fromarray(viz.entropy_rgb(entropy, cmap)).save(names["entropy"])
    write_labelids(names["labelIds"], pred, num_classes)
    return names


@torch.no_grad()
def predict_with_model(model, num_classes: int, norm: str, items: list[ImageItem], out_dir, *, batch_size: int = 4,
                       input_size=None, flip: bool = False, scales=(1.0,), window=None, stride=None,
                       device="cpu", autocast_dtype=None, channels_last: bool = False, cmap: str = "magma",
                       progress: bool = False) -> list[dict]:
    """Predict ``items`` with a loaded model and write their four outputs into ``out_dir``.

    window / stride: (H, W) of sliding windows over the network input (torch order). norm,
    autocast_dtype, channels_last: as :func:`udaseg.engine.inference.forward_options` gives them
    for a checkpoint's config (what evaluation uses)."""
    out_dir = Path(out_dir)
    groups: dict[tuple[int, int], list[ImageItem]] = {}
    for it in items:  # one size per batch
        groups.setdefault(it.size, []).append(it)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="predict", unit="img", dynamic_ncols=True)
    written = []
    model.eval()
    try:
        for (w, h), group in groups.items():
            nw, nh = network_size((w, h), input_size)
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                images = [read_rgb(it.path) for it in chunk]
                x = np.stack([resize_image(im, (nw, nh)) for im in images])
                x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
                probs = predict_probs(model, x, norm, (h, w), flip=flip, scales=scales, window=window, stride=stride,
                                      autocast_dtype=autocast_dtype, channels_last=channels_last)
                preds = probs.argmax(1).cpu().numpy().astype(np.uint8)
                ents = viz.normalized_entropy(probs)
                del probs
                for it, im, p, e in zip(chunk, images, preds, ents):
                    written.append({"input": it.path, **write_outputs(out_dir, it, im, p, e, num_classes, cmap)})
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return written


def predict_images(checkpoint, inputs, out_dir, *, batch_size: int = 4, flip=None, scales=None,
                   window=None, stride=None, input_size="config", overrides=(), cmap: str = "magma",
                   progress: bool = False) -> tuple[list[dict], list[Path]]:
    """Load ``checkpoint`` and predict every image of ``inputs`` (files or folders) into ``out_dir``.

    input_size: ``"config"`` (the config's val input width, aspect kept), ``"native"`` (as is) or
    (W, H). flip / scales: None takes the config's ``eval.flip`` / ``eval.scales``. window /
    stride: (W, H) of sliding windows. Returns (written files per image, skipped
    non-image files); the skipped files are also named in a warning.
    """
    from udaseg.engine.checkpoint import load_checkpoint
    from udaseg.engine.eval_checkpoints import evaluation_config
    from udaseg.engine.builders import load_segmentor, resolve_device

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    items, skipped = collect_images(inputs)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} non-image file(s): {name_files(skipped)}", stacklevel=2)
    if not items:
        raise DatasetError(f"no images found in {name_files(inputs)}")
    state = load_checkpoint(checkpoint)
    cfg = evaluation_config(state, checkpoint, overrides)
    device = resolve_device(cfg["train"]["device"])
    model = load_segmentor(state, device)
    del state
    if input_size == "config":
        input_size = config_input_size(cfg)
    elif input_size == "native":
        input_size = None
    fw = forward_options(cfg, device)  # normalisation, autocast, memory format: the same as evaluation's
    hw = lambda s: None if s is None else (int(s[1]), int(s[0]))  # noqa: E731  (W, H) → torch's (H, W)
    written = predict_with_model(model, cfg["model"]["num_classes"], fw.norm, items, out_dir,
                                 batch_size=batch_size, input_size=input_size,
                                 flip=cfg["eval"]["flip"] if flip is None else flip,
                                 scales=scales or cfg["eval"]["scales"], window=hw(window), stride=hw(stride),
                                 device=device, autocast_dtype=fw.autocast_dtype, channels_last=fw.channels_last,
                                 cmap=cmap, progress=progress)
    return written, skipped
