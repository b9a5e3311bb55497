"""Agreement with the Cityscapes official pixel-level evaluation (``cityscapesscripts``).

The official script is the arbiter of Cityscapes numbers (DESIGN.md §2). This module writes our
predictions as Cityscapes labelId PNGs (the submission format), scores those files with
``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling`` against the ground-truth
``*_gtFine_labelIds.png`` files, and compares its per-class IoU and mean with ours.

    writer = LabelIdWriter(dataset, out_dir, num_classes=19)
    result = evaluate(..., on_batch=writer)
    check = compare_with_official(result, writer.predictions, writer.ground_truths)
    assert check.agrees

``cityscapesscripts`` is a test / optional dependency; it is imported only here, when called.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from udaseg.data import labels as L
from udaseg.data.io import image_size


def labelid_name(stem: str, tag: str = "gtFine") -> str:
    """Output name of a labelId prediction: Cityscapes naming for ``*_leftImg8bit`` inputs
    (``frankfurt_000000_000294_leftImg8bit`` → ``frankfurt_000000_000294_<tag>_labelIds.png``,
    which the official script's ``<city>_<seq>_<frame>*.png`` search finds), else
    ``<stem>_labelIds.png``. ``udaseg predict`` passes ``tag="pred"`` so that its outputs can
    never be taken for (or overwrite) the ground-truth ``*_gtFine_labelIds.png`` files."""
    if stem.endswith("_leftImg8bit"):
        return stem[: -len("_leftImg8bit")] + f"_{tag}_labelIds.png"
    return f"{stem}_labelIds.png"


def write_labelids(path: Path, pred: np.ndarray, num_classes: int) -> None:
    """(H, W) class indices of a 19/16-class model → an 8-bit ``L`` PNG of Cityscapes labelIds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(L.trainid_to_labelid(pred, num_classes), mode="L").save(path)


FOLDER_MARK = ".written_by_udaseg_evaluate"  # in a labelId folder: evaluate made it and may write there again


def foreign_folder(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds files that ``udaseg evaluate`` did not put there (a folder it
    made carries :data:`FOLDER_MARK`; a missing or empty folder is free)."""
    out_dir = Path(out_dir)
    return out_dir.is_dir() and not (out_dir / FOLDER_MARK).is_file() and any(out_dir.iterdir())


class LabelIdWriter:
    """``on_batch`` callback for :func:`udaseg.engine.evaluation.evaluate`: writes each
    prediction as a labelId PNG and records (prediction file, ground-truth file) pairs.

    Relies on the loader visiting ``dataset`` in order (``shuffle=False``), and checks it by name.
    """

    def __init__(self, dataset, out_dir: str | Path, num_classes: int = 19):
        self.dataset, self.out_dir, self.num_classes = dataset, Path(out_dir), num_classes
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / FOLDER_MARK).touch()
        self.index = 0
        self.predictions: list[Path] = []
        self.ground_truths: list[Path] = []

    def __call__(self, pred, batch) -> None:
        for i, p in enumerate(pred.cpu().numpy().astype(np.uint8)):
            image_path, label_path = self.dataset.pairs[self.index]
            if batch["name"][i] != Path(image_path).name:
                raise RuntimeError(f"loader order differs from the dataset's at {image_path} (shuffled loader?)")
            w, h = image_size(label_path)
            if (h, w) != p.shape:
                raise ValueError(f"{label_path}: label file is {w}×{h} but the prediction is {p.shape[1]}×{p.shape[0]}; "
                                 "the official check needs evaluation at label resolution "
                                 "(resize the image only: data.val.transforms={resize_image: [W, H]})")
            out = self.out_dir / labelid_name(Path(image_path).stem)
            write_labelids(out, p, self.num_classes)
            self.predictions.append(out)
            self.ground_truths.append(Path(label_path))
            self.index += 1


def official_scores(predictions, ground_truths) -> dict:
    """Score labelId PNGs with the official script: {"iou": {labelId: IoU}, "miou": float}.

    Runs ``evaluateImgLists`` on explicit file lists (so no environment variables or folder
    search), quietly, without the instance-level score (its ``np.in1d`` is gone from numpy 2.4
    and it needs ``*_instanceIds.png``) and without writing its JSON file.
    """
    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official
    except ImportError as exc:  # a ValueError, so the command line says it in one line
        raise ValueError("the official check needs cityscapesscripts: pip install 'udaseg[test]' "
                         f"or pip install cityscapesscripts ({exc})") from None
    predictions, ground_truths = [str(p) for p in predictions], [str(p) for p in ground_truths]
    if not predictions:
        raise ValueError("the official check got no predictions to score")
    args = copy.copy(official.args)  # never mutate the module's global settings
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    args.bold = args.nocol = ""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            scores = official.evaluateImgLists(predictions, ground_truths, args)
    except SystemExit:  # the script reports errors with print + sys.exit
        raise ValueError(f"cityscapesscripts: {out.getvalue().strip().splitlines()[-1:]}") from None
    by_name = scores["classScores"]
    iou = {lid: float(by_name[official.id2label[lid].name]) for lid in L.TRAINID_TO_LABELID}
    return {"iou": iou, "miou": float(scores["averageScoreClasses"]), "names": {lid: official.id2label[lid].name for lid in iou}}


@dataclass
class OfficialComparison:
    """Our per-class IoU and mIoU next to the official script's, on the same prediction files."""

    ours: dict[str, float]
    official: dict[str, float]
    miou_ours: float
    miou_official: float
    tolerance: float
    num_images: int
    differences: dict[str, float] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        return float(max(self.differences.values(), default=0.0))

    @property
    def agrees(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)

    def summary(self) -> str:
        verdict = "AGREE" if self.agrees else "DISAGREE"
        worst = max(self.differences, key=self.differences.get) if self.differences else "-"
        return (f"official Cityscapes script on {self.num_images} labelId PNGs: mIoU {100 * self.miou_official:.4f} "
                f"vs ours {100 * self.miou_ours:.4f}; largest per-class difference {self.max_abs_diff:.2e} ({worst}); "
                f"{verdict} within {self.tolerance:g}")

    def to_dict(self) -> dict:
        nan = lambda v: None if math.isnan(v) else v  # noqa: E731  (JSON has no NaN)
        return {"agrees": self.agrees, "tolerance": self.tolerance, "max_abs_diff": self.max_abs_diff,
                "num_images": self.num_images, "miou_ours": self.miou_ours, "miou_official": self.miou_official,
                "iou_ours": {k: nan(v) for k, v in self.ours.items()},
                "iou_official": {k: nan(v) for k, v in self.official.items()}}


def _diff(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf  # defined on one side only: a real disagreement
    return abs(a - b)


def compare_with_official(result, predictions, ground_truths, tolerance: float = 1e-6) -> OfficialComparison:
    """Compare a 19-class :class:`~udaseg.engine.evaluation.EvalResult` with the official
    script's scores of the labelId PNGs the same evaluation wrote."""
    if result.num_classes != 19:
        raise ValueError(f"the official Cityscapes script scores the 19 classes; this evaluation has "
                         f"{result.num_classes} (its 16-class numbers have no official counterpart)")
    off = official_scores(predictions, ground_truths)
    ours, theirs, diffs = {}, {}, {}
    for t, lid in enumerate(L.TRAINID_TO_LABELID):
        name = L.CLASSES_19[t]
        ours[name], theirs[name] = float(result.iou[t]), float(off["iou"][lid])
        diffs[name] = float(_diff(ours[name], theirs[name]))
    miou_ours = result.miou["mIoU19"]
    diffs["mIoU"] = float(_diff(miou_ours, off["miou"]))
    return OfficialComparison(ours, theirs, miou_ours, float(off["miou"]), tolerance, len(predictions), diffs)
