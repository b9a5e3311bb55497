"""How confident a segmenter is on a labelled split, and how right it is where it is confident.

These are the quantities the target losses act on: entropy minimisation (ADVENT, the paper's
eq. 5) lowers the mean normalised entropy; self-training (DACS, DAFormer) trains on the argmax of
the pixels whose top probability is ≥ τ, so the share of such pixels and their accuracy — per
predicted class — say what its pseudo-labels teach. Accumulated over batches like the confusion
matrix, on the pixels the IoU counts (labelled ones).
"""
from __future__ import annotations

import torch

from udaseg.data.labels import IGNORE_INDEX
from udaseg.losses import entropy_map


class ConfidenceStats:
    """Sums over labelled pixels: normalised entropy, confident (max prob ≥ ``tau``) and correct
    counts, overall and per predicted class.

    >>> s = ConfidenceStats(2, tau=0.9)
    >>> s.update(torch.tensor([[[[0.95, 0.5]], [[0.05, 0.5]]]]), torch.tensor([[[0, 1]]]))
    >>> round(s.summary()["confident_share"], 2), s.summary()["confident_accuracy"]
    (0.5, 1.0)
    """

    def __init__(self, num_classes: int, tau: float = 0.968, ignore_index: int = IGNORE_INDEX):
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        self.num_classes, self.tau, self.ignore_index = num_classes, tau, ignore_index
        self.entropy_sum = 0.0
        # rows: predicted class; columns: pixels, confident, correct, confident and correct
        self.counts = torch.zeros(num_classes, 4, dtype=torch.int64)

    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        """probs (N, K, H, W) softmax probabilities at the labels' size; labels (N, H, W)."""
        if probs.dim() != 4 or probs.shape[1] != self.num_classes:
            raise ValueError(f"probs must be (N, {self.num_classes}, H, W), got {tuple(probs.shape)}")
        if probs.shape[:1] + probs.shape[2:] != labels.shape:
            raise ValueError(f"probs {tuple(probs.shape)} and labels {tuple(labels.shape)} differ in size")
        keep = labels != self.ignore_index
        ent = entropy_map(probs)[keep]
        conf, pred = probs.float().max(1)
        conf, pred, truth = conf[keep], pred[keep], labels[keep].long()
        confident, correct = conf >= self.tau, pred == truth
        self.entropy_sum += float(ent.double().sum())
        k = self.num_classes
        for col, mask in enumerate((None, confident, correct, confident & correct)):
            chosen = pred if mask is None else pred[mask]
            self.counts[:, col] += torch.bincount(chosen.cpu(), minlength=k)[:k]

    def summary(self, class_names=None) -> dict:
        """Mean normalised entropy, confident share and accuracy (overall, of confident pixels), and
        per predicted class: its share of pixels, the confident share of it, the precision of it."""
        c = self.counts.double()
        pixels = float(c[:, 0].sum())
        if pixels == 0:
            raise ValueError("no labelled pixels were accumulated")

        def ratio(a, b):
            return float(a / b) if b > 0 else float("nan")

        names = class_names or [str(i) for i in range(self.num_classes)]
        return {
            "tau": self.tau, "pixels": int(pixels),
            "mean_entropy": self.entropy_sum / pixels,
            "confident_share": ratio(c[:, 1].sum(), pixels),
            "accuracy": ratio(c[:, 2].sum(), pixels),
            "confident_accuracy": ratio(c[:, 3].sum(), c[:, 1].sum()),
            "per_class": {n: {"predicted_share": ratio(c[i, 0], pixels), "confident_share": ratio(c[i, 1], c[i, 0]),
                              "precision": ratio(c[i, 2], c[i, 0]), "confident_precision": ratio(c[i, 3], c[i, 1])}
                          for i, n in enumerate(names)},
        }
