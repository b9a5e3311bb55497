"""Confusion matrix, IoU and the class protocols; evaluation of a segmentor on a labelled split.

mIoU follows the Cityscapes convention (and the references): one confusion matrix over all
evaluated pixels at *label* resolution (logits upsampled bilinearly to the label size), per-class
IoU = TP / (TP + FP + FN), mean over the classes whose IoU is defined (not NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from udaseg.data import labels as L
from udaseg.data.labels import IGNORE_INDEX
from udaseg.engine.inference import predict_probs


class ConfusionMatrix:
    """K×K counts, rows = ground truth, columns = prediction; accumulated with ``bincount`` on
    the tensors' device. Pixels labelled ``ignore_index`` are skipped.

    >>> cm = ConfusionMatrix(2); cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    >>> cm.iou().tolist()
    [0.5, 0.5]
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device=None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(target.shape)} differ in size")
        k = self.num_classes
        target = target.reshape(-1).to(self.mat.device).long()
        pred = pred.reshape(-1).to(self.mat.device).long()
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        if target.numel() and (int(target.max()) >= k or int(target.min()) < 0):
            raise ValueError(f"label holds class {int(target.max())}, outside 0..{k - 1} (and not {self.ignore_index})")
        self.mat += torch.bincount(target * k + pred, minlength=k * k).view(k, k)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.mat += other.mat.to(self.mat.device)

    def iou(self) -> np.ndarray:
        """Per-class IoU (float64, NaN where a class is neither labelled nor predicted)."""
        m = self.mat.double().cpu().numpy()
        tp = np.diag(m)
        denom = m.sum(0) + m.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / denom

    def miou(self, classes=None) -> float:
        iou = self.iou() if classes is None else self.iou()[list(classes)]
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan

    def pixel_accuracy(self) -> float:
        m = self.mat.double()
        return float(m.diag().sum() / m.sum().clamp_min(1))

    def predicted_fractions(self) -> np.ndarray:
        """Share of evaluated pixels predicted as each class (shows collapse towards a class)."""
        m = self.mat.double().cpu().numpy()
        return m.sum(0) / max(m.sum(), 1)


def protocols(num_classes: int) -> dict[str, list[int]]:
    """The mIoU protocols a class set allows: name → class indices (into the model's classes)."""
    if num_classes == 19:
        return {"mIoU19": list(range(19)), "mIoU16": list(L.PROTOCOL_16_IN_19), "mIoU13": list(L.PROTOCOL_13_IN_19)}
    if num_classes == 16:
        return {"mIoU16": list(range(16)), "mIoU13": list(L.PROTOCOL_13_IN_16)}
    return {f"mIoU{num_classes}": list(range(num_classes))}


@dataclass
class EvalResult:
    num_classes: int
    iou: np.ndarray
    predicted_fractions: np.ndarray
    label_fractions: np.ndarray
    pixel_accuracy: float
    miou: dict[str, float]
    num_images: int

    @property
    def main_miou(self) -> float:
        return self.miou[f"mIoU{self.num_classes}"]

    def to_dict(self) -> dict:
        names = class_labels(self.num_classes)
        return {
            "num_images": self.num_images,
            "pixel_accuracy": self.pixel_accuracy,
            **{k: v for k, v in self.miou.items()},
            "iou": {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, self.iou)},
            "predicted_fractions": {n: float(v) for n, v in zip(names, self.predicted_fractions)},
            "label_fractions": {n: float(v) for n, v in zip(names, self.label_fractions)},
        }


def result_from_matrix(cm: ConfusionMatrix, num_images: int) -> EvalResult:
    m = cm.mat.double().cpu().numpy()
    return EvalResult(
        num_classes=cm.num_classes, iou=cm.iou(), predicted_fractions=cm.predicted_fractions(),
        label_fractions=m.sum(1) / max(m.sum(), 1), pixel_accuracy=cm.pixel_accuracy(),
        miou={name: cm.miou(idx) for name, idx in protocols(cm.num_classes).items()}, num_images=num_images)


@torch.no_grad()
def evaluate(model, loader, num_classes: int, norm: str, device, *, flip: bool = False,
             scales=(1.0,), window=None, stride=None, autocast_dtype=None, channels_last: bool = False,
             class_map=None, progress=None, on_batch=None, on_probs=None, distributed: bool = False) -> EvalResult:
    """Evaluate on a labelled loader: softmax at the label size (logits upsampled bilinearly,
    ``align_corners=True``), argmax, one confusion matrix over all pixels.

    ``class_map``: optional LUT applied to predictions (e.g. 19 → 16 classes). ``scales``,
    ``window``, ``stride``: test-time multi-scale / sliding window, see
    :func:`udaseg.engine.inference.predict_probs`. ``on_batch(pred, batch)``: called with each
    batch's (N, H, W) predicted class indices (after ``class_map``), e.g. to write them out.
    ``on_probs(probs, labels)``: called with each batch's (N, K, H, W) softmax probabilities in the
    model's K classes (before ``class_map``) and its (N, H, W) labels, on ``device`` — what
    :class:`udaseg.engine.confidence.ConfidenceStats` accumulates — so a diagnosis of the
    probabilities sees exactly the forward the scores come from.
    ``distributed``: each process evaluated its own shard of the split (see
    :class:`udaseg.engine.sampler.ShardSampler`); the confusion matrices and image counts are
    summed over the processes (integers: the result equals one process's over the whole split).
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    n = 0
    lut = None if class_map is None else torch.as_tensor(class_map, device=device).long()
    try:
        for batch in (progress(loader) if progress else loader):
            if "label" not in batch:
                raise ValueError(f"cannot evaluate on {_dataset_name(loader)}: it has no labels")
            labels = batch["label"].to(device)
            probs = predict_probs(model, batch["image"].to(device), norm, labels.shape[-2:], flip=flip,
                                  scales=scales, window=window, stride=stride, autocast_dtype=autocast_dtype,
                                  channels_last=channels_last)
            pred = probs.argmax(1)
            if on_probs is not None:
                on_probs(probs, labels)
            del probs
            if lut is not None:
                pred = lut[pred]
            try:
                cm.update(pred, labels)
            except ValueError as exc:
                raise ValueError(f"{', '.join(batch.get('name', []))}: {exc}") from None
            if on_batch is not None:
                on_batch(pred, batch)
            n += labels.shape[0]
    finally:
        model.train(was_training)
    if distributed:
        count = torch.tensor([n], dtype=torch.int64, device=cm.mat.device)
        torch.distributed.all_reduce(cm.mat)
        torch.distributed.all_reduce(count)
        n = int(count)
    if n == 0:
        raise ValueError(f"{_dataset_name(loader)}: the split holds no images to evaluate")
    return result_from_matrix(cm, n)


def _dataset_name(loader) -> str:
    ds = getattr(loader, "dataset", None)
    return getattr(ds, "name", None) or "the evaluation split"


PROTOCOL_NOTES = {
    "mIoU19": "all 19 Cityscapes classes (GTA5→Cityscapes)",
    "mIoU16": "the 16 SYNTHIA classes (no terrain, truck, train)",
    "mIoU13": "the 16 without wall, fence, pole (SYNTHIA mIoU*)",
}


def eval_class_map(cfg: dict):
    """(number K of evaluated classes, LUT from model classes to them, or None): a 19-class model
    can be scored in the 16-class protocol (``eval.num_classes=16``).

    The LUT sends the model's classes outside the K (terrain, truck, train) to K, an "other" bin:
    the 16-class labels have no such class (those pixels are ignored), so a prediction of one is
    a miss — a false negative of the pixel's true class, a false positive of none. Evaluate with
    :func:`evaluate_mapped`, which counts the bin and drops it from the result."""
    k_model = cfg["model"]["num_classes"]
    k_eval = cfg["eval"]["num_classes"] or k_model
    if k_eval == k_model:
        return k_eval, None
    if (k_model, k_eval) != (19, 16):
        raise ValueError(f"cannot evaluate a {k_model}-class model in {k_eval} classes")
    lut = L.TRAINID19_TO_16[:19].astype(np.int64)
    lut[lut == IGNORE_INDEX] = k_eval  # the "other" bin
    return k_eval, lut


def evaluate_mapped(model, loader, num_classes: int, norm: str, device, *, class_map=None, **kwargs) -> EvalResult:
    """:func:`evaluate` in ``num_classes`` evaluated classes, the model's predictions mapped by
    ``class_map`` (from :func:`eval_class_map`; None: the model's own classes, plain
    :func:`evaluate`). A prediction mapped to ``num_classes`` (the "other" bin: a model class the
    evaluated set lacks) is a wrong prediction of its pixel: the confusion matrix gets one column
    more, and :func:`without_other_bin` takes it out after IoU — it lowers the true class's IoU
    and no other. ``on_batch`` sees the mapped predictions, "other" as ``num_classes``."""
    if class_map is None:
        return evaluate(model, loader, num_classes, norm, device, **kwargs)
    lut = np.asarray(class_map)
    if lut.size and (lut.min() < 0 or lut.max() > num_classes):
        raise ValueError(f"class map holds {int(lut.min())}..{int(lut.max())}, outside 0..{num_classes} "
                         f"({num_classes}: predicted outside the evaluated classes)")
    return without_other_bin(evaluate(model, loader, num_classes + 1, norm, device, class_map=lut, **kwargs))


def without_other_bin(result: EvalResult) -> EvalResult:
    """The result of K+1 classes, the last the "other" bin that no label holds, as one of K:
    per-class IoU of the K (the bin's pixels already counted as misses of their true classes),
    protocol means over them, pixel accuracy unchanged (the bin is never right). The K classes'
    predicted fractions sum to 1 minus the share predicted "other"."""
    k = result.num_classes - 1
    if result.label_fractions[k] > 0:
        raise ValueError(f"the 'other' bin ({k}) holds labelled pixels; labels must lie in 0..{k - 1}")
    iou = result.iou[:k]

    def mean(idx):
        sub = iou[list(idx)]
        return float(np.nanmean(sub)) if np.isfinite(sub).any() else math.nan

    return EvalResult(num_classes=k, iou=iou, predicted_fractions=result.predicted_fractions[:k],
                      label_fractions=result.label_fractions[:k], pixel_accuracy=result.pixel_accuracy,
                      miou={name: mean(idx) for name, idx in protocols(k).items()}, num_images=result.num_images)


def class_labels(num_classes: int) -> list[str]:
    """Class names of a 19/16-class set (Cityscapes order); indices as text otherwise."""
    return list(L.class_names(num_classes)) if num_classes in (16, 19) else [str(i) for i in range(num_classes)]


def format_table(results: dict[str, EvalResult], baseline: str | None = None, *,
                 all_protocols: bool = False) -> str:
    """Per-class IoU (%) of several results in the paper's layout: classes as columns in
    Cityscapes order, mIoU last; with ``baseline``, a row of gains of the last result over it.

    ``all_protocols``: end with one column per protocol the class set allows (e.g. mIoU19,
    mIoU16, mIoU13 for 19 classes), the model's own first, instead of a single "mIoU"."""
    if not results:
        return ""
    ks = {r.num_classes for r in results.values()}
    if len(ks) > 1:
        raise ValueError(f"cannot put results with {sorted(ks)} classes into one table")
    k = ks.pop()
    short = [n[:5] for n in class_labels(k)]
    first = next(iter(results.values()))
    keys = list(first.miou) if all_protocols else [f"mIoU{k}"]
    heads = keys if all_protocols else ["mIoU"]
    width = max(12, *(len(r) for r in results))
    head = f"{'':<{width}} " + " ".join(f"{s:>5}" for s in short) + "".join(f" {h:>6}" for h in heads)
    lines = [head]
    for name, r in results.items():
        cells = " ".join(" nan " if math.isnan(v) else f"{100 * v:5.1f}" for v in r.iou)
        lines.append(f"{name:<{width}} {cells}" + "".join(f" {100 * r.miou[key]:6.1f}" for key in keys))
    if baseline is not None and len(results) > 1:
        last = list(results.values())[-1]
        base = results[baseline]
        cells = " ".join(f"{100 * (a - b):+5.1f}" if not (math.isnan(a) or math.isnan(b)) else "  -  "
                         for a, b in zip(last.iou, base.iou))
        lines.append(f"{'gain':<{width}} {cells}"
                     + "".join(f" {100 * (last.miou[key] - base.miou[key]):+6.1f}" for key in keys))
    return "\n".join(lines)


def protocol_legend(num_classes: int) -> str:
    """One line naming each protocol of a class set (which classes each mIoU averages)."""
    return "; ".join(f"{name}: {PROTOCOL_NOTES.get(name, f'{len(idx)} classes')}"
                     for name, idx in protocols(num_classes).items())
