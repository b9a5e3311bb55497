"""Optimisers by name, for the segmenter (``train.optimizer``) and the discriminators
(``train.optimizer_d``).

- ``sgd``: momentum SGD with L2 weight decay — the paper's segmenter optimiser (§4.3; ADVENT
  ``advent/domain_adaptation/train_UDA.py``: lr 2.5e-4, momentum 0.9, weight decay 5e-4), a
  *fine-tuning* recipe for ImageNet weights.
- ``adamw``: AdamW with decoupled weight decay, for training from scratch (the embedded
  benchmark; DESIGN.md §7: under SGD the from-scratch oracle reached 23.6 mIoU, under Adam 41.9).
- ``adam``: Adam without weight decay — the references' discriminator optimiser (FADA / ADVENT:
  lr 1e-4, betas (0.9, 0.99)).

Parameter groups keep their ``lr_mult`` (the segmenter's heads at 10×), which the trainer's poly
schedule reads, whichever optimiser runs, and a group's own ``weight_decay`` (0 for the MiT
encoder's norms, ``train.no_decay_norm``), which torch's optimisers prefer to their default.
"""
from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("sgd", "adam", "adamw")


def build_optimizer(kind: str, params: Iterable, *, lr: float, momentum: float = 0.9,
                    betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                    key: str = "train.optimizer") -> torch.optim.Optimizer:
    """An optimiser named ``kind`` over ``params`` (tensors or parameter groups); ``key`` names
    the config key in the error for an unknown kind."""
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    raise ValueError(f"config key {key!r} is {kind!r}; expected one of {', '.join(OPTIMIZERS)}")


def resolve_no_decay_norm(value, arch: str) -> bool | str:
    """``train.no_decay_norm`` for ``arch``: ``auto`` is DAFormer's choice — ``True`` for the
    transformer archs (``paramwise_cfg`` ``norm=dict(decay_mult=0.0)``, added for MiT backbones only:
    ``lhoyer/DAFormer:experiments.py`` ``if 'mit' in backbone``; the final config
    ``configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py``), ``False``
    (every parameter decays) for DeepLab-V2, which takes no other value (config.py refuses it)."""
    from udaseg.models import TRANSFORMER_SEGMENTORS

    transformer = arch in TRANSFORMER_SEGMENTORS
    if value == "auto":
        return transformer
    if not transformer and value is not False:
        raise ValueError(f"config key 'train.no_decay_norm' is {value!r}; {arch} takes auto or false")
    return value


def segmenter_param_groups(model, arch: str, train_cfg: dict) -> list[dict]:
    """The segmenter's optimiser groups from the ``train`` section: ``lr``, ``head_lr_mult`` and,
    for the transformer archs, ``no_decay_norm`` (``TransformerSegmentor.param_groups``)."""
    from udaseg.models import TRANSFORMER_SEGMENTORS

    no_decay = resolve_no_decay_norm(train_cfg.get("no_decay_norm", "auto"), arch)  # older configs: no key
    if arch not in TRANSFORMER_SEGMENTORS:  # DeepLab-V2: its groups as they always were (no_decay is False)
        return model.param_groups(train_cfg["lr"], train_cfg["head_lr_mult"])
    return model.param_groups(train_cfg["lr"], train_cfg["head_lr_mult"], no_decay_norm=no_decay)
