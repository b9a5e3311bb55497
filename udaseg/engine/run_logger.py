"""Where a run's numbers go: metrics.jsonl (one JSON object a line), train.log, TensorBoard."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from udaseg.engine.checkpoint import write_error


class RunLogger:
    """Writes only on the main process (``enabled``); every call is a no-op elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._text = open(self.run_dir / "train.log", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:  # TensorBoard is optional at run time
                warnings.warn("tensorboard is not installed: no TensorBoard events for this run")

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        _write(self._metrics, json.dumps(record, default=_jsonable) + "\n")
        if self.tb is not None and "iter" in record:
            step = record["iter"]
            for key, value in record.items():
                if key not in ("iter", "time", "kind") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)

    def drop_after(self, it: int) -> None:
        """Rewrite metrics.jsonl (atomically) without the records of iterations after ``it``."""
        if not self.enabled:
            return
        from udaseg.engine.checkpoint import atomic_write_text

        self._metrics.close()
        keep = [r for r in read_metrics(self.run_dir) if r.get("iter", 0) <= it]
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep))
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)

    def text(self, line: str) -> None:
        if self.enabled:
            _write(self._text, f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {line}\n")

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        """HWC uint8 images to TensorBoard."""
        if self.enabled and self.tb is not None:
            for tag, img in images.items():
                self.tb.add_image(tag, img, step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self._metrics.close()
            self._text.close()
            if self.tb is not None:
                self.tb.close()


def _write(f, text: str) -> None:
    """Append to an open log file; a full disk is an error naming the file (Python's own names none)."""
    try:
        f.write(text)
    except OSError as exc:
        raise write_error(f.name, exc, "; is the disk full?") from None


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    return out


@torch.no_grad()
def prediction_images(batches: dict, passes: dict, num_classes: int) -> dict[str, np.ndarray]:
    """TensorBoard images of each domain's first image: the input, the predicted classes in the
    palette and the entropy map (``passes``: domain -> the step's ``Pass`` or None)."""
    from udaseg.data import labels as Lb
    from udaseg.losses import entropy_map

    images = {}
    for name, p in passes.items():
        if p is None:
            continue
        img = batches[name]["image"][0].permute(1, 2, 0).numpy()
        probs = torch.softmax(p.out.logits[:1].float(), 1)
        probs = torch.nn.functional.interpolate(probs, size=img.shape[:2], mode="bilinear", align_corners=True)
        pred = probs.argmax(1)[0].cpu().numpy().astype(np.uint8)
        ent = (entropy_map(probs)[0].cpu().numpy() * 255).astype(np.uint8)
        images[f"{name}/image"] = img
        images[f"{name}/prediction"] = Lb.colorize(pred, num_classes)
        images[f"{name}/entropy"] = np.repeat(ent[..., None], 3, axis=2)
    return images
