"""What a run is built from: its device (one GPU per rank), batch, seeds, datasets and loaders,
and the evaluation and checkpoint-loading helpers that training, ``evaluate`` and ``predict``
share."""
from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from udaseg.data import datasets as D
from udaseg.data.transforms import build_transforms
from udaseg.engine.device_defaults import resolve_aspp_impl
from udaseg.engine.distributed import DistInfo
from udaseg.engine.evaluation import EvalResult, eval_class_map, evaluate_mapped
from udaseg.engine.inference import config_window, forward_options
from udaseg.engine.memory import restore_malloc_defaults
from udaseg.engine.sampler import ShardSampler
from udaseg.models import build_segmentor


def poly_lr(base: float, it: int, total: int, power: float, warmup_iters: int = 0, warmup_ratio: float = 1e-6) -> float:
    """``base·(1 − it/total)^power``; during the first ``warmup_iters`` iterations scaled up
    linearly from ``warmup_ratio`` (mmcv's PolyLrUpdaterHook with ``warmup='linear'``, which
    DAFormer's ``schedules/poly10warm.py`` uses: 1500 iterations, ratio 1e-6, power 1.0)."""
    lr = base * (1 - it / total) ** power if total > 0 else base
    if it < warmup_iters:
        lr *= 1 - (1 - it / warmup_iters) * (1 - warmup_ratio)
    return lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"train.device is {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device is {name!r}; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device is {name!r} but no CUDA device is available")
    return device


def rank_device(device: torch.device, dist: DistInfo) -> torch.device:
    """The device of this process: under torchrun each rank has its own GPU, ``cuda:LOCAL_RANK``
    (a bare ``cuda`` would put every rank's tensors on GPU 0)."""
    if device.type != "cuda":
        return device
    if dist.enabled:
        if device.index not in (None, dist.local_rank):
            raise ValueError(f"train.device is {device} but this is rank {dist.rank} with LOCAL_RANK "
                             f"{dist.local_rank}: under torchrun use train.device=cuda (or auto)")
        return torch.device("cuda", dist.local_rank)
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def per_process_batch(data_cfg: dict, world_size: int) -> int:
    """Images per domain per process: ``data.batch_size``, or ``data.global_batch_size`` split
    evenly across the processes."""
    glob = data_cfg["global_batch_size"]
    if glob is None:
        bs = data_cfg["batch_size"]
        if bs < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {bs}")
        return bs
    if glob < 1 or glob % world_size:
        raise ValueError(f"data.global_batch_size={glob} cannot be split evenly across {world_size} "
                         f"process(es); choose a multiple of {world_size}")
    return glob // world_size


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_revision() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def loader_worker_init(worker_id: int) -> None:
    # A forked worker inherits the trainer's malloc tuning, which keeps freed memory for the
    # training step's large buffers; a loader worker would only hold on to it.
    restore_malloc_defaults()
    # Ctrl-C reaches the whole process group and a scheduler's SIGTERM every process of the job: a
    # worker that died of it made torch abort the run ("worker is killed by signal") before it
    # could save. The main process decides (engine/interrupt.py) and ends its workers itself.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # Transforms draw from per-sample generators; this only fixes any global-RNG use in workers.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_split(spec: dict, num_classes: int, seed: int, *, with_labels: bool = True) -> D.SegmentationDataset:
    """A dataset from a ``data.source`` / ``data.target`` / ``data.val`` config section."""
    kind = spec["kind"]
    kwargs = {"root": spec["root"], "transform": build_transforms(spec.get("transforms")), "seed": seed}
    ds_classes = spec.get("num_classes") or num_classes
    if kind == "cityscapes":
        kwargs.update(split=spec.get("split") or "train", num_classes=ds_classes, with_labels=with_labels)
    elif kind == "synthia":
        kwargs.update(num_classes=ds_classes, split_list=spec.get("split_list"))
    elif kind == "gta5":
        kwargs.update(split_list=spec.get("split_list"))
    elif kind == "folder":
        kwargs.pop("seed")
    ds = D.build_dataset(kind, **kwargs)
    if with_labels and kind != "folder" and ds.num_classes != num_classes:
        raise ValueError(f"dataset {ds.name} has {ds.num_classes} classes but model.num_classes is {num_classes}")
    return ds


def required_splits(cfg: dict) -> list[tuple[str, bool]]:
    """(data section, with labels) of every split a training run of ``cfg`` reads."""
    from udaseg.engine import components
    from udaseg.methods import build_method

    m = build_method(cfg["method"], cfg["model"]["num_classes"], 1, cfg["model"]["multi_level"])
    out = [("source", True)] if m.uses_source else []
    if m.uses_target_images or any(c.needs_target_images for c in components.enabled(cfg)):
        out.append(("target", m.uses_target_labels))
    if cfg["train"]["val_every"]:
        out.append((cfg["train"]["validate_on"], True))
    return out


def check_splits(cfgs: list[dict]) -> None:
    """Open every split that the runs of ``cfgs`` (a run's stages) will read, so that a missing or
    empty one (an error naming it) stops the command before stage 1 trains, not after."""
    seen = set()
    for cfg in cfgs:
        for section, labels in required_splits(cfg):
            spec = cfg["data"][section]
            key = (repr(sorted(spec.items())), labels)
            if key not in seen:
                seen.add(key)
                build_split(spec, cfg["model"]["num_classes"], cfg["seed"], with_labels=labels)


def build_val_loader(cfg: dict, dist: DistInfo | None = None, section: str = "val") -> DataLoader:
    """The loader of an evaluation split (``data.val`` or ``data.dev``); under DDP each rank gets
    every W-th image (each image exactly once, no padding duplicates) and ``evaluate`` all-reduces
    the confusion matrix."""
    if section not in ("val", "dev"):
        raise ValueError(f"evaluation split section {section!r}: expected val or dev (train.validate_on)")
    k = cfg["eval"]["num_classes"] or cfg["model"]["num_classes"]
    ds = build_split(cfg["data"][section], k, cfg["seed"])
    dist = dist or DistInfo()
    return DataLoader(ds, batch_size=cfg["eval"]["batch_size"], sampler=ShardSampler(len(ds), dist.rank, dist.world_size),
                      num_workers=min(cfg["data"]["workers"], 2))


def evaluate_model(model, cfg: dict, device, loader: DataLoader, dist: DistInfo | None = None) -> EvalResult:
    """Evaluate ``model`` on ``loader`` with the config's eval settings (class set, flip, scales,
    sliding window) and its forward options (normalisation, autocast, memory format: those of
    ``udaseg evaluate`` and ``udaseg predict`` too)."""
    k_eval, class_map = eval_class_map(cfg)
    fw = forward_options(cfg, device)
    window, stride = config_window(cfg)
    return evaluate_mapped(model, loader, k_eval, fw.norm, device, flip=cfg["eval"]["flip"],
                           scales=tuple(cfg["eval"]["scales"]), window=window, stride=stride,
                           autocast_dtype=fw.autocast_dtype,
                           channels_last=fw.channels_last, class_map=class_map,
                           distributed=dist is not None and dist.enabled)


def segmentor_from_config(mc: dict, aspp_impl: str, *, pretrained: bool = True) -> torch.nn.Module:
    """The segmentor of a ``model`` config section, on the CPU, with its init weights
    (``model.pretrained``) unless ``pretrained`` is False (a checkpoint's weights come next)."""
    return build_segmentor(mc["arch"], mc["num_classes"], mc["multi_level"], mc["bn_mode"],
                           mc["pretrained"] if pretrained else None,
                           pretrained_sha256=mc["pretrained_sha256"] if pretrained else None,
                           aspp_impl=aspp_impl, input_norm=mc["input_norm"],
                           feature_stage=mc.get("feature_stage"),  # older configs: no key
                           hrda=mc.get("hrda"))  # older configs: no key (no HRDA)


def load_segmentor(state: dict, device) -> torch.nn.Module:
    """The segmentor of a udaseg checkpoint, in eval mode on ``device``."""
    mc = state["config"]["model"]
    device = torch.device(device)
    model = segmentor_from_config(mc, resolve_aspp_impl(mc.get("aspp_impl", "taps"), device),  # older: no key
                                  pretrained=False)
    model.load_state_dict(state["segmentor"])
    return model.to(device).eval()
