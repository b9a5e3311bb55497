"""``udaseg pretrain``: train a ResNet as a classifier on the pretraining set (ImageNet's role).

    udaseg pretrain --out runs/pretrain/demo_resnet18                  # the shipped demo_resnet18
    udaseg pretrain --out runs/pretrain/demo_resnet18 --resume         # after a kill: exactly on
    udaseg pretrain --out runs/pretrain/r18_long iters=6000            # recipe keys as key=value

The net is the plain classification ResNet (``ResNetBackbone(..., "torchvision", output_stride=32)``,
global average pool, one linear layer), the data ``udaseg.pretraining`` rendered on the fly. The
run folder gets ``pretrain.json`` (the recipe), ``metrics.jsonl``, ``checkpoint.pt`` (written
atomically every ``checkpoint_every`` iterations and on Ctrl-C / SIGTERM), and at the end
``resnet{depth}.pth`` — a torchvision-layout state dict (``conv1.weight`` … ``fc.*``) that
``model.pretrained`` loads into a ``deeplabv2_resnet{depth}_tv`` segmentor — its float16 copy
``resnet{depth}_fp16.pth`` (what the package ships) and ``summary.json`` with the held-out
accuracy and both files' SHA-256.

Recipe (``RECIPE``): torchvision's classic ImageNet recipe scaled to the set — SGD momentum 0.9,
weight decay on every parameter (torchvision references/classification, ResNet: lr 0.1 for batch
256, wd 1e-4), linear warm-up then cosine decay (Goyal et al. 2017 warm-up; cosine as
torchvision's newer recipes), label smoothing 0.1 (torchvision's new recipe), bf16 autocast and
channels_last on the CPU. Chosen from held-out pretraining accuracy alone, before any
segmentation run.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from udaseg.engine.checkpoint import atomic_write_json, atomic_write_text, save_checkpoint
from udaseg.engine.inputs import normalize_images
from udaseg.engine.interrupt import StopOnSignal, TrainingInterrupted
from udaseg.models.backbones import DEPTHS, ResNetBackbone
from udaseg.models.deeplabv2 import sha256sum
from udaseg.pretraining import CATEGORIES, PretrainImages

RECIPE = {
    "depth": 18,
    "iters": 3000,
    "batch_size": 128,       # one image of every category per batch (labels = index % 128)
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-5,
    "warmup_iters": 100,
    "label_smoothing": 0.1,
    "size": 96,
    "seed": 0,
    "amp": "bf16",           # "bf16" | "none"
    "heldout_images": 6400,  # 50 per category
}
# may differ on --resume: they do not change the result
FREE_KEYS = {"workers": 1, "log_every": 20, "checkpoint_every": 100, "eval_every": 1000}
RUN_FILE, CHECKPOINT, METRICS = "pretrain.json", "checkpoint.pt", "metrics.jsonl"


class Classifier(nn.Module):
    """ResNet (output stride 32) → global average pool → linear."""

    def __init__(self, depth: int, num_classes: int):
        super().__init__()
        self.backbone = ResNetBackbone(depth, "torchvision", output_stride=32)
        self.fc = nn.Linear(self.backbone.layer4_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).layer4.mean((2, 3)))

    def torchvision_state_dict(self) -> dict[str, torch.Tensor]:
        """The torchvision ``resnet{depth}`` key layout: the backbone's names are torchvision's."""
        sd = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}
        sd["fc.weight"], sd["fc.bias"] = self.fc.weight.detach().clone(), self.fc.bias.detach().clone()
        return sd


def parse_settings(overrides: list[str]) -> dict:
    """RECIPE and FREE_KEYS with ``key=value`` overrides, each checked by name, type and range."""
    settings = {**RECIPE, **FREE_KEYS}
    for item in overrides:
        key, _, text = item.partition("=")
        if key not in settings:
            raise ValueError(f"unknown pretrain setting {key!r}; valid: {', '.join(settings)}")
        kind = type(settings[key])
        try:
            value = kind(text) if kind is not int else int(text)
        except ValueError:
            raise ValueError(f"pretrain setting {key}={text!r} is not a valid {kind.__name__}") from None
        settings[key] = value
    _check(settings)
    return settings


def _check(s: dict) -> None:
    if s["depth"] not in DEPTHS:
        raise ValueError(f"pretrain setting depth={s['depth']}: expected one of {sorted(DEPTHS)}")
    if s["amp"] not in ("bf16", "none"):
        raise ValueError(f"pretrain setting amp={s['amp']!r}: expected 'bf16' or 'none'")
    for key in ("iters", "batch_size", "size", "workers", "log_every", "checkpoint_every", "eval_every"):
        if s[key] < (0 if key == "workers" else 1):
            raise ValueError(f"pretrain setting {key}={s[key]} must be positive")
    for key in ("lr", "weight_decay", "label_smoothing", "momentum"):
        if not (math.isfinite(s[key]) and s[key] >= 0):
            raise ValueError(f"pretrain setting {key}={s[key]} must be a finite number >= 0")
    if not 0 <= s["warmup_iters"] < s["iters"]:
        raise ValueError(f"pretrain setting warmup_iters={s['warmup_iters']} must lie in [0, iters={s['iters']})")
    if s["size"] < 32:
        raise ValueError(f"pretrain setting size={s['size']}: at least 32 (the net's output stride)")


def lr_at(it: int, s: dict) -> float:
    """Linear warm-up over ``warmup_iters``, then cosine decay to 0 at ``iters``."""
    if it < s["warmup_iters"]:
        return s["lr"] * (it + 1) / s["warmup_iters"]
    t = (it - s["warmup_iters"]) / max(1, s["iters"] - s["warmup_iters"])
    return 0.5 * s["lr"] * (1 + math.cos(math.pi * t))


def _forward(model: Classifier, images: torch.Tensor, amp: str) -> torch.Tensor:
    x = normalize_images(images, "imagenet").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        return model(x).float()


@torch.no_grad()
def heldout_accuracy(model: Classifier, s: dict) -> dict:
    """Top-1 / top-5 on ``heldout_images`` images of the held-out split, and top-1 per kind."""
    was_training = model.training
    model.eval()
    data = PretrainImages("heldout", s["heldout_images"], seed=s["seed"], size=s["size"])
    loader = torch.utils.data.DataLoader(data, batch_size=256, num_workers=s["workers"])
    top1 = top5 = n = 0
    kinds: dict[str, list[int]] = {}
    for images, labels in loader:
        logits = _forward(model, images, s["amp"])
        best = logits.topk(5, 1).indices
        hit1 = best[:, 0] == labels
        top1 += int(hit1.sum())
        top5 += int((best == labels[:, None]).any(1).sum())
        n += len(labels)
        for label, hit in zip(labels.tolist(), hit1.tolist()):
            kinds.setdefault(CATEGORIES[label].kind, [0, 0])
            kinds[CATEGORIES[label].kind][0] += hit
            kinds[CATEGORIES[label].kind][1] += 1
    model.train(was_training)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n,
            "top1_by_kind": {k: 100.0 * h / c for k, (h, c) in sorted(kinds.items())}}


def _open_run(out: Path, s: dict, resume: bool, overwrite: bool) -> dict | None:
    """Check the run folder; return the checkpoint to resume from (or None)."""
    run_file = out / RUN_FILE
    if run_file.exists() and not (resume or overwrite):
        raise ValueError(f"{out} already holds a pretraining run: --resume continues it, --overwrite starts again")
    if overwrite:
        for name in (RUN_FILE, CHECKPOINT, METRICS, "summary.json", f"resnet{s['depth']}.pth",
                     f"resnet{s['depth']}_fp16.pth"):
            (out / name).unlink(missing_ok=True)
        return None
    if not resume or not run_file.exists():
        return None
    old = json.loads(run_file.read_text())
    changed = [f"{k}: {old.get(k)!r} -> {s[k]!r}" for k in RECIPE if old.get(k) != s[k]]
    if changed:
        raise ValueError(f"{run_file}: --resume with a different recipe ({'; '.join(changed)}); "
                         "give the run's own settings again")
    if not (out / CHECKPOINT).exists():
        return None
    try:
        return torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as exc:  # written atomically, so only a foreign or damaged file lands here
        raise ValueError(f"{out / CHECKPOINT}: not a readable pretraining checkpoint ({type(exc).__name__}); "
                         "--overwrite starts again") from None


def _keep_metrics_until(path: Path, iteration: int) -> None:
    """Drop the records a killed run logged after its last checkpoint: the resumed run logs them again."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["iter"] <= iteration]
        atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def pretrain(out_dir: str | Path, settings: dict, *, resume: bool = False, overwrite: bool = False,
             log=print) -> dict:
    """Run (or continue) one pretraining; returns the summary (also written to ``summary.json``)."""
    from udaseg.engine import run_lock

    s = dict(settings)
    _check(s)
    out = Path(out_dir)
    run_lock.acquire(out)
    try:
        state = _open_run(out, s, resume, overwrite)
        atomic_write_json(out / RUN_FILE, {k: s[k] for k in RECIPE})
        torch.manual_seed(s["seed"])
        model = Classifier(s["depth"], len(CATEGORIES)).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start = int(state["iteration"])
            _keep_metrics_until(out / METRICS, start)
            log(f"resuming {out} at iteration {start}")
        if start < s["iters"]:
            _train(model, opt, s, out, start, log)
        return _finish(model, s, out, log)
    finally:
        run_lock.release(out)


def _train(model: Classifier, opt: torch.optim.Optimizer, s: dict, out: Path, start: int, log) -> None:
    # image i of the run is image i of the train stream: a resumed run sees the same images
    data = PretrainImages("train", (s["iters"] - start) * s["batch_size"], seed=s["seed"], size=s["size"],
                          offset=start * s["batch_size"])
    loader = torch.utils.data.DataLoader(data, batch_size=s["batch_size"], num_workers=s["workers"],
                                         persistent_workers=False)

    def save(it: int) -> None:
        save_checkpoint(out / CHECKPOINT, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "iteration": it})

    model.train()
    t0, seen = time.time(), 0
    with StopOnSignal() as stop, open(out / METRICS, "a") as metrics:
        for it, (images, labels) in enumerate(loader, start):
            for g in opt.param_groups:
                g["lr"] = lr_at(it, s)
            loss = F.cross_entropy(_forward(model, images, s["amp"]), labels, label_smoothing=s["label_smoothing"])
            if not torch.isfinite(loss):
                raise ValueError(f"pretraining loss is {loss.item()} at iteration {it}; lower lr (now {s['lr']})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(labels)
            done = it + 1
            record = None
            if done % s["log_every"] == 0 or done == s["iters"]:
                record = {"iter": done, "loss": round(loss.item(), 5), "lr": lr_at(it, s),
                          "images_per_sec": round(seen / (time.time() - t0), 1)}
            if done % s["eval_every"] == 0 and done < s["iters"]:
                record = {**(record or {"iter": done}), "heldout": heldout_accuracy(model, s)}
            if record:
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                log(json.dumps(record))
            if done % s["checkpoint_every"] == 0 or done == s["iters"]:
                save(done)
            if stop.signum:
                save(done)
                raise TrainingInterrupted(stop.signum, done, out / CHECKPOINT)


def _finish(model: Classifier, s: dict, out: Path, log) -> dict:
    acc = heldout_accuracy(model, s)
    sd = model.torchvision_state_dict()
    full, half = out / f"resnet{s['depth']}.pth", out / f"resnet{s['depth']}_fp16.pth"
    save_checkpoint(full, sd)
    save_checkpoint(half, {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()})
    summary = {"recipe": {k: s[k] for k in RECIPE}, "heldout": acc, "categories": len(CATEGORIES),
               "files": {full.name: sha256sum(full), half.name: sha256sum(half)}}
    atomic_write_json(out / "summary.json", summary)
    log(f"held-out top-1 {acc['top1']:.1f}%, top-5 {acc['top5']:.1f}% ({s['heldout_images']} images); "
        f"wrote {full} and {half}")
    return summary
