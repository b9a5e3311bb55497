"""Turning uint8 image batches into network inputs on the device.

Images travel as uint8 (4× less to copy than float) and are normalised on the device, in the
convention of the init weights:

- ``caffe``: BGR, minus the DeepLab/ADVENT mean (104.00698793, 116.66876762, 122.67891434), no
  scaling — the Caffe-converted DeepLab ResNets expect this;
- ``imagenet``: RGB / 255, minus (0.485, 0.456, 0.406), over (0.229, 0.224, 0.225) — torchvision;
- ``per_image``: each image's own channel mean and std (for from-scratch training).
"""
from __future__ import annotations

import torch

CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)  # ADVENT IMG_MEAN
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("caffe", "imagenet", "per_image")


def normalize_images(images: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB → normalised input in torch's default float dtype (float32 unless a
    program sets another: the DDP test trains in float64, where 1 and 2 processes agree to 1e-15)."""
    x = images.to(torch.get_default_dtype())
    if mode == "caffe":
        mean = torch.tensor(CAFFE_MEAN_BGR, device=x.device).view(1, 3, 1, 1)
        return x.flip(1) - mean
    if mode == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std
    if mode == "per_image":
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True).clamp_min(1.0)
        return (x - mean) / std
    raise ValueError(f"unknown input_norm {mode!r}; expected one of {INPUT_NORMS}")
