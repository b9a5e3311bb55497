"""Evaluation throughput: images/s of ``udaseg.engine.evaluation.evaluate`` at 1024×512 network
input with 2048×1024 labels (Cityscapes val geometry): forward, bilinear upsampling of the logits
to label size, softmax/argmax and the bincount confusion matrix.

    python benchmarks/eval_throughput.py                         # R101, 6 images
    python benchmarks/eval_throughput.py --arch deeplabv2_resnet18 --images 2 --input 256x128 --label 512x256
"""
import argparse
import time

import torch

from udaseg.engine.evaluation import evaluate
from udaseg.models import build_segmentor


def _pair(text):
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="deeplabv2_resnet101")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--input", type=_pair, default=(1024, 512), help="WxH the network sees")
    p.add_argument("--label", type=_pair, default=(2048, 1024), help="WxH of the labels")
    p.add_argument("--amp", default="bf16", choices=["none", "bf16"])
    args = p.parse_args(argv)
    model = build_segmentor(args.arch, 19, multi_level=True, bn_mode="trainable").eval()
    g = torch.Generator().manual_seed(0)
    (w, h), (lw, lh) = args.input, args.label
    batches = [{"image": torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g),
                "label": torch.randint(0, 19, (1, lh, lw), generator=g)} for _ in range(args.images)]
    amp = torch.bfloat16 if args.amp == "bf16" else None
    print(f"{args.arch}, input {w}×{h}, labels {lw}×{lh}, amp {args.amp}, {torch.get_num_threads()} threads")
    # the references' form first (dilated ASPP convolutions, contiguous), then udaseg's defaults
    for aspp_impl, channels_last in (("dilated_conv", False), ("dilated_conv", True), ("taps", True)):
        for head in (model.classifier, model.aux_classifier):
            head.impl = aspp_impl
        model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        evaluate(model, batches[:1], 19, "caffe", "cpu", autocast_dtype=amp, channels_last=channels_last)  # warm-up
        t0 = time.perf_counter()
        evaluate(model, batches, 19, "caffe", "cpu", autocast_dtype=amp, channels_last=channels_last)
        sec = time.perf_counter() - t0
        print(f"ASPP {aspp_impl:<12} channels_last={channels_last!s:<5}: {args.images / sec:.2f} images/s "
              f"({sec / args.images:.2f} s/image)")


if __name__ == "__main__":
    main()
