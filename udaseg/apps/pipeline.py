"""The main job on the embedded benchmark: write the data if absent, train source-only, adapt
with the paper's method (and the BN-only control) from that checkpoint, evaluate all on target
val and print the per-class table and the gains.

It runs the demo configs' recipe (optimiser, LR, input size, loss weights) on a shorter schedule
than the ablation's (``DEMO_ITERS``), so that it finishes in under ten minutes on two cores, data
writing included (4 min 41 s measured for v3, README); ``benchmarks/ablation.py`` runs the full
schedule with seeds and controls.

Every run resumes where it stopped (a finished run is skipped), so re-running the job after an
interruption continues instead of starting over.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from udaseg.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEMO_CONFIGS = "demo"  # the config set the main job and the studies run (a folder of configs/)


def config_folder(configs=DEMO_CONFIGS) -> Path:
    """A config set: a folder name of the repository's ``configs/`` (``demo``) or a path to a
    folder holding the same file names (``source_only.yaml``, ``fgd_ent.yaml`` ...)."""
    text = str(configs)
    folder = CONFIG_DIR / text if len(Path(text).parts) == 1 else Path(text)  # a name, else a path
    if not folder.is_dir():
        sets = sorted(d.name for d in CONFIG_DIR.iterdir() if d.is_dir()) if CONFIG_DIR.is_dir() else []
        raise FileNotFoundError(f"config set {text!r}: no folder {folder} (the repository's sets: "
                                f"{', '.join(sets) or 'none found'}; or give a folder's path)")
    return folder


def config_set_arg(text: str) -> str:
    """argparse ``type`` of ``--configs``: a set that does not exist is a usage error, before anything runs."""
    import argparse

    try:
        config_folder(text)
    except FileNotFoundError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_configs_argument(parser) -> None:
    """``--configs SET`` of the main job and the studies: one definition of its default, check and help."""
    parser.add_argument("--configs", default=DEMO_CONFIGS, type=config_set_arg, metavar="SET",
                        help="the config set: a folder of configs/ or a path to one (default %(default)s)")


def demo_config(method: str, data_dir: Path, seed: int, overrides=(), configs=DEMO_CONFIGS) -> dict:
    """``<configs>/<method>.yaml`` with the embedded benchmark's roots under ``data_dir``."""
    path = config_folder(configs) / f"{method}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: config set {str(configs)!r} has no config for {method!r}")
    return load_config(path, [
        f"seed={seed}",
        f"data.source.root={data_dir / 'gta5'}",
        f"data.target.root={data_dir / 'cityscapes'}",
        f"data.val.root={data_dir / 'cityscapes'}",
        f"data.dev.root={data_dir / 'cityscapes'}",
        *overrides,
    ])


# The demo's schedule: (stage-1 source-only, stage-2 adaptation) iterations, and no periodic
# validation (the final evaluation on val is the job's output). configs/demo: 3000 + 600.
DEMO_ITERS = (500, 200)
DEMO_SCHEDULE = ("train.val_every=0",)


def run_demo(data_dir="data/demo", run_dir="runs/demo", *, seed: int = 0, methods=("bn_control", "fgd_ent"),
             overrides=(), data_kwargs=None, workers: int = 2, progress: bool = True, report: bool = True,
             log=print, configs=DEMO_CONFIGS) -> dict:
    """Returns {"results": {name: EvalResult}, "run_dir": Path, "report": Path | None}.
    ``configs``: the config set (``config_folder``) whose recipe the job runs."""
    from udaseg.benchmark.writer import demo_is_complete, write_demo
    from udaseg.engine.evaluation import format_table
    from udaseg.engine.stages import run_training

    data_dir, run_dir = Path(data_dir), Path(run_dir)
    config_folder(configs)  # a wrong set is refused before anything is written
    if not demo_is_complete(data_dir, seed=seed):
        log(f"writing the embedded benchmark to {data_dir} (seed {seed}) ...")
        t0 = time.time()
        write_demo(data_dir, seed=seed, workers=workers, progress=progress, **(data_kwargs or {}))
        log(f"  done in {time.time() - t0:.1f} s")
    else:
        log(f"using the embedded benchmark in {data_dir}")

    runs = {}
    n1, n2 = DEMO_ITERS
    config = partial(demo_config, data_dir=data_dir, seed=seed, configs=configs)
    src_cfg = config("source_only", overrides=[*DEMO_SCHEDULE, f"train.iters={n1}", *overrides])
    log(f"the demo schedule: {n1} + {n2} iterations (the ablation's, benchmarks/ablation.py: "
        f"{config('source_only')['train']['iters']} + {config('fgd_ent')['train']['iters']}; configs: {config_folder(configs)})")
    log(f"stage 1: source-only, {src_cfg['train']['iters']} iterations -> {run_dir / 'source_only'}")
    t0 = time.time()
    runs["source_only"] = run_training(src_cfg, run_dir / "source_only", resume=True, progress=progress)["main"]["last"]
    log(f"  {time.time() - t0:.0f} s")
    for method in methods:
        cfg = config(method, overrides=[*DEMO_SCHEDULE, f"train.iters={n2}", *overrides,
                                        "train.pretrain_iters=0", f"train.init_from={runs['source_only']}"])
        log(f"stage 2: {method}, {cfg['train']['iters']} iterations from the source-only checkpoint -> {run_dir / method}")
        t0 = time.time()
        runs[method] = run_training(cfg, run_dir / method, resume=True, progress=progress)["main"]["last"]
        log(f"  {time.time() - t0:.0f} s")

    log("evaluating on target val at label resolution ...")
    results = {}
    for name, ckpt in runs.items():
        results[name] = _evaluate_checkpoint(ckpt, src_cfg)  # same val split and eval settings for all
    log("")
    log("per-class IoU (%) on target val, last checkpoints (not best-on-val):")
    log(format_table(results, baseline="source_only"))
    log("")
    base = results["source_only"].main_miou
    for name, r in results.items():
        if name != "source_only":
            log(f"{name}: mIoU {100 * r.main_miou:.1f} ({100 * (r.main_miou - base):+.1f} over source-only)")
    if "bn_control" in results and "fgd_ent" in results:
        gain = results["fgd_ent"].main_miou - results["bn_control"].main_miou
        log(f"fgd_ent over the BN-only control ({_control_means(src_cfg)}): {100 * gain:+.1f} "
            f"— the part of the gain the method itself earns")
    report_path = None
    if report:
        report_path = _write_report(run_dir, list(runs), [results[n] for n in runs], log)
    log(f"runs: {run_dir}   TensorBoard: tensorboard --logdir {run_dir}")
    return {"results": results, "run_dir": run_dir, "report": report_path, "checkpoints": runs}


def _control_means(cfg) -> str:
    """What the BN-only control is under this config's BN: with frozen BN (v3, pretrained weights)
    target images change nothing, so it is source-only trained for as long as the method."""
    if cfg["model"]["bn_mode"] == "frozen":
        return "same schedule, no target loss; BN frozen, so: source-only trained as long"
    return "same schedule, target images through train-mode BN, no target loss"


def _evaluate_checkpoint(ckpt, cfg):
    from udaseg.engine.checkpoint import load_checkpoint
    from udaseg.engine.builders import build_val_loader, evaluate_model, load_segmentor, resolve_device

    state = load_checkpoint(ckpt)
    device = resolve_device(cfg["train"]["device"])
    return evaluate_model(load_segmentor(state, device), cfg, device, build_val_loader(cfg))


def _write_report(run_dir: Path, names, results, log):
    try:
        from udaseg.apps.report_runs import write_report
    except ImportError:
        return None
    out = run_dir / "report.html"
    write_report([run_dir / n for n in names], out, results=results)  # evaluated above: not again
    log(f"report: {out}")
    return out
