"""``udaseg pretrain``: train a backbone as a classifier on the pretraining set (ImageNet's role).

    udaseg pretrain --out runs/pretrain/demo_resnet18                  # the shipped demo_resnet18
    udaseg pretrain --out runs/pretrain/demo_resnet18 --resume         # after a kill: exactly on
    udaseg pretrain --out runs/pretrain/r18_long iters=6000            # recipe keys as key=value
    udaseg pretrain --out runs/pretrain/mit_b0 arch=mit_b0             # a MiT encoder (DAFormer's)

The net is the plain classifier of its family, the data ``udaseg.pretraining`` rendered on the fly:

- ``arch=resnet18`` | ``resnet50`` | ``resnet101``: ``ResNetBackbone(..., "torchvision",
  output_stride=32)``, global average pool, linear ``fc``; it writes ``resnet{depth}.pth`` in the
  torchvision layout (``conv1.weight`` … ``fc.*``), which ``model.pretrained`` loads into
  ``deeplabv2_resnet{depth}_tv``;
- ``arch=mit_b0`` … ``mit_b5``: the MiT encoder, the mean of its last stage's tokens (after
  ``norm4``), linear ``head`` — SegFormer's ImageNet classifier; it writes ``mit_bX.pth`` in the
  original NVlabs layout (``patch_embed1.proj.weight`` … ``head.*``), which ``model.pretrained``
  loads strictly into ``daformer_mitbX`` / ``segformer_mitbX`` (``head.*`` dropped by name).

The run folder gets ``pretrain.json`` (the recipe), ``metrics.jsonl``, ``checkpoint.pt`` (written
atomically every ``checkpoint_every`` iterations and on Ctrl-C / SIGTERM), and at the end
``{arch}.pth``, its float16 copy ``{arch}_fp16.pth`` (what the package ships) and ``summary.json``
with the held-out accuracy and both files' SHA-256.

Recipe (``RECIPE``), for the ResNets: torchvision's classic ImageNet recipe scaled to the set — SGD
momentum 0.9, weight decay on every parameter (torchvision references/classification, ResNet: lr
0.1 for batch 256, wd 1e-4), linear warm-up then cosine decay (Goyal et al. 2017 warm-up; cosine as
torchvision's newer recipes), label smoothing 0.1 (torchvision's new recipe), bf16 autocast and
channels_last on the CPU. Chosen from held-out pretraining accuracy alone, before any
segmentation run. For MiT (``MIT_RECIPE``, the defaults an ``arch=mit_bX`` run starts from): the
DeiT recipe SegFormer's ImageNet pretraining follows (through PVT) — AdamW, lr 5e-4 per 512 images
(facebookresearch/deit main.py ``--lr 5e-4``, scaled by batch / 512), weight decay 0.05 except on
biases and norms (timm's ``create_optimizer``), cosine, label smoothing 0.1.
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
from udaseg.engine.builders import loader_worker_init
from udaseg.engine.interrupt import StopOnSignal, TrainingInterrupted, loader_iteration
from udaseg.models.backbones import DEPTHS, ResNetBackbone
from udaseg.models.deeplabv2 import sha256sum
from udaseg.models.mit import MIT_CONFIGS, build_mit
from udaseg.pretraining import PretrainImages
from udaseg.pretraining.images import CATEGORY_SETS, MIN_SCALE, STREET_OBJECTS

RECIPE = {
    "arch": "resnet18",      # resnet18 | resnet50 | resnet101 | mit_b0 … mit_b5
    "iters": 3000,
    "batch_size": 128,       # one image of every category per batch (labels = index % 128)
    "optimizer": "sgd",      # "sgd" (momentum, decay on every parameter) | "adamw" (no decay on biases / norms)
    "lr": 0.1,
    "momentum": 0.9,         # SGD only
    "weight_decay": 5e-5,
    "warmup_iters": 100,
    "label_smoothing": 0.1,
    "size": 96,
    "min_object_scale": MIN_SCALE,  # the smallest object's share of the frame's side (objects span it–1)
    "street_objects": "drawn",  # "drawn" | "world": the street categories' appearance (pretraining/images.py)
    "seed": 0,
    "amp": "bf16",           # "bf16" | "none"
    "heldout_images": 6400,  # 50 per category
}
# an arch=mit_bX run's defaults (keys given on the command line still win): DeiT's recipe
MIT_RECIPE = {"optimizer": "adamw", "lr": 5e-4 * 128 / 512, "weight_decay": 0.05}
# may differ on --resume: they do not change the result
FREE_KEYS = {"workers": 1, "log_every": 20, "checkpoint_every": 100, "eval_every": 1000}
RUN_FILE, CHECKPOINT, METRICS = "pretrain.json", "checkpoint.pt", "metrics.jsonl"
ARCHS = (*(f"resnet{d}" for d in sorted(DEPTHS)), *MIT_CONFIGS)
# run files written before a key existed: the value those runs used (literals, whatever the defaults become)
_LEGACY = {"optimizer": "sgd", "min_object_scale": 0.45, "street_objects": "drawn"}


class ResNetClassifier(nn.Module):
    """ResNet (output stride 32) → global average pool → linear ``fc``."""

    def __init__(self, depth: int, num_classes: int):
        super().__init__()
        self.backbone = ResNetBackbone(depth, "torchvision", output_stride=32)
        self.fc = nn.Linear(self.backbone.layer4_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).layer4.mean((2, 3)))

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """The torchvision ``resnet{depth}`` key layout: the backbone's names are torchvision's."""
        sd = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}
        sd["fc.weight"], sd["fc.bias"] = self.fc.weight.detach().clone(), self.fc.bias.detach().clone()
        return sd


class MiTClassifier(nn.Module):
    """MiT encoder → mean of the last stage's tokens → linear ``head`` (SegFormer's ImageNet classifier)."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.backbone = build_mit(arch)
        self.head = nn.Linear(self.backbone.embed_dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """The original NVlabs ``mit_bX.pth`` layout: the encoder's names plus ``head.*``."""
        sd = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}
        sd["head.weight"], sd["head.bias"] = self.head.weight.detach().clone(), self.head.bias.detach().clone()
        return sd


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    if arch in MIT_CONFIGS:
        return MiTClassifier(arch, num_classes)
    return ResNetClassifier(int(arch.removeprefix("resnet")), num_classes)


def make_optimizer(model: nn.Module, s: dict) -> torch.optim.Optimizer:
    if s["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    # timm create_optimizer(filter_bias_and_bn): biases and norm weights (1-d tensors) are not decayed
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=s["lr"], weight_decay=s["weight_decay"])


def parse_settings(overrides: list[str]) -> dict:
    """RECIPE and FREE_KEYS with ``key=value`` overrides, each checked by name, type and range."""
    settings = {**RECIPE, **FREE_KEYS}
    arch = next((item.partition("=")[2] for item in overrides if item.partition("=")[0] == "arch"), RECIPE["arch"])
    if arch in MIT_CONFIGS:
        settings.update(MIT_RECIPE)
    for item in overrides:
        key, _, text = item.partition("=")
        if key not in settings:
            hint = f" (depth={text} is now arch=resnet{text})" if key == "depth" else ""
            raise ValueError(f"unknown pretrain setting {key!r}{hint}; valid: {', '.join(settings)}")
        kind = type(settings[key])
        try:
            value = kind(text) if kind is not int else int(text)
        except ValueError:
            raise ValueError(f"pretrain setting {key}={text!r} is not a valid {kind.__name__}") from None
        settings[key] = value
    _check(settings)
    return settings


def _check(s: dict) -> None:
    if s["arch"] not in ARCHS:
        raise ValueError(f"pretrain setting arch={s['arch']!r}: expected one of {', '.join(ARCHS)}")
    if s["optimizer"] not in ("sgd", "adamw"):
        raise ValueError(f"pretrain setting optimizer={s['optimizer']!r}: expected 'sgd' or 'adamw'")
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
    if not 0 < s["min_object_scale"] <= 1:
        raise ValueError(f"pretrain setting min_object_scale={s['min_object_scale']}: "
                         "the smallest object's share of the frame's side, in (0, 1]")
    if s["street_objects"] not in STREET_OBJECTS:
        raise ValueError(f"pretrain setting street_objects={s['street_objects']!r}: expected one of "
                         f"{', '.join(STREET_OBJECTS)}")
    if s["size"] < 32:
        raise ValueError(f"pretrain setting size={s['size']}: at least 32 (the net's output stride)")


def lr_at(it: int, s: dict) -> float:
    """Linear warm-up over ``warmup_iters``, then cosine decay to 0 at ``iters``."""
    if it < s["warmup_iters"]:
        return s["lr"] * (it + 1) / s["warmup_iters"]
    t = (it - s["warmup_iters"]) / max(1, s["iters"] - s["warmup_iters"])
    return 0.5 * s["lr"] * (1 + math.cos(math.pi * t))


def _forward(model: nn.Module, images: torch.Tensor, amp: str) -> torch.Tensor:
    x = normalize_images(images, "imagenet").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        return model(x).float()


@torch.no_grad()
def heldout_accuracy(model: nn.Module, s: dict) -> dict:
    """Top-1 / top-5 on ``heldout_images`` images of the held-out split, and top-1 per kind."""
    was_training = model.training
    model.eval()
    data = PretrainImages("heldout", s["heldout_images"], seed=s["seed"], size=s["size"],
                          min_scale=s["min_object_scale"], street_objects=s["street_objects"])
    categories = CATEGORY_SETS[s["street_objects"]]
    loader = torch.utils.data.DataLoader(data, batch_size=256, num_workers=s["workers"],
                                         worker_init_fn=loader_worker_init)
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
            tally = kinds.setdefault(categories[label].kind, [0, 0])
            tally[0] += hit
            tally[1] += 1
    model.train(was_training)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n,
            "top1_by_kind": {k: 100.0 * h / c for k, (h, c) in sorted(kinds.items())}}


def _open_run(out: Path, s: dict, resume: bool, overwrite: bool) -> dict | None:
    """Check the run folder; return the checkpoint to resume from (or None)."""
    run_file = out / RUN_FILE
    if run_file.exists() and not (resume or overwrite):
        raise ValueError(f"{out} already holds a pretraining run: --resume continues it, --overwrite starts again")
    if overwrite:
        for name in (RUN_FILE, CHECKPOINT, METRICS, "summary.json", f"{s['arch']}.pth", f"{s['arch']}_fp16.pth"):
            (out / name).unlink(missing_ok=True)
        return None
    if not resume or not run_file.exists():
        return None
    old = json.loads(run_file.read_text())
    if "depth" in old:  # written before MiT: the ResNet's depth was the recipe's key
        old["arch"] = f"resnet{old.pop('depth')}"
    old = {**_LEGACY, **old}
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
        classes = len(CATEGORY_SETS[s["street_objects"]])
        model = build_classifier(s["arch"], classes).to(memory_format=torch.channels_last)
        opt = make_optimizer(model, s)
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


def _train(model: nn.Module, opt: torch.optim.Optimizer, s: dict, out: Path, start: int, log) -> None:
    # image i of the run is image i of the train stream: a resumed run sees the same images
    data = PretrainImages("train", (s["iters"] - start) * s["batch_size"], seed=s["seed"], size=s["size"],
                          offset=start * s["batch_size"], min_scale=s["min_object_scale"],
                          street_objects=s["street_objects"])
    # workers ignore SIGINT / SIGTERM (a scheduler signals every process of the job; one killed
    # would make torch abort before the checkpoint): the main process stops and saves
    loader = torch.utils.data.DataLoader(data, batch_size=s["batch_size"], num_workers=s["workers"],
                                         persistent_workers=False, worker_init_fn=loader_worker_init)

    def save(it: int) -> None:
        save_checkpoint(out / CHECKPOINT, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "iteration": it})

    model.train()
    t0, seen = time.time(), 0
    with StopOnSignal() as stop, open(out / METRICS, "a") as metrics, loader_iteration(loader) as batches:
        for it, (images, labels) in enumerate(batches, start):
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


def _finish(model: nn.Module, s: dict, out: Path, log) -> dict:
    acc = heldout_accuracy(model, s)
    sd = model.export_state_dict()
    full, half = out / f"{s['arch']}.pth", out / f"{s['arch']}_fp16.pth"
    save_checkpoint(full, sd)
    save_checkpoint(half, {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()})
    summary = {"recipe": {k: s[k] for k in RECIPE}, "heldout": acc,
               "categories": len(CATEGORY_SETS[s["street_objects"]]),
               "files": {full.name: sha256sum(full), half.name: sha256sum(half)}}
    atomic_write_json(out / "summary.json", summary)
    log(f"held-out top-1 {acc['top1']:.1f}%, top-5 {acc['top5']:.1f}% ({s['heldout_images']} images); "
        f"wrote {full} and {half}")
    return summary
