"""GPU check: the paper's configuration (DeepLab-V2 R101, multi-level, fine-grained D on layer4
features + entropy, 1 source image at 720×1280 + 1 target image at 512×1024, as GTA5 → Cityscapes)
for a few hundred iterations with AMP on a CUDA device; prints step time, images/s and peak GPU
memory. Synthetic images (no dataset needed on the GPU machine); the step is udaseg's real
``Trainer.step``.

    python benchmarks/gpu_check.py                       # 300 iterations, bf16 (< 8 min on one modern GPU)
    python benchmarks/gpu_check.py --iters 200 --amp fp16
    python benchmarks/gpu_check.py --device cpu --arch deeplabv2_resnet18 --source 64x128 --target 64x128 --iters 2
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import _trainer  # noqa: E402  (same trainer set-up as the CPU benchmark)

from udaseg.engine.adabn import adapt_batchnorm  # noqa: E402


def _pair(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="deeplabv2_resnet101")
    p.add_argument("--source", type=_pair, default=(720, 1280), help="HxW of source images")
    p.add_argument("--target", type=_pair, default=(512, 1024), help="HxW of target images")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--amp", default="bf16", choices=["none", "bf16", "fp16"])
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on a GPU machine (or pass --device cpu for a smoke run)")
    torch.backends.cudnn.benchmark = True
    setting = {"arch": args.arch, "batch": 1, "size": args.target}
    # the paper's net: multi-level, frozen BN (eval-mode statistics, as from ImageNet weights)
    t = _trainer(setting, args.amp, True, "feature", device=args.device, multi_level=True, bn_mode="frozen")
    g = torch.Generator().manual_seed(0)
    batches = {"source": {"image": torch.randint(0, 256, (1, 3, *args.source), dtype=torch.uint8, generator=g),
                          "label": torch.randint(0, 19, (1, *args.source), generator=g)},
               "target": {"image": torch.randint(0, 256, (1, 3, *args.target), dtype=torch.uint8, generator=g)}}
    # Random weights under frozen BN statistics (mean 0, var 1) blow up to NaN within a few
    # steps; statistics re-estimated on a batch (AdaBN) stand in for pretrained ones.
    adapted = adapt_batchnorm(t.model, [{"image": batches["target"]["image"]}], t.cfg["model"]["input_norm"], t.device)
    t.model.load_state_dict(adapted.state_dict())
    if args.device == "cuda":
        batches = {k: {n: v.pin_memory() for n, v in b.items()} for k, b in batches.items()}
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for i in range(args.warmup):
        t.step(i, batches)
    sync()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.iters):
        t.step(args.warmup + i, batches)
    sync()
    sec = (time.perf_counter() - t0) / args.iters
    print(f"{args.arch} on {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), "
          f"amp {args.amp}, source {args.source[1]}×{args.source[0]} + target {args.target[1]}×{args.target[0]}")
    print(f"step {sec * 1000:.1f} ms, {2 / sec:.1f} images/s over {args.iters} iterations")
    if args.device == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
              f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved")


if __name__ == "__main__":
    main()
