"""Adaptation step of the paper's method (fine-grained D + entropy): udaseg's trainer vs a
reference-style step written the way FADA's ``train_adv.py`` loop does it.

    python benchmarks/train_step.py                  # both settings below, both variants
    python benchmarks/train_step.py --settings demo --steps 3

Settings: ``demo`` — R18, 2 source + 2 target images at 96×192 (the demo's training size until benchmark v2, now 128×256);
``r101`` — R101 (Caffe style), 1 + 1 images at 256×512. Same model, same input size, same number
of CPU threads for both variants; each variant runs in its own process so its peak RSS is its
own. The reference-style step: fp32, contiguous memory layout, classifier logits and D logits
upsampled to the full image size before the soft-label and entropy losses (as FADA does), two D
forward passes on target features. udaseg's step: ``Trainer.step`` with the config's
``train.amp=bf16``, ``train.channels_last=true``, ``train.malloc_tuning=true`` and losses at
feature resolution.

Prints seconds per step, images/s, peak RSS, the ratio, and the achieved GFLOP/s of the udaseg
step (``torch.utils.flop_counter``; useful work: the ASPP taps that read only padding are not
computed, so not counted) against matmul / 3×3-conv peaks measured in the same run.

    python benchmarks/train_step.py --aspp           # the ASPP classifier alone, both forms

``--aspp`` times DeepLab-V2's ASPP classifier (layer4 → 19 classes, rates 6/12/18/24) forward +
backward under bf16 autocast at each setting's feature size, as four dilated convolutions and
tap by tap (``udaseg/models/aspp_taps.py``), and prints each one's bf16 error against float32.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "demo": {"arch": "deeplabv2_resnet18", "batch": 2, "size": (96, 192)},
    "r101": {"arch": "deeplabv2_resnet101", "batch": 1, "size": (256, 512)},
}
T, CLIP, LAMBDA_ADV, LAMBDA_ENT = 1.8, 0.9, 0.001, 0.001  # FADA / paper defaults


def _batches(setting, k=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, (h, w) = setting["batch"], setting["size"]
    img = lambda: torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    return {"source": {"image": img(), "label": torch.randint(0, k, (n, h, w), generator=g)},
            "target": {"image": img()}}


def _tiny_data(root: Path):
    from udaseg.benchmark.writer import demo_is_complete, write_demo

    if not demo_is_complete(root):
        write_demo(root, seed=0, n_source=2, n_target_train=2, n_target_val=1, workers=1, progress=False, n_synthia=1,
                   n_target_dev=0, n_source_heldout=0)
    return root


def _trainer(setting, amp: str, channels_last: bool, loss_resolution: str, device: str = "cpu",
             multi_level: bool = False, bn_mode: str = "trainable", malloc_tuning: bool = True,
             aspp_impl: str = "taps"):
    """A real udaseg Trainer for fgd_ent (data paths point at a tiny written benchmark; the
    benchmarks feed their own synthetic batches to ``Trainer.step``)."""
    from udaseg.config import load_config
    from udaseg.engine.trainer import Trainer

    data = _tiny_data(Path(tempfile.gettempdir()) / "udaseg_bench_data")
    cfg = load_config(None, [
        "method.name=fgd_ent", f"method.loss_resolution={loss_resolution}", f"model.arch={setting['arch']}",
        f"model.multi_level={str(multi_level).lower()}", f"model.bn_mode={bn_mode}", f"data.source.root={data / 'gta5'}",
        f"data.target.root={data / 'cityscapes'}", f"data.val.root={data / 'cityscapes'}", "data.workers=0",
        f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}", "train.iters=1000",
        "train.val_every=0", "train.image_every=0", f"train.device={device}",
        f"train.malloc_tuning={str(malloc_tuning).lower()}", f"model.aspp_impl={aspp_impl}"])
    run_dir = tempfile.mkdtemp(prefix="udaseg_bench_run_")
    atexit.register(shutil.rmtree, run_dir, ignore_errors=True)  # its logs are of no use afterwards
    return Trainer(cfg, run_dir, progress=False)


def project_step(setting):
    t = _trainer(setting, "bf16", True, "feature")
    batches = _batches(setting)
    return lambda it: t.step(it, batches), t


def reference_step(setting):
    """FADA's train_adv.py loop, on our model and discriminator modules."""
    # FADA: no allocator tuning, ASPP as four dilated convolutions
    t = _trainer(setting, "none", False, "input", malloc_tuning=False, aspp_impl="dilated_conv")
    model, disc = t.model, t.discs["d_fine"]
    opt_g, opt_d = t.opt_g, t.opt_d
    from udaseg.engine.inputs import normalize_images

    b = _batches(setting)
    x_s = normalize_images(b["source"]["image"], "caffe")
    y_s = b["source"]["label"]
    x_t = normalize_images(b["target"]["image"], "caffe")
    size = x_s.shape[-2:]
    up = lambda z: F.interpolate(z, size=size, mode="bilinear", align_corners=True)

    def soft_ce(pred, soft):
        return torch.mean(torch.sum(-soft * F.log_softmax(pred, dim=1), dim=1))

    def step(it):
        model.train()
        opt_g.zero_grad()
        opt_d.zero_grad()
        out_s = model(x_s)
        src_pred = up(out_s.logits) / T
        F.cross_entropy(src_pred, y_s, ignore_index=255).backward()
        src_soft = F.softmax(src_pred, dim=1).detach()
        src_soft[src_soft > CLIP] = CLIP
        out_t = model(x_t)
        tgt_pred = up(out_t.logits) / T
        tgt_soft = F.softmax(tgt_pred, dim=1).detach()
        tgt_soft[tgt_soft > CLIP] = CLIP
        p_t = F.softmax(up(out_t.logits), dim=1)
        ent = -(p_t * torch.log(p_t + 1e-30)).sum(1).mean() / torch.log(torch.tensor(19.0))
        loss_adv = soft_ce(up(disc(out_t.features)), torch.cat([tgt_soft, torch.zeros_like(tgt_soft)], 1))
        (LAMBDA_ADV * loss_adv + LAMBDA_ENT * ent).backward()
        opt_g.step()
        opt_d.zero_grad()
        (0.5 * soft_ce(up(disc(out_s.features.detach())), torch.cat([src_soft, torch.zeros_like(src_soft)], 1))).backward()
        (0.5 * soft_ce(up(disc(out_t.features.detach())), torch.cat([torch.zeros_like(tgt_soft), tgt_soft], 1))).backward()
        opt_d.step()

    return step, t


def _time(step, steps: int, warmup: int) -> float:
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    return (time.perf_counter() - t0) / steps


def _flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step(0)
    return float(fc.get_total_flops())


def peaks() -> dict:
    """Measured matmul and 3×3-conv throughput on this machine (GFLOP/s), fp32 and bf16."""
    out = {}
    a = torch.randn(2048, 2048)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    x = torch.randn(4, 256, 64, 128)
    for dtype in (torch.float32, torch.bfloat16):
        name = "fp32" if dtype == torch.float32 else "bf16"
        aa = a.to(dtype)
        sec = _time(lambda i: torch.mm(aa, aa), 5, 2)
        out[f"matmul_{name}"] = 2 * 2048**3 / sec / 1e9
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            sec = _time(lambda i: conv(x.contiguous(memory_format=torch.channels_last)), 5, 2)
        out[f"conv3x3_{name}"] = 2 * 4 * 256 * 256 * 9 * 64 * 128 / sec / 1e9
    return out


def aspp_check(setting_name: str, reps: int = 3) -> None:
    from udaseg.models import build_segmentor
    from udaseg.models.deeplabv2 import ASPPClassifier

    s = SETTINGS[setting_name]
    c_in = build_segmentor(s["arch"], 19, multi_level=False).feature_channels
    h, w = (d // 8 + 1 for d in s["size"])
    torch.manual_seed(0)
    heads = {impl: ASPPClassifier(c_in, 19, impl=impl).to(memory_format=torch.channels_last)
             for impl in ("dilated_conv", "taps")}
    heads["taps"].load_state_dict(heads["dilated_conv"].state_dict())
    x = torch.randn(2 * s["batch"], c_in, h, w).relu().contiguous(memory_format=torch.channels_last)
    exact = heads["dilated_conv"](x).detach()
    res = {}
    for impl, head in heads.items():
        def fwd_bwd(i):
            xi = x.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = head(xi)
            y.float().sum().backward()
            return y.detach().float()
        sec = _time(fwd_bwd, reps, 1)
        err = float((fwd_bwd(0) - exact).abs().mean() / exact.abs().mean())
        res[impl] = sec
        print(f"  {impl:<13} {1e3 * sec:8.1f} ms forward+backward, bf16 mean relative error {err:.2e}")
    print(f"  ASPP speed-up taps / dilated convolutions: {res['dilated_conv'] / res['taps']:.1f}x "
          f"({2 * s['batch']} × {c_in} × {h} × {w} input)")


def run_variant(variant: str, setting_name: str, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    setting = SETTINGS[setting_name]
    step, _ = (project_step if variant == "project" else reference_step)(setting)
    sec = _time(step, steps, warmup)
    res = {"variant": variant, "setting": setting_name, "sec_per_step": sec,
           "images_per_s": 2 * setting["batch"] / sec,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "threads": torch.get_num_threads()}
    if variant == "project":
        res["gflop_per_step"] = _flops(step) / 1e9
        res["peaks_gflops"] = peaks()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default="demo,r101")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--aspp", action="store_true", help="time the ASPP classifier alone, both implementations")
    p.add_argument("--variant", choices=["project", "reference"], help=argparse.SUPPRESS)  # one child process
    p.add_argument("--setting", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.setting, args.steps, args.warmup)))
        return
    if args.aspp:
        for name in args.settings.split(","):
            print(f"== ASPP classifier, {name} ==")
            aspp_check(name)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in args.settings.split(","):
        res = {}
        for variant in ("reference", "project"):
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--setting", name,
                                  "--steps", str(args.steps), "--warmup", str(args.warmup)],
                                 capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{variant} variant failed:\n{out.stderr[-3000:]}")
            res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        ref, prj = res["reference"], res["project"]
        s = SETTINGS[name]
        print(f"\n== {name}: {s['arch']}, {s['batch']}+{s['batch']} images at {s['size'][0]}×{s['size'][1]}, "
              f"{prj['threads']} threads ==")
        print(f"{'':<22}{'s/step':>9}{'img/s':>8}{'peak RSS MB':>13}")
        for v in (ref, prj):
            label = "reference-style (FADA)" if v is ref else "udaseg"
            print(f"{label:<22}{v['sec_per_step']:9.3f}{v['images_per_s']:8.2f}{v['peak_rss_mb']:13.0f}")
        print(f"speed-up udaseg / reference: {ref['sec_per_step'] / prj['sec_per_step']:.2f}x; "
              f"peak RSS ratio {prj['peak_rss_mb'] / ref['peak_rss_mb']:.2f}")
        achieved = prj["gflop_per_step"] / prj["sec_per_step"]
        pk = prj["peaks_gflops"]
        print(f"udaseg step: {prj['gflop_per_step']:.1f} GFLOP, {achieved:.0f} GFLOP/s achieved; measured peaks "
              + ", ".join(f"{k} {v:.0f}" for k, v in pk.items())
              + f" GFLOP/s -> {100 * achieved / pk['conv3x3_bf16']:.0f}% of the bf16 3×3-conv peak")


if __name__ == "__main__":
    main()
