"""How far fine-tuning moved a ResNet backbone from its init, layer by layer.

For each stage (the stem's conv1, layer1 … layer4) over its convolution weights: the norm of the
change relative to the init's norm, the norm ratio (fine-tuned / init) and the cosine between the
two. A change that is only a shrink (cosine ≈ 1, ratio < 1) is weight decay, not learning: under
SGD with momentum 0.9 the decay acts at 10× the LR, exp(-10 · wd · Σ lr) over the schedule.

Why: benchmark v3's oracle under the paper's recipe (SGD, frozen BN) tracks the quality of the
init's features (BENCHMARKS.md, "What the paper's recipe can reach here"); this says whether the
backbone learnt or only shrank.

    python benchmarks/backbone_drift.py runs/pretrain/r18_12k/resnet18_fp16.pth \\
        runs/recipe_v3/v3r12k_sgd2e-2_warm200/seed0/target_only/checkpoints/last.pt \\
        runs/recipe_v3/v3r12k_adamw1e-3_bntrain/seed0/target_only/checkpoints/last.pt
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")


def backbone_weights(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision-layout file as it is, or a training checkpoint's ``segmentor`` ``backbone.*``."""
    state = torch.load(path, map_location="cpu", weights_only=True)  # as load_checkpoint: no code from the file
    if "segmentor" in state:
        prefix = "backbone."
        return {k[len(prefix):]: v for k, v in state["segmentor"].items() if k.startswith(prefix)}
    return state


def stage_drift(init: dict, tuned: dict, stage: str) -> tuple[float, float, float]:
    """(relative change, norm ratio, cosine) over the stage's 4-d (convolution) weights."""
    keys = [k for k, v in init.items() if k.startswith(stage) and k.endswith("weight") and v.dim() == 4]
    missing = [k for k in keys if k not in tuned]
    if not keys or missing:
        raise KeyError(f"stage {stage!r}: no convolution weights in the init" if not keys
                       else f"stage {stage!r}: {missing[0]} is not in the fine-tuned backbone")
    a = torch.cat([init[k].double().flatten() for k in keys])
    b = torch.cat([tuned[k].double().flatten() for k in keys])
    return float((b - a).norm() / a.norm()), float(b.norm() / a.norm()), float(torch.dot(a, b) / (a.norm() * b.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("init", type=Path, help="the init's weights (torchvision layout)")
    parser.add_argument("tuned", type=Path, nargs="+", help="fine-tuned checkpoints (or weight files)")
    args = parser.parse_args()
    init = backbone_weights(args.init)
    print(f"init: {args.init}")
    print("| checkpoint | stage | relative change | norm ratio | cosine |")
    print("|---|---|---|---|---|")
    for path in args.tuned:
        tuned = backbone_weights(path)
        for stage in STAGES:
            change, ratio, cos = stage_drift(init, tuned, stage)
            print(f"| {path} | {stage} | {change:.3f} | {ratio:.3f} | {cos:.4f} |")


if __name__ == "__main__":
    main()
