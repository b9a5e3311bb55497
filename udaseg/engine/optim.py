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
schedule reads, whichever optimiser runs.
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
