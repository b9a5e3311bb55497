"""One training step of MiT + DAFormer head (the transformer path): reference-style fp32 vs bf16
autocast, with and without channels_last, measured side by side in one process.

    python benchmarks/transformer_step.py                          # MiT-B5 + DAFormer head, 256², batch 1
    python benchmarks/transformer_step.py --arch daformer_mitb0 --size 512 --batch 2

A step = the segmentor forward in train mode (drop path on), cross-entropy on the logits upsampled
bilinearly to the label size (as DAFormer's decode head resizes its logits to the label,
``align_corners=False``), backward, and an AdamW step over DAFormer's parameter groups (lr 6e-5,
wd 0.01, head ×10, no decay on the encoder's norms). Variants:

- ``fp32``: float32, contiguous memory — the reference's step (mmseg on a CPU runs no autocast);
- ``bf16``: CPU bf16 autocast (udaseg's ``train.amp: bf16``);
- ``bf16_cl``: bf16 autocast and channels_last (``train.channels_last: true``).

The variants take turns for ``--rounds`` rounds of ``--steps`` steps on the same batch; each one's
best round is reported, with the ratio to fp32 measured in the same run (a busy machine slows all
variants alike round by round, so the ratio is the meaningful figure). The paper's size (512²
crops, batch 2) takes minutes per step on 2 CPU cores; its memory is in ``hrda_memory.py``.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

VARIANTS = ("fp32", "bf16", "bf16_cl")


def make_step(arch: str, variant: str, batch: int, size: int, k: int = 19, seed: int = 0):
    """A closure running one training step of ``variant``; model and data built once, seeded."""
    from udaseg.models import build_segmentor

    torch.manual_seed(seed)
    model = build_segmentor(arch, k, multi_level=False, bn_mode="trainable").train()
    opt = torch.optim.AdamW(model.param_groups(6e-5), lr=6e-5, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, k, (batch, size, size), generator=g)
    if variant == "bf16_cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant != "fp32"):
            logits = model(x).logits
        logits = F.interpolate(logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def measure(arch: str, batch: int, size: int, steps: int, rounds: int, variants=VARIANTS) -> dict:
    """Best seconds per step of each variant, the variants taking turns round by round."""
    runs = {v: make_step(arch, v, batch, size) for v in variants}
    for step in runs.values():  # warm-up: first-call allocations and kernel selection
        step()
    best = {v: float("inf") for v in variants}
    for _ in range(rounds):
        for v, step in runs.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            best[v] = min(best[v], (time.perf_counter() - t0) / steps)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="daformer_mitb5")
    p.add_argument("--size", type=int, default=256, help="square crop side (DAFormer: 512)")
    p.add_argument("--batch", type=int, default=1, help="images per step (DAFormer: 2 source + 2 target)")
    p.add_argument("--steps", type=int, default=2, help="steps per round")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    t0 = time.time()
    best = measure(args.arch, args.batch, args.size, args.steps, args.rounds)
    print(f"{args.arch}, {args.batch}×{args.size}², train step (forward + CE + backward + AdamW), "
          f"{torch.get_num_threads()} threads, best of {args.rounds} rounds × {args.steps} steps")
    print("\n| variant | s / step | images / s | speed-up over fp32 |\n|---|---|---|---|")
    for v, sec in best.items():
        print(f"| {v} | {sec:.3f} | {args.batch / sec:.2f} | {best['fp32'] / sec:.2f}× |")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
