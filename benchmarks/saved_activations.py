"""Saved-for-backward memory of one segmentor forward pass, ``model.bn_mode=frozen``: the old
frozen BN (eval-mode ``nn.BatchNorm2d``, affine params without grad) vs ``FrozenBatchNorm2d``.

Every tensor autograd saves goes through ``torch.autograd.graph.saved_tensors_hooks``; bytes
are summed over *distinct storages* (key: the storage's C++ address ``untyped_storage()._cdata``,
which meta tensors have too, so views and tensors saved by several ops count once on the meta
device as on the CPU). "activations" leaves out the model's own parameters and buffers (they
exist anyway; under autocast their bf16 copies are new tensors and do count); "incl. weights"
counts every saved storage. "BN inputs" = the distinct inputs of the backbone's BN layers, what
the new layer is meant to stop keeping. The pass is the segmentor forward in train mode (no
loss, no upsampling), batch 1, ASPP ``taps``.

The meta device (no compute, full paper sizes) runs float32 only: autocast has no meta kernel
set (under ``torch.autocast("cpu")`` a meta conv stays float32), so bf16 is measured on the
CPU at a reduced size, where the float32 count is also compared with the meta count.

    python benchmarks/saved_activations.py      # R101: GTA5 1280×720, Cityscapes 1024×512, SYNTHIA 1280×760
    python benchmarks/saved_activations.py --arch deeplabv2_resnet18 --meta gta5=128x64:19 --cpu 64x32
"""
import argparse
import copy
import time

import torch
from torch import nn

from udaseg.engine.autograd_memory import saved_storages
from udaseg.models import build_segmentor
from udaseg.models.frozen_bn import FrozenBatchNorm2d

GIB = 2 ** 30
PAPER_PASSES = "GTA5 source=1280x720:19,Cityscapes target=1024x512:19,SYNTHIA source=1280x760:16"


def old_frozen_bn(model: nn.Module) -> nn.Module:
    """The pre-FrozenBatchNorm2d ``frozen`` mode: each FrozenBatchNorm2d back to a plain
    nn.BatchNorm2d sharing its tensors (DeepLabV2.train() keeps it in eval mode)."""
    for name, child in model.named_children():
        if isinstance(child, FrozenBatchNorm2d):
            bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, device="meta")
            bn.weight, bn.bias = child.weight, child.bias
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(bn, buf, getattr(child, buf))
            model.add_module(name, bn.train(child.training))
        else:
            old_frozen_bn(child)
    return model


def saved_bytes(model: nn.Module, x: torch.Tensor, autocast_dtype=None) -> dict[str, int]:
    """Bytes saved for backward by ``model(x)``, per distinct storage (see module doc)."""
    own = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    saved, bn_in = saved_storages(model, x, bns, autocast_dtype)
    return {"activations": sum(v for k, v in saved.items() if k not in own),
            "all": sum(saved.values()), "bn_inputs": sum(bn_in.values())}


def _pass(text: str) -> tuple[str, int, int, int]:
    name, rest = text.rsplit("=", 1)
    size, k = rest.split(":") if ":" in rest else (rest, "19")
    w, h = (int(v) for v in size.lower().split("x"))
    return name, w, h, int(k)


def _pair(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def measure(arch: str, k: int, w: int, h: int, device: str, autocast_dtype=None) -> dict[str, dict[str, int]]:
    """Old vs new frozen BN on the same weights (both built on ``device``)."""
    torch.manual_seed(0)
    with torch.device(device):
        new = build_segmentor(arch, k, bn_mode="frozen").train()
    old = old_frozen_bn(copy.deepcopy(new)).train()
    x = torch.randn(1, 3, h, w, device=device)
    return {"old": saved_bytes(old, x, autocast_dtype), "new": saved_bytes(new, x, autocast_dtype)}


def _row(name, w, h, k, device, precision, r) -> str:
    old, new = r["old"], r["new"]
    return (f"| {name} | {w}×{h} | {k} | {device} | {precision} | {old['bn_inputs'] / GIB:.3f} | "
            f"{old['activations'] / GIB:.3f} | {new['activations'] / GIB:.3f} | "
            f"{new['activations'] / old['activations']:.3f} | {old['all'] / GIB:.3f} | {new['all'] / GIB:.3f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="deeplabv2_resnet101")
    p.add_argument("--meta", default=PAPER_PASSES,
                   help="comma-separated NAME=WxH[:K] passes counted on the meta device ('' for none)")
    p.add_argument("--cpu", type=_pair, default=(320, 180), help="WxH of the real-tensor CPU cross-check")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU cross-check")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    print(f"{args.arch}, multi-level, bn_mode=frozen, batch 1, train mode; GiB saved for backward per pass")
    print("old = eval-mode nn.BatchNorm2d (affine without grad), new = FrozenBatchNorm2d\n")
    print("| pass | W×H | K | device | precision | BN inputs | old | new | new/old "
          "| old incl. weights | new incl. weights |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in filter(None, args.meta.split(",")):
        name, w, h, k = _pass(spec)
        print(_row(name, w, h, k, "meta", "fp32", measure(args.arch, k, w, h, "meta")), flush=True)
    check = None
    if not args.no_cpu:
        w, h = args.cpu
        cpu = {prec: measure(args.arch, 19, w, h, "cpu", dt)
               for prec, dt in (("fp32", None), ("bf16 autocast", torch.bfloat16))}
        for prec, r in cpu.items():
            print(_row("CPU check", w, h, 19, "cpu", prec, r), flush=True)
        meta = measure(args.arch, 19, w, h, "meta")
        print(_row("CPU check", w, h, 19, "meta", "fp32", meta))
        check = {v: (cpu["fp32"][v]["activations"], meta[v]["activations"]) for v in ("old", "new")}
    if check:
        print("\nmeta vs CPU count at the same size, fp32 activations (bytes): "
              + "; ".join(f"{v} {c:,} vs {m:,} (Δ {m - c:+,})" for v, (c, m) in check.items())
              + "  [old: native batch_norm saves C-sized save_mean/save_invstd on meta, empty on the CPU]")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
