"""How far 2 DDP processes × batch 1 drift from 1 process × batch 2 on this CPU, by dtype.

The same mathematical step computed with other kernel blockings: the float noise a DDP test
must tolerate (tests/test_ddp.py). Per method, in float32 and float64: the largest gradient
difference of each iteration relative to the tensor's largest entry, (a) with the real learning
rates (the weights drift apart and compound the noise) and (b) with every learning rate 0 (each
iteration's gradients at the same weights). R18 from random init, frozen BN, SGD discriminator,
3 iterations at 64×32; every run a fresh process on one thread.

The data: random images whose label maps differ per image but hold the same number of ignored
pixels, so both runs compute the same mathematical gradient; ``--demo-data`` takes the embedded
benchmark's images instead, whose shares of ignored pixels differ — then each DDP process's
loss, a mean over its own labelled pixels (as in mmseg and the references), weights pixels
unlike one process's mean over the whole batch, a real difference on top of the noise.
Run under several CPU instruction sets to see what a CPU changes:

    python benchmarks/ddp_noise.py
    for isa in AVX2 AVX512_CORE AVX512_CORE_BF16 AVX512_CORE_AMX; do
        ONEDNN_MAX_CPU_ISA=$isa python benchmarks/ddp_noise.py --methods fada; done
"""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

import torch

METHODS = {  # name -> (method, DDP batch override, extra overrides): the cases of tests/test_ddp.py
    "fgd_ent": ("fgd_ent", "data.batch_size=1", []),
    "fada": ("fada", "data.global_batch_size=2", []),
    "source_only": ("source_only", "data.batch_size=1", []),
    "self_training": ("source_only", "data.batch_size=1",
                      ["self_training.enabled=true", "self_training.mic.enabled=true", "self_training.mic.block_size=8"]),
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_equal_data(root: Path, h: int = 32, w: int = 64) -> None:
    """GTA5 layout (4 images) and Cityscapes train (2): random pixels; each source label map its
    own 8 class stripes, one of them ignored (labelId 0), so every image has as many labelled
    pixels."""
    import numpy as np
    from PIL import Image

    from udaseg.data import labels as L

    rng = np.random.default_rng(0)
    palette = np.zeros((256, 3), np.uint8)
    for t, lid in enumerate(L.TRAINID_TO_LABELID):
        palette[lid] = L.PALETTE_19[t]
    (root / "gta5" / "images").mkdir(parents=True)
    (root / "gta5" / "labels").mkdir()
    for i in range(1, 5):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "gta5" / "images" / f"{i:05d}.png")
        row = np.insert(rng.choice(L.TRAINID_TO_LABELID, 7), i % 8, 0).astype(np.uint8)
        label = Image.fromarray(np.tile(row, (h, w // 8)), mode="P")
        label.putpalette(palette.flatten().tolist())
        label.save(root / "gta5" / "labels" / f"{i:05d}.png")
    for city in ("a", "b"):
        for folder, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
            (root / "cityscapes" / folder / "train" / city).mkdir(parents=True)
        stem = root / "cityscapes" / "{}" / "train" / city / f"{city}_000000_000019_{{}}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(str(stem).format("leftImg8bit", "leftImg8bit"))
        Image.fromarray(np.full((h, w), 7, np.uint8), mode="L").save(str(stem).format("gtFine", "gtFine_labelIds"))


def _worker(rank, world, port, cfg, run_dir, out_file, dtype, zero_lr):
    from udaseg.engine.trainer import Trainer

    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, dtype))
    t = Trainer(cfg, run_dir, progress=False)
    grads, set_lr, step = [], t.stepper.set_lr, t.step

    def frozen(it):
        set_lr(it)
        for opt in filter(None, (t.opt_g, t.opt_d)):
            for group in opt.param_groups:
                group["lr"] = 0.0
        return 0.0

    def recording_step(it, batches):
        out = step(it, batches)
        grads.append({n: p.grad.clone() for m in (t.model, t.discs) for n, p in m.named_parameters()
                      if p.grad is not None})
        return out
    if zero_lr:
        t.stepper.set_lr = frozen
    t.step = recording_step
    t.train()
    if rank == 0:
        torch.save(grads, out_file)
    if world > 1:
        torch.distributed.destroy_process_group()


def measure(data: Path, work: Path, name: str, dtype: str, zero_lr: bool, iters: int) -> list[tuple[float, str]]:
    """Per iteration: (largest relative gradient difference, the tensor it is in)."""
    from udaseg.config import load_config

    method, ddp_batch, extra = METHODS[name]
    base = [f"method.name={method}", f"train.iters={iters}", "train.val_every=0", "train.log_every=1",
            "train.image_every=0", "model.arch=deeplabv2_resnet18", "model.bn_mode=frozen",
            "model.input_norm=per_image", "train.optimizer_d=sgd", "train.lr=0.01", "train.lr_d=0.001",
            "data.workers=0", f"data.source.root={data / 'gta5'}", f"data.target.root={data / 'cityscapes'}",
            "data.source.transforms={resize: [64, 32], hflip: 0.5}", "data.target.transforms={resize: [64, 32], hflip: 0.5}",
            *extra]
    out = {}
    for run, world, batch in (("single", 1, "data.batch_size=2"), ("ddp", 2, ddp_batch)):
        tag = f"{name}_{dtype}_{zero_lr}_{run}"
        torch.multiprocessing.spawn(_worker, args=(world, _port(), load_config(None, [*base, batch]), work / tag,
                                                   work / f"{tag}.pt", dtype, zero_lr), nprocs=world, join=True)
        out[run] = torch.load(work / f"{tag}.pt", weights_only=True)
    rows = []
    for a, b in zip(out["single"], out["ddp"]):
        rows.append(max((float((a[k] - b[k]).abs().max()) / max(float(a[k].abs().max()), 1e-30), k) for k in a))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--demo-data", action="store_true", help="the embedded benchmark's images (see above)")
    args = p.parse_args(argv)
    from udaseg.benchmark.writer import write_demo

    names = [m for m in args.methods.split(",") if m]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    print(f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset: all the CPU has)')}, torch {torch.__version__}, "
          f"data: {'the embedded benchmark' if args.demo_data else 'equal labelled pixels per image'}")
    print("| method | dtype | LRs | " + " | ".join(f"iteration {i + 1}" for i in range(args.iters)) + " | worst tensor |")
    print("|---|---|---|" + "---|" * args.iters + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        data, work = Path(tmp) / "data", Path(tmp) / "runs"
        if args.demo_data:
            write_demo(data, seed=0, n_source=4, n_target_train=2, n_target_val=1, n_target_dev=1, n_source_heldout=1,
                       n_synthia=1, source_size=(64, 32), target_size=(64, 32), workers=1, progress=False)
        else:
            write_equal_data(data)
        for name in names:
            for dtype in args.dtypes.split(","):
                for zero_lr in (False, True):
                    rows = measure(data, work, name, dtype, zero_lr, args.iters)
                    worst = max(rows)[1]
                    print(f"| {name} | {dtype} | {'0' if zero_lr else 'real'} | "
                          + " | ".join(f"{r:.2g}" for r, _ in rows) + f" | {worst} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
