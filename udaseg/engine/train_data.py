"""A training run's data: the endless source / target loaders and the validation loader."""
from __future__ import annotations

from torch.utils.data import DataLoader

from udaseg.config import ConfigError
from udaseg.data.rcs import RareClassCropDataset, RareClassSampler, class_pixel_stats
from udaseg.engine.builders import build_split, build_val_loader, loader_worker_init
from udaseg.engine.distributed import DistInfo, barrier
from udaseg.engine.sampler import InfiniteBatchSampler


def train_loaders(cfg: dict, method, components, dist: DistInfo, batch_size: int, start_iter: int,
                  device) -> dict[str, DataLoader]:
    """{"source", "target"}: the loaders the method and components read, each sampler starting at
    batch ``start_iter`` (a resumed run sees the batches the uninterrupted one would)."""
    k, seed = cfg["model"]["num_classes"], cfg["seed"]
    loaders = {}

    def loader(ds, seed, sampler=None):
        sampler = sampler or InfiniteBatchSampler(len(ds), batch_size, seed=seed, start_batch=start_iter,
                                                  rank=dist.rank, world_size=dist.world_size)
        workers = cfg["data"]["workers"]
        return DataLoader(ds, batch_sampler=sampler, num_workers=workers, worker_init_fn=loader_worker_init,
                          pin_memory=cfg["data"]["pin_memory"] and device.type == "cuda",
                          persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)

    if method.uses_source:
        src = build_split(cfg["data"]["source"], k, seed)
        rcs = cfg["data"]["source"]["rcs"]
        sampler = None
        if rcs["enabled"]:  # rare-class sampling: class statistics counted once, cached beside the data
            if dist.is_main:
                class_pixel_stats(src)
            barrier(dist)
            sampler = RareClassSampler(class_pixel_stats(src), batch_size, temperature=rcs["temperature"],
                                       min_pixels=rcs["min_pixels"], seed=seed, start_batch=start_iter,
                                       rank=dist.rank, world_size=dist.world_size)
            src = RareClassCropDataset(src, min_pixels=rcs["min_pixels"], min_crop_ratio=rcs["min_crop_ratio"])
        loaders["source"] = loader(src, seed, sampler)
    if method.uses_target_images or any(c.needs_target_images for c in components):
        if not method.uses_target_labels and cfg["data"]["target"]["transforms"].get("cat_max_ratio") is not None:
            raise ConfigError("config key 'data.target.transforms.cat_max_ratio' chooses crops by their labels, but "
                              f"{method.name} trains on unlabelled target images (DAFormer's pipeline reads the "
                              "target's ground truth for it; udaseg does not): remove it")
        tgt = build_split(cfg["data"]["target"], k, seed + 1, with_labels=method.uses_target_labels)
        loaders["target"] = loader(tgt, seed + 1)
    return loaders


def validation_loader(cfg: dict, dist: DistInfo) -> DataLoader | None:
    """The loader of ``train.validate_on``, or None when the run never validates — built at the
    start, so a missing val / dev split fails then, not hours in."""
    return build_val_loader(cfg, dist, cfg["train"]["validate_on"]) if cfg["train"]["val_every"] else None
