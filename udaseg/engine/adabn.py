"""AdaBN (Li et al. 2016): re-estimate BatchNorm statistics on target images, weights untouched.

A reference line for the ablation (DESIGN.md §2): BN statistics alone are a domain-adaptation
lever, so the gain of a method must be read against what re-estimating them already gives.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from udaseg.engine.inputs import normalize_images


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, loader, norm: str, device, max_batches: int | None = None) -> nn.Module:
    """A copy of ``model`` whose BN running statistics are the plain average over ``loader``'s
    images (momentum None = cumulative mean), every weight unchanged. ``loader`` yields dicts
    with a uint8 ``image`` batch (labels, if any, are not read)."""
    model = copy.deepcopy(model).to(device)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ValueError("the model has no BatchNorm layer to adapt")
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()  # only the BN layers: they update statistics, nothing else changes
    seen = 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        model(normalize_images(batch["image"].to(device), norm))
        seen += 1
    if seen == 0:
        raise ValueError("adapt_batchnorm: the loader gave no images")
    for m in bns:
        m.momentum = 0.1
    return model.eval()
