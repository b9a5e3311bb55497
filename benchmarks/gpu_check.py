"""GPU check: by default the paper's run (``configs/gta5_cityscapes/fgd_ent.yaml``: DeepLab-V2 R101,
multi-level, frozen BN, fine-grained D + entropy, 1 source 1280×720 + 1 target 1024×512 per GPU), or
the step of any config (``--config``: e.g. DAFormer's MiT-B5 recipe) through udaseg's real ``Trainer`` — its DataLoader workers, transforms, AMP, checkpoints and ``metrics.jsonl`` — for
a few hundred iterations, on synthetic data written to disk in the GTA5 / Cityscapes formats (the
GPU machine needs no dataset, no weights, no internet). Prints s/iter, images/s, peak GPU memory
and the projected time of the config's own schedule (fgd_ent.yaml: 20k source-only + 40k adaptation
iterations; daformer.yaml: 40k).

    python benchmarks/gpu_check.py                  # one GPU, 300 iterations: < 8 min
    python benchmarks/gpu_check.py --ddp            # every visible GPU, under torchrun
    python benchmarks/gpu_check.py --amp fp16 --val train.channels_last=true
    python benchmarks/gpu_check.py --config configs/gta5_cityscapes/fgd_ent_st_mic.yaml   # + teacher, ClassMix, MIC, RCS
    python benchmarks/gpu_check.py --config configs/gta5_cityscapes/daformer.yaml         # MiT-B5, DACS, RCS, FD
    python benchmarks/gpu_check.py --config configs/gta5_cityscapes/fgd_ent_daformer.yaml # + the paper's D + entropy
        (a config's crop larger than a --source/--target size is cut to that size; a smaller crop is kept)
    python benchmarks/gpu_check.py --device cpu --arch deeplabv2_resnet18 --source 64x32 --target 64x32 \\
        --iters 2 --warmup 1 --log-every 1 --source-only-iters 0 --workers 0      # CPU smoke run

Sizes are W×H (width first, as ``eval_throughput.py --input``). Files are written at 1.5× the
source size (1920×1080 ≈ GTA5's 1914×1052) and 2× the target size (Cityscapes' 2048×1024), so the
loaders decode and resize as on the real data. No pretrained weights: the random init's BN
statistics are re-estimated on target images (AdaBN) and (ResNet) its residual branches scaled down
before training, else it diverges within a few steps (``init_like_pretrained``); only values change,
not the computation. Transformer archs (MiT, LayerNorm) get only the AdaBN of their decode head's BN.
Extra ``key=value`` arguments are config overrides.
"""
from __future__ import annotations

import argparse
import atexit
import copy
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "gta5_cityscapes" / "fgd_ent.yaml"
N_SOURCE, N_TARGET_TRAIN, N_TARGET_VAL = 8, 8, 4
CITYSCAPES_VAL_IMAGES = 500  # for the projection of the paper's validations
SOURCE_FILE_SCALE, TARGET_FILE_SCALE = 1.5, 2.0
RESIDUAL_SCALE = 0.2  # see init_like_pretrained


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH (width first), e.g. 1280x720; got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _override(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected a config override key=value, got {text!r}")
    return text


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # --ddp re-launches with some options removed by name
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke run: use tiny sizes)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="config file whose step is measured (default: the paper's gta5_cityscapes/fgd_ent.yaml)")
    p.add_argument("--arch", help="model.arch (default: the config's; fgd_ent.yaml: deeplabv2_resnet101)")
    p.add_argument("--source", type=_size, help="WxH of the source training images (default: the config's resize, "
                                                "1280x720 for GTA5); a larger crop of the config is cut to it")
    p.add_argument("--target", type=_size, help="WxH of the target training images (default: the config's resize, "
                                                "1024x512); a larger crop of the config is cut to it")
    p.add_argument("--iters", type=int, default=300, help="adaptation iterations, warm-up included (default 300)")
    p.add_argument("--warmup", type=int, default=40,
                   help="iterations not timed (cuDNN autotuning, loader workers starting); a multiple of "
                        "--log-every (default 40)")
    p.add_argument("--log-every", type=int, default=20, help="train.log_every: one s/iter sample each (default 20)")
    p.add_argument("--source-only-iters", type=int, default=80,
                   help="also time the source-only stage for this many iterations, warm-up included (default 80; "
                        "0: project it at the adaptation's s/iter, an upper bound)")
    p.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"], help="train.amp (default: the config's, auto)")
    p.add_argument("--workers", type=int, help="data.workers (default: the config's, 4)")
    p.add_argument("--val", action="store_true", help="validate once at the end (timed; the projection includes it)")
    p.add_argument("--data", help="synthetic data folder (written if absent, reused if complete; default: temporary)")
    p.add_argument("--run-dir", help="where the runs go (default: temporary, removed at exit unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data and runs, and print where")
    p.add_argument("--ddp", action="store_true", help="re-launch under torchrun, one process per visible GPU")
    p.add_argument("--nproc", type=int, help="processes for --ddp (default: the visible GPUs; 2 with --device cpu)")
    p.add_argument("overrides", nargs="*", type=_override, metavar="key=value", help="config overrides, applied last")
    args = p.parse_args(argv)
    if args.iters < 1 or args.log_every < 1 or args.warmup < 0 or args.source_only_iters < 0:
        p.error("--iters and --log-every must be at least 1, --warmup and --source-only-iters at least 0")
    if args.warmup % args.log_every:
        p.error(f"--warmup {args.warmup} must be a multiple of --log-every {args.log_every}")
    if args.iters <= args.warmup:
        p.error(f"--iters {args.iters} must exceed --warmup {args.warmup} (nothing would be timed)")
    if args.source_only_iters and args.source_only_iters <= args.warmup:
        p.error(f"--source-only-iters {args.source_only_iters} must exceed --warmup {args.warmup} (or be 0)")
    return args


# ------------------------------------------------------------------------------------------ data


def write_data(root: Path, source: tuple[int, int], target: tuple[int, int], log) -> Path:
    """The synthetic benchmark (udaseg.data.demo's scenes) at file sizes derived from the training
    sizes; reused when ``root`` already holds a complete one of the same counts and sizes."""
    from udaseg.data.demo import demo_is_complete, write_demo

    src_file = tuple(max(1, round(v * SOURCE_FILE_SCALE)) for v in source)
    tgt_file = tuple(max(1, round(v * TARGET_FILE_SCALE)) for v in target)
    want = {"counts": {"gta5": N_SOURCE, "gta5_heldout": 0, "synthia": 0, "cityscapes_train": N_TARGET_TRAIN,
                       "cityscapes_val": N_TARGET_VAL, "cityscapes_dev": 0},
            "sizes": {"source": list(src_file), "target": list(tgt_file)}}
    if demo_is_complete(root, seed=0):
        m = json.loads((root / "manifest.json").read_text())
        if m.get("counts") == want["counts"] and m.get("sizes") == want["sizes"]:
            log(f"data: reusing {root}")
            return root
    t0 = time.perf_counter()
    write_demo(root, seed=0, n_source=N_SOURCE, n_target_train=N_TARGET_TRAIN, n_target_val=N_TARGET_VAL,
               source_size=src_file, target_size=tgt_file, workers=min(8, os.cpu_count() or 1), progress=False,
               n_synthia=0, n_target_dev=0, n_source_heldout=0)
    log(f"data: wrote {N_SOURCE} GTA5 images at {src_file[0]}×{src_file[1]}, {N_TARGET_TRAIN} + {N_TARGET_VAL} "
        f"Cityscapes train + val at {tgt_file[0]}×{tgt_file[1]} to {root} in {time.perf_counter() - t0:.1f} s")
    return root


# ---------------------------------------------------------------------------------------- config


def build_configs(args, data: Path) -> tuple[dict, dict | None, dict]:
    """(adaptation config, source-only config or None, the config file's own schedule)."""
    from udaseg.config import load_config
    from udaseg.engine.stages import stage_configs

    dc = load_config(args.config, args.overrides)["data"]
    paper = load_config(args.config)["train"]  # the schedule to project: the file's, before any override
    source, target = build_sizes(args)
    c = (args.warmup + args.iters) // 2  # one checkpoint write inside the timed iterations
    ckpt = c if args.warmup < c < args.iters else 0
    ours = [
        {"model": {"pretrained": None}},
        {"data": {"source": {"root": str(data / "gta5"), "transforms": _resized(dc["source"]["transforms"], source)},
                  "target": {"root": str(data / "cityscapes"), "transforms": _resized(dc["target"]["transforms"], target)},
                  "val": {"root": str(data / "cityscapes"),
                          "transforms": {**dc["val"]["transforms"], "resize_image": list(target)}}}},
        f"train.device={args.device}", "train.pretrain_iters=0", f"train.iters={args.iters}",
        f"train.val_every={args.iters if args.val else 0}", f"train.checkpoint_every={ckpt}",
        f"train.log_every={args.log_every}", "train.image_every=0", "train.keep_every=0", "train.init_from=null",
    ]
    if args.arch:
        ours.append(f"model.arch={args.arch}")
    if args.amp:
        ours.append(f"train.amp={args.amp}")
    if args.workers is not None:
        ours.append(f"data.workers={args.workers}")
    cfg = load_config(args.config, [*ours, *args.overrides])  # the user's overrides win
    pre = None
    if args.source_only_iters and cfg["method"]["name"] not in ("source_only", "target_only"):
        with_pre = copy.deepcopy(cfg)
        with_pre["train"]["pretrain_iters"] = args.source_only_iters
        pre = copy.deepcopy(stage_configs(with_pre)[0][1])  # built as the real pipeline builds stage 1
        pre["train"].update(val_every=0, checkpoint_every=0, pretrain_iters=0)
    return cfg, pre, paper


def _resized(transforms: dict, size: tuple[int, int]) -> dict:
    """The config's transforms at training size ``size`` (W, H): its crop, if larger on a side,
    cut to ``size`` there (a tiny smoke run of a 512×512-crop config); the default sizes keep
    every shipped config's crop as it is."""
    out = {**transforms, "resize": list(size)}
    if out.get("crop"):
        out["crop"] = [min(c, s) for c, s in zip(out["crop"], size)]
    return out


def describe_run(cfg: dict) -> str:
    """What the measured step contains: method, the components it runs with, and for a transformer
    arch the MiT stage its features (the fine-grained D's input, FD's layer) come from."""
    from udaseg.engine import components
    from udaseg.models import TRANSFORMER_SEGMENTORS

    parts = [cfg["method"]["name"], *(c.key for c in components.enabled(cfg))]
    if cfg["data"]["source"].get("rcs", {}).get("enabled"):
        parts.append("rcs")
    text = " + ".join(parts)
    if cfg["model"]["arch"] in TRANSFORMER_SEGMENTORS:
        text += f", model.feature_stage {cfg['model']['feature_stage'] or 4}"
    if (cfg["model"].get("hrda") or {}).get("enabled"):
        text += ", hrda"
    return text


# ------------------------------------------------------------------------------------- one stage


def _timed(trainer, name: str, record: list, sync) -> None:
    """Time every call of the trainer's method ``name`` (an instance attribute shadows it)."""
    fn = getattr(trainer, name)

    def wrapper(*a, **k):
        sync()
        t0 = time.perf_counter()
        out = fn(*a, **k)
        sync()
        record.append((name, a[:2], time.perf_counter() - t0))  # save(name, it), _validate(it)
        return out

    setattr(trainer, name, wrapper)


def init_like_pretrained(t, adapt_batchnorm, DataLoader) -> None:
    """Give the randomly initialised net (no weights on the GPU machine) the activation scale of
    ImageNet weights, in place (the DDP wrapper, if any, shares the tensors). Only values change,
    not the computation, so the step costs what it costs with real weights.

    Frozen BN with the random init's statistics (mean 0, var 1) gives NaN within a few steps, so
    the statistics are re-estimated on target images (AdaBN). That alone still diverges at the
    paper's LR: every residual branch then adds unit variance, the 23 blocks of layer3 take the
    stream to rms ≈ 6, the ASPP logits start at std ≈ 10 and the first SGD step blows them up. So
    each residual branch's last BN scale is also multiplied by ``RESIDUAL_SCALE`` (0.2): layer4
    features at rms ≈ 0.6 and logits at std ≈ 1, as from ImageNet weights."""
    import torch

    from udaseg.models.backbones import BasicBlock, Bottleneck

    ds = (t.loaders.get("target") or t.loaders["source"]).dataset
    adapted = adapt_batchnorm(t.model, DataLoader(ds, batch_size=2), t.cfg["model"]["input_norm"], t.device,
                              max_batches=4)
    t.model.load_state_dict(adapted.state_dict())
    del adapted
    with torch.no_grad():
        for m in t.model.modules():
            if isinstance(m, Bottleneck):
                m.bn3.weight.mul_(RESIDUAL_SCALE)
            elif isinstance(m, BasicBlock):
                m.bn2.weight.mul_(RESIDUAL_SCALE)


def run_stage(cfg: dict, run_dir: Path, warmup: int) -> dict:
    """Build the real Trainer, AdaBN its BN statistics, train ``warmup`` iterations, reset the peak
    memory stats, train on to ``train.iters``; return the timings and memory."""
    import torch
    from torch.utils.data import DataLoader

    from udaseg.engine.adabn import adapt_batchnorm
    from udaseg.engine.run_logger import read_metrics
    from udaseg.engine.trainer import Trainer

    t0 = time.perf_counter()
    t = Trainer(cfg, run_dir, progress=True)
    cuda = t.device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(t.device)) if cuda else (lambda: None)
    init_like_pretrained(t, adapt_batchnorm, DataLoader)
    if cuda:
        torch.cuda.empty_cache()
    setup = time.perf_counter() - t0
    calls: list = []
    _timed(t, "save", calls, sync)
    _timed(t, "_validate", calls, sync)
    if warmup:
        t.train(stop_at=warmup)  # a second train() continues from there
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(t.device)
    t.train()
    out = {"method": t.method.name, "resolved": dict(t.resolved), "device": t.device, "setup_s": setup,
           "world": t.dist.world_size, "global_batch": t.batch_size * t.dist.world_size, "calls": calls}
    if cuda:
        mem = [torch.cuda.max_memory_allocated(t.device) / 2**30, torch.cuda.max_memory_reserved(t.device) / 2**30]
        if t.dist.enabled:
            import torch.distributed as dist

            every = [None] * t.dist.world_size
            dist.all_gather_object(every, mem)
            out["peak_gib"] = every
        else:
            out["peak_gib"] = [mem]
        out["device_name"] = torch.cuda.get_device_name(t.device)
    if t.dist.is_main:
        records = [r for r in read_metrics(run_dir) if r.get("kind") == "train"]
        prev, intervals = 0, []
        for r in records:
            if r["iter"] > warmup:
                intervals.append((prev, r["iter"], r["sec_per_iter"]))
            prev = r["iter"]
        out["intervals"] = intervals
        last = run_dir / "checkpoints" / "last.pt"
        out["checkpoint_mb"] = last.stat().st_size / 1e6 if last.is_file() else None
    del t
    gc.collect()  # shuts the loader workers down before the next stage starts its own
    if cuda:
        torch.cuda.empty_cache()
    return out


def summarise(stage: dict) -> dict:
    iv = stage["intervals"]
    n = sum(b - a for a, b, _ in iv)
    last = iv[-1][1]
    saves = [(arg[1], s) for name, arg, s in stage["calls"] if name == "save" and arg[0] == "last.pt"]
    vals = [s for name, _, s in stage["calls"] if name == "_validate"]
    first = iv[0][0] + 1
    return {"median": statistics.median(s for _, _, s in iv), "mean": sum((b - a) * s for a, b, s in iv) / n,
            "n_intervals": len(iv), "span": f"iteration {first}" if first == last else f"iterations {first}–{last}",
            "saves": [s for _, s in saves], "saves_inside": sum(1 for it, _ in saves if it < last), "vals": vals}


# ---------------------------------------------------------------------------------------- report


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def _n_events(total: int, every: int) -> int:
    """Writes (or validations) of a stage of ``total`` iterations: every ``every`` and at the end."""
    return (total - 1) // every + 1 if every else 0


def report(args, cfg, adapt: dict, so: dict | None, paper: dict, wall: float) -> None:
    a = summarise(adapt)
    world, gb = adapt["world"], adapt["global_batch"]
    (sw, sh), (tw, th) = cfg["data"]["source"]["transforms"]["resize"], cfg["data"]["target"]["transforms"]["resize"]
    dev = adapt.get("device_name") or "cpu"
    where = f" ({adapt['device']})" if "device_name" in adapt else ""
    print(f"device: {dev}" + (f" × {world} (DDP, {world} processes)" if world > 1 else where))
    print(f"run: {Path(args.config).name}, {describe_run(cfg)}, {cfg['model']['arch']}, bn_mode {cfg['model']['bn_mode']}, "
          f"source {sw}×{sh} + target {tw}×{th}, batch {gb // world} + {gb // world} per process "
          f"({gb} + {gb} global), data.workers {cfg['data']['workers']}")
    print("resolved: " + ", ".join(f"{k} {v}" for k, v in adapt["resolved"].items()))
    warm = "iteration 1" if args.warmup == 1 else f"iterations 1–{args.warmup}"
    why = "cuDNN autotuning, loader workers starting" if "peak_gib" in adapt else "loader workers starting"
    drop = f"{warm} dropped as warm-up: {why}" if args.warmup else "no warm-up"
    print(f"s/iter: {a['median']:.4f} (median of {a['n_intervals']} log intervals of {args.log_every}, {a['span']}; "
          f"{drop}); mean {a['mean']:.4f} incl. {a['saves_inside']} checkpoint write(s) in the timed part")
    print(f"images/s: {2 * gb / a['median']:.2f} (2 × global batch {gb} / s_per_iter)")
    if "peak_gib" in adapt:
        what = "after warm-up" if args.warmup else "whole run"
        if world > 1:
            per = ", ".join(f"{al:.2f}/{re:.2f}" for al, re in adapt["peak_gib"])
            print(f"peak GPU memory per GPU ({what}, allocated/reserved GiB, rank 0..{world - 1}): {per}")
        else:
            al, re = adapt["peak_gib"][0]
            print(f"peak GPU memory ({what}): {al:.2f} GiB allocated, {re:.2f} GiB reserved")
    else:
        print(f"peak RSS (rank 0, whole process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    ckpt = statistics.median(a["saves"]) if a["saves"] else 0.0
    size = f", {adapt['checkpoint_mb']:.0f} MB" if adapt.get("checkpoint_mb") else ""
    print(f"checkpoint write: {ckpt:.2f} s (last.pt{size}; median of {len(a['saves'])})")
    per_val_image = None
    if a["vals"]:
        per_val_image = a["vals"][0] / N_TARGET_VAL
        print(f"validation: {a['vals'][0]:.2f} s for {N_TARGET_VAL} images ({per_val_image:.3f} s/image; the first "
              f"validation, loader start-up and autotuning included: an upper bound)")
    # the paper's schedule, from the config file itself
    n_so, n_ad = paper["pretrain_iters"], paper["iters"]
    ce, ve = paper["checkpoint_every"], paper["val_every"]
    if so is not None:
        s = summarise(so)
        so_sec, so_note = s["median"], f"measured: median of {s['n_intervals']} log intervals, {s['span']}"
        so_ckpt = statistics.median(s["saves"]) if s["saves"] else ckpt
        print(f"source-only s/iter: {so_sec:.4f} ({so_note}); {gb / so_sec:.2f} images/s; "
              f"checkpoint write {so_ckpt:.2f} s")
    else:
        so_sec, so_note = a["median"], "not measured: projected at the adaptation's s/iter, an upper bound"
        so_ckpt = ckpt
    n_ckpt_so, n_ckpt_ad = _n_events(n_so, ce), _n_events(n_ad, ce)
    n_val = _n_events(n_so, ve) + _n_events(n_ad, ve)
    parts = [n_so * so_sec, n_ad * a["median"], n_ckpt_so * so_ckpt + n_ckpt_ad * ckpt]
    text = (f"{n_so} source-only × {so_sec:.3f} s ({so_note}) + {n_ad} {adapt['method']} × {a['median']:.3f} s "
            f"+ {n_ckpt_so + n_ckpt_ad} checkpoint writes ({n_ckpt_so} × {so_ckpt:.2f} s + {n_ckpt_ad} × {ckpt:.2f} s)")
    if per_val_image is not None:
        parts.append(n_val * CITYSCAPES_VAL_IMAGES * per_val_image)
        text += f" + {n_val} validations × {CITYSCAPES_VAL_IMAGES} images × {per_val_image:.3f} s"
    else:
        text += f"; {n_val} validations of {CITYSCAPES_VAL_IMAGES} images not included (--val measures one)"
    unit = "GPUs" if "peak_gib" in adapt else "processes"
    world_txt = f" on {world} {unit} at global batch {gb} + {gb}" if world > 1 else ""
    print(f"projected time of the paper's schedule{world_txt}: {_hours(sum(parts))} = {text}")
    print(f"this check took {wall:.0f} s (set-up {adapt['setup_s']:.0f} s incl. model build and AdaBN)")


# ------------------------------------------------------------------------------------------ main


def _cleanup_later(path: Path) -> None:
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def _launch_ddp(args, argv) -> int:
    """Write the data here, then run this script under torchrun with the same arguments (minus
    --ddp) plus --data and --run-dir, so every rank reads the same files and rank 0 writes the run."""
    import torch

    n = args.nproc or (torch.cuda.device_count() if args.device.startswith("cuda") else 2)
    if n < 1:
        print("gpu_check: --ddp found no GPU to launch on", file=sys.stderr)
        return 2
    if args.run_dir and Path(args.run_dir).exists() and any(Path(args.run_dir).iterdir()):
        print(f"gpu_check: --run-dir {args.run_dir} is not empty", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="udaseg_gpu_check_"))
    if not args.keep:
        _cleanup_later(root)
    cfg_sizes = build_sizes(args)
    data = write_data(Path(args.data) if args.data else root / "data", *cfg_sizes, log=print)
    run_dir = Path(args.run_dir) if args.run_dir else root / "runs"
    child = [a for a in argv if a not in ("--ddp", "--keep")]
    child = _drop_option(_drop_option(_drop_option(child, "--data"), "--run-dir"), "--nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           str(Path(__file__).resolve()), *child, "--data", str(data), "--run-dir", str(run_dir)]
    print(f"launching {n} processes: torchrun --standalone --nproc_per_node={n} {Path(__file__).name} ...", flush=True)
    rc = subprocess.call(cmd)
    if args.keep:
        print(f"kept: {root}")
    return rc


def _drop_option(argv: list, name: str) -> list:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def build_sizes(args) -> tuple[tuple[int, int], tuple[int, int]]:
    """The training sizes (W, H) the data files are derived from: the flags, else the config's."""
    from udaseg.config import load_config

    dc = load_config(args.config, args.overrides)["data"]
    return (args.source or tuple(dc["source"]["transforms"].get("resize") or (1280, 720)),
            args.target or tuple(dc["target"]["transforms"].get("resize") or (1024, 512)))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device available (torch.cuda.is_available() is False); run this on a GPU "
              "machine, or pass --device cpu for a smoke run", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))  # udaseg from this checkout, also when it is not installed
    from udaseg.config import ConfigError

    try:
        under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if args.ddp and not under_torchrun:
            return _launch_ddp(args, argv)
        rank = int(os.environ.get("RANK", "0"))
        log = print if rank == 0 else (lambda *a, **k: None)
        if under_torchrun and not (args.data and args.run_dir):
            log("gpu_check: under torchrun pass --data and --run-dir (or launch with --ddp)", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        root = None
        if not (args.data and args.run_dir):
            root = Path(tempfile.mkdtemp(prefix="udaseg_gpu_check_"))
            if not args.keep:
                _cleanup_later(root)
        run_dir = Path(args.run_dir) if args.run_dir else root / "runs"
        if run_dir.exists() and any(run_dir.iterdir()) and not under_torchrun:
            log(f"gpu_check: --run-dir {run_dir} is not empty", file=sys.stderr)
            return 2
        data = Path(args.data) if args.data else root / "data"
        if rank == 0 and not under_torchrun:
            write_data(data, *build_sizes(args), log=log)
        cfg, pre, paper = build_configs(args, data)
        log(f"{cfg['method']['name']}: {args.iters} iterations ({args.warmup} warm-up) ...", flush=True)
        adapt = run_stage(cfg, run_dir, args.warmup)
        so = None
        if pre is not None:
            log(f"source_only: {args.source_only_iters} iterations ({args.warmup} warm-up) ...", flush=True)
            so = run_stage(pre, run_dir / "source_only", args.warmup)
        if rank == 0:
            report(args, cfg, adapt, so, paper, time.perf_counter() - t0)
            if args.keep:
                print(f"kept: {root if root else run_dir} (meta.json and metrics.jsonl in {run_dir})")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        return 0
    except (ConfigError, FileExistsError) as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
