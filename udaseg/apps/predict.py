"""``udaseg predict``: a checkpoint's predictions for image files and folders.

For each image, four files (at the image's own size):

- ``<name>_color.png``    the prediction in the Cityscapes palette;
- ``<name>_overlay.png``  that colour map blended over the image;
- ``<name>_entropy.png``  the normalised entropy map (paper eq. 4, Fig. 3), perceptual colormap;
- the labelId PNG (Cityscapes submission format): ``<stem>_labelIds.png``, or for a Cityscapes
  ``<city>_<seq>_<frame>_leftImg8bit.png`` input ``<city>_<seq>_<frame>_pred_labelIds.png`` (the
  official script finds it by its ``<city>_<seq>_<frame>`` prefix; never ``*_gtFine_labelIds.png``,
  which is what the ground truth is called).

Images of any size: they are grouped by size so a batch holds one size. The network sees each
image at the width of its config's val input (aspect kept) unless told otherwise.

Predict never replaces a file it did not write. The output folder must be new or empty unless
``overwrite`` is given, and even then only the files listed in its manifest
(``<out>/.udaseg-predict.json``, the files earlier predicts wrote there) are replaced; a folder
holding label files predict did not write (``*_gtFine_*``, ``*_labelIds.png``: ground truth?) and
a Cityscapes ``gtFine`` / ``gtCoarse`` tree are refused outright. Inputs that are not images, or
images that do not decode (a truncated PNG), are skipped, each named with its reason in a
warning, and the job goes on.

    written = predict_images("runs/x/checkpoints/last.pt", ["photos/"], "out/")
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from udaseg.data.io import IMAGE_EXTENSIONS, DatasetError, image_size, name_files, read_rgb
from udaseg.data.transforms import resize_image
from udaseg.engine.checkpoint import atomic_write_json
from udaseg.engine.inference import forward_options, predict_probs
from udaseg.engine.official_check import labelid_name, write_labelids
from udaseg.reporting import viz


MANIFEST_NAME = ".udaseg-predict.json"  # in the output folder: the files predict wrote there
GROUND_TRUTH_FOLDERS = ("gtFine", "gtCoarse")  # Cityscapes label trees (next to leftImg8bit/)


class UnsafeOutputError(ValueError):
    """Predicting into ``--out`` could replace, or be taken for, files predict did not write."""


class NoImageReadError(DatasetError):
    """Every input file was skipped (none is an image that decodes): nothing to predict. The
    command exits 1 for it, as when images fail to decode later, not 2 (the inputs were there)."""

    def __init__(self, inputs, skipped):
        self.skipped = list(skipped)
        super().__init__(f"no images found in {name_files(inputs)}: no image could be read "
                         f"({len(self.skipped)} file(s) skipped)")


@dataclass
class ImageItem:
    path: Path
    rel: Path  # where its outputs go, relative to the output folder (keeps sub-folders of an input folder)
    size: tuple[int, int]  # (W, H)


@dataclass(frozen=True)
class SkippedFile:
    """An input predict did not predict, and why (not an image; an image that does not decode)."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return self.path.name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _reason(exc: Exception, path: Path) -> str:
    """A DatasetError's message without its leading ``<path>: ``."""
    msg, prefix = str(exc), f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def collect_images(inputs, exclude=()) -> tuple[list[ImageItem], list[SkippedFile]]:
    """Image files and folders (searched recursively) → (images, skipped files with the reason).

    A folder's images keep their sub-folder under the output folder; a missing input is an error,
    a file that is not an image (by extension or header) is skipped (and returned, to be named).
    ``exclude``: resolved paths left out silently (an earlier predict's outputs and manifest,
    when the output folder lies inside an input folder).
    """
    exclude = {Path(p) for p in exclude}
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
            if exclude and p.resolve() in exclude:
                continue
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(p, f"not an image file (extension {p.suffix or 'none'!r})"))
                continue
            try:
                items.append(ImageItem(p, rel, image_size(p)))
            except DatasetError as exc:
                skipped.append(SkippedFile(p, _reason(exc, p)))
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
            "entropy": folder / f"{base}_entropy.png", "labelIds": folder / labelid_name(stem, tag="pred")}


def looks_like_labels(name: str) -> bool:
    """A Cityscapes-style label file name (``*_gtFine_*``, ``*_gtCoarse_*``, ``*_labelIds.png``, ...):
    ground truth, unless predict wrote it."""
    return ("_gtFine_" in name or "_gtCoarse_" in name
            or name.endswith(("_labelIds.png", "_labelTrainIds.png", "_instanceIds.png")))


def read_manifest(out_dir) -> set[str]:
    """The files (POSIX paths relative to ``out_dir``) earlier predicts wrote there; empty when
    there is no manifest. A manifest that does not parse is an error (nothing is assumed)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return set()
    try:
        files = json.loads(path.read_text())["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError("'files' is not a list of paths")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsafeOutputError(f"{path}: unreadable predict manifest ({exc}); choose another --out") from None
    return set(files)


def write_manifest(out_dir, files, skipped=()) -> Path:
    """Write ``<out_dir>/.udaseg-predict.json`` atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"written_by": "udaseg predict",
            "about": "the files udaseg predict wrote in this folder; predict --overwrite replaces only these",
            "files": sorted(files),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped]}
    atomic_write_json(out_dir / MANIFEST_NAME, data)
    return out_dir / MANIFEST_NAME


def _refuse_ground_truth_tree(folder: Path) -> None:
    resolved = Path(folder).resolve()
    for a in (resolved, *resolved.parents):
        if a.name in GROUND_TRUTH_FOLDERS and (a.parent / "leftImg8bit").is_dir():
            raise UnsafeOutputError(f"--out {folder} is inside the Cityscapes ground-truth folder {a}; "
                                    "predictions never go there: choose another --out")


def previous_outputs(out_dir) -> set[Path]:
    """Resolved paths of the files an earlier predict wrote in ``out_dir``, and its manifest."""
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_NAME).is_file():
        return set()
    return {(out_dir / rel).resolve() for rel in read_manifest(out_dir)} | {(out_dir / MANIFEST_NAME).resolve()}


def prepare_output(out_dir, items: list[ImageItem], overwrite: bool = False) -> set[str]:
    """Check that predicting ``items`` into ``out_dir`` replaces no file predict did not write;
    returns the files earlier predicts wrote there (from the manifest).

    Refused (:class:`UnsafeOutputError`): a folder in a Cityscapes ``gtFine`` / ``gtCoarse`` tree;
    a non-empty folder without ``overwrite``; with it, an output path that exists but is not in
    the manifest, or any label-like file (``*_gtFine_*``, ``*_labelIds.png``) not in it; two
    inputs that would write the same output file.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UnsafeOutputError(f"--out {out} is a file, not a folder")
    planned: dict[str, Path] = {}
    for it in items:
        for rel in output_names(it).values():
            key = rel.as_posix()
            if key in planned and planned[key] != it.path:
                raise UnsafeOutputError(f"{planned[key]} and {it.path} would both be predicted to {out / rel}; "
                                        "predict them into separate --out folders")
            planned[key] = it.path
    owned: set[str] = set()
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UnsafeOutputError(f"--out {out} exists and is not empty; predict writes into a new or empty folder. "
                                    "Give --overwrite to replace the files an earlier predict wrote there "
                                    f"(listed in {MANIFEST_NAME}; no other file is ever replaced)")
        owned = read_manifest(out)
        for key in planned:
            p = out / key
            if p.is_symlink() or (p.exists() and key not in owned):
                raise UnsafeOutputError(f"{p} exists and was not written by udaseg predict (not in "
                                        f"{out / MANIFEST_NAME}); refusing to overwrite it, even with --overwrite: "
                                        "choose another --out")
        for p in sorted(out.rglob("*")):
            if looks_like_labels(p.name) and p.relative_to(out).as_posix() not in owned and not p.is_dir():
                raise UnsafeOutputError(f"--out {out} holds {p}, a label file udaseg predict did not write "
                                        "(ground truth?); predictions never go next to it: choose another --out")
    for folder in sorted({out} | {(out / rel).parent for rel in planned}):  # a sub-folder may link elsewhere
        _refuse_ground_truth_tree(folder)
    return owned


def write_outputs(out_dir: Path, item: ImageItem, image: np.ndarray, pred: np.ndarray, entropy: np.ndarray,
                  num_classes: int, cmap: str = "magma") -> dict[str, Path]:
    """The four files of one image; returns their paths."""
    names = {k: out_dir / v for k, v in output_names(item).items()}
    names["color"].parent.mkdir(parents=True, exist_ok=True)
    color = viz.colorize(pred, num_classes)  # (prepare_output checked that none of these is another's file)
    Image.fromarray(color).save(names["color"])
    Image.fromarray(viz.overlay(image, color)).save(names["overlay"])
    Image.fromarray(viz.entropy_rgb(entropy, cmap)).save(names["entropy"])
    write_labelids(names["labelIds"], pred, num_classes)
    return names


@torch.no_grad()
def predict_with_model(model, num_classes: int, norm: str, items: list[ImageItem], out_dir, *, batch_size: int = 4,
                       input_size=None, flip: bool = False, scales=(1.0,), window=None, stride=None,
                       device="cpu", autocast_dtype=None, channels_last: bool = False, cmap: str = "magma",
                       progress: bool = False, overwrite: bool = False,
                       skipped=None) -> tuple[list[dict], list[SkippedFile]]:
    """Predict ``items`` with a loaded model and write their four outputs into ``out_dir``;
    returns (written files per image, skipped inputs).

    window / stride: (H, W) of sliding windows over the network input (torch order). norm,
    autocast_dtype, channels_last: as :func:`udaseg.engine.inference.forward_options` gives them
    for a checkpoint's config (what evaluation uses). overwrite: see :func:`prepare_output`
    (checked before anything is written). An image that does not decode is skipped and named in
    a warning; ``skipped`` (earlier skips, e.g. :func:`collect_images`'s) is extended with those
    and recorded with them in the output folder's manifest."""
    out_dir = Path(out_dir)
    owned = prepare_output(out_dir, items, overwrite)
    planned = {rel.as_posix() for it in items for rel in output_names(it).values()}
    # listed before they are written: an interrupted run leaves no file the next --overwrite refuses
    write_manifest(out_dir, owned | planned, skipped or ())
    skipped = list(skipped or ())
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
                chunk, images = [], []
                for it in group[start:start + batch_size]:
                    try:
                        images.append(read_rgb(it.path))
                        chunk.append(it)
                    except DatasetError as exc:  # a truncated or corrupt image: name it and go on
                        skipped.append(SkippedFile(it.path, _reason(exc, it.path)))
                        warnings.warn(f"skipped {skipped[-1]}", stacklevel=2)
                        if bar is not None:
                            bar.update(1)
                if not chunk:
                    continue
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
        # the files that are there now: earlier predicts' and this one's (also a half-written image's)
        write_manifest(out_dir, {k for k in owned | planned if (out_dir / k).exists()}, skipped)
    return written, skipped


def predict_images(checkpoint, inputs, out_dir, *, batch_size: int = 4, flip=None, scales=None,
                   window=None, stride=None, input_size="config", overrides=(), cmap: str = "magma",
                   progress: bool = False, overwrite: bool = False) -> tuple[list[dict], list[SkippedFile]]:
    """Load ``checkpoint`` and predict every image of ``inputs`` (files or folders) into ``out_dir``.

    input_size: ``"config"`` (the config's val input width, aspect kept), ``"native"`` (as is) or
    (W, H). flip / scales: None takes the config's ``eval.flip`` / ``eval.scales``. window /
    stride: (W, H) of sliding windows; None takes ``eval.window`` / ``eval.stride``. overwrite: predict into a non-empty ``out_dir``, replacing
    only what earlier predicts wrote there (:func:`prepare_output`, checked before the checkpoint
    is loaded). Returns (written files per image, skipped inputs: non-images and images that do
    not decode); each skipped file is also named, with its reason, in a warning of its own.
    """
    from udaseg.engine.checkpoint import load_checkpoint
    from udaseg.engine.eval_checkpoints import evaluation_config
    from udaseg.engine.builders import load_segmentor, resolve_device

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    items, skipped = collect_images(inputs, previous_outputs(out_dir) if overwrite else ())
    for s in skipped:
        warnings.warn(f"skipped {s}", stacklevel=2)
    if not items:
        if skipped:  # files were there, none readable: the command's "no image could be read", exit 1
            raise NoImageReadError(inputs, skipped)
        raise DatasetError(f"no images found in {name_files(inputs)}")
    prepare_output(out_dir, items, overwrite)  # before the checkpoint is loaded: refusals come at once
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
    if window is None:  # the config's sliding window (HRDA's test_cfg slide), as evaluation uses it
        window, stride = cfg["eval"].get("window"), stride if stride is not None else cfg["eval"].get("stride")
    return predict_with_model(model, cfg["model"]["num_classes"], fw.norm, items, out_dir,
                              batch_size=batch_size, input_size=input_size,
                              flip=cfg["eval"]["flip"] if flip is None else flip,
                              scales=scales or cfg["eval"]["scales"], window=hw(window), stride=hw(stride),
                              device=device, autocast_dtype=fw.autocast_dtype, channels_last=fw.channels_last,
                              cmap=cmap, progress=progress, overwrite=overwrite, skipped=skipped)
