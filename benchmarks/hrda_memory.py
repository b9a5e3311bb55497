"""Saved-for-backward memory of one HRDA training pass at the paper's size, counted on the meta
device (no compute), against DAFormer's pass and a single-scale pass over the whole HR crop.

A pass = the student forward in train mode (drop path on, as in training) plus the loss it is
trained with: the pixel-weighted cross-entropy of the self-training passes through
``prediction_terms`` (for HRDA: 0.9 × the fused logits upsampled to the 1024² crop + 0.1 × the
detail logits on their 512² box). A training step runs its passes one after the other, each with
its own backward (source, ClassMix, MIC), so the peak of saved activations is one pass's; the EMA
teacher's pseudo-label forward and the frozen ImageNet encoder run without a graph. Bytes are
summed over distinct storages (``udaseg.engine.autograd_memory.saved_storages``); "activations"
leaves out the model's own parameters, "incl. weights" counts every saved storage. float32: the
meta device has no autocast kernels (``benchmarks/saved_activations.py``), so bf16 is not counted
here; ``--cpu`` repeats a small case on real CPU tensors as a check of the meta count (meta
counts a few small extras: +0.2–0.5 % for MiT-B0 at 64–128 px, tests/test_hrda.py).

Measured (this script, MiT-B5, K = 19, fp32 activations per pass): DAFormer 512² 2.41 GiB
(batch 1) / 4.81 (batch 2); HRDA 1024² (context 512² + detail 512²) 5.02 / 10.02; one
single-scale pass over the whole 1024² crop 13.19 / 26.33.

    python benchmarks/hrda_memory.py                          # MiT-B5, K = 19, batch 1 and 2
    python benchmarks/hrda_memory.py --arch daformer_mitb0 --crop 128 --hr-crop 64 --batch 1 --cpu
"""
import argparse
import time

import torch
from torch import nn

from udaseg.engine.autograd_memory import saved_storages
from udaseg.engine.self_training import pixel_weighted_cross_entropy
from udaseg.methods.base import prediction_terms
from udaseg.models import build_segmentor

GIB = 2 ** 30


class TrainingPass(nn.Module):
    """``model(x)`` and its weighted loss, labels and pixel weights all ones/zeros (their values
    do not change what is saved)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n, _, h, w = x.shape
        labels = torch.zeros(n, h, w, dtype=torch.long, device=x.device)
        weight = torch.ones(n, h, w, device=x.device)
        terms = prediction_terms("loss", 1.0, out, labels, pixel_weighted_cross_entropy, weight)
        return sum(wt * v for wt, v in terms.values())


def measure(arch: str, k: int, size: int, batch: int, device: str, hrda: dict | None) -> dict:
    torch.manual_seed(0)
    with torch.device(device):
        model = build_segmentor(arch, k, multi_level=False, bn_mode="trainable", hrda=hrda).train()
    step = TrainingPass(model)
    own = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    x = torch.randn(batch, 3, size, size, device=device)
    saved, _ = saved_storages(step, x)
    return {"activations": sum(v for s, v in saved.items() if s not in own), "all": sum(saved.values()),
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="daformer_mitb5")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--crop", type=int, default=1024, help="HRDA's outer (training) crop, square (1024)")
    p.add_argument("--hr-crop", type=int, default=512, help="HRDA's detail crop, square (512)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2], help="images per pass (HRDA / DAFormer: 2)")
    p.add_argument("--cpu", action="store_true", help="also count on real CPU tensors (use small sizes)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    hrda = {"enabled": True, "hr_crop_size": [args.hr_crop, args.hr_crop]}
    half = args.crop // 2
    cases = [  # name, input side, hrda
        (f"DAFormer ({half}² crop)", half, None),
        (f"HRDA ({args.crop}² crop: context {half}², detail {args.hr_crop}²)", args.crop, hrda),
        (f"single scale on the whole {args.crop}² crop", args.crop, None),
    ]
    devices = ["meta"] + (["cpu"] if args.cpu else [])
    print(f"{args.arch}, K = {args.classes}, train mode, fp32; GiB saved for backward by one training pass "
          f"(forward + loss)\n")
    print("| pass | batch | device | activations | incl. weights | parameters |")
    print("|---|---|---|---|---|---|")
    checks = []
    for name, size, h in cases:
        for batch in args.batch:
            got = {}
            for device in devices:
                r = got[device] = measure(args.arch, args.classes, size, batch, device, h)
                print(f"| {name} | {batch} | {device} | {r['activations'] / GIB:.3f} | {r['all'] / GIB:.3f} | "
                      f"{r['params']:,} |", flush=True)
            if "cpu" in got:
                checks.append(f"{name}, batch {batch}: {got['meta']['activations']:,} vs "
                              f"{got['cpu']['activations']:,}")
    if checks:
        print("\nactivation bytes, meta vs CPU:\n" + "\n".join(checks))
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
