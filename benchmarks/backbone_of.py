"""Write the backbone of a training checkpoint as a torchvision-layout init file (a diagnostic).

Benchmark v3 asks what the paper's SGD recipe gets from a given set of features. Feeding it the
backbone of another run (the AdamW oracle's, the source-only model's) measures that directly; the
result is a diagnostic, never a benchmark row (such an init has seen segmentation labels).

    python benchmarks/backbone_of.py RUN/checkpoints/last.pt runs/diag/source_only_backbone.pth
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from backbone_drift import backbone_weights


def write_backbone(checkpoint: Path, out: Path) -> int:
    """Save the checkpoint's ``backbone.*`` tensors (prefix dropped) atomically; returns their count."""
    state = backbone_weights(checkpoint)
    if not any(k.startswith("layer4.") for k in state):
        raise KeyError(f"{checkpoint}: no ResNet backbone (no 'layer4.*' key) to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({k: v.contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, out)
    return len(state)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a training checkpoint (its 'segmentor' is read)")
    ap.add_argument("out", type=Path, help="the .pth to write (torchvision layout)")
    args = ap.parse_args(argv)
    print(f"{args.out}: {write_backbone(args.checkpoint, args.out)} tensors from {args.checkpoint}")


if __name__ == "__main__":
    main()
