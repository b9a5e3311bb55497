"""The paper's ablation on the embedded benchmark, with the controls it needs (DESIGN.md §2).

Per seed: one source-only run (stage 1); from its last checkpoint, for the same number of
iterations each: *continue source-only*, the *BN-only control*, AdaptSegNet, MinEnt, FADA
(fine-grained D alone), the paper's method (fine-grained D + entropy), and self-training on top:
DACS, the paper's method + self-training, and + MIC and rare-class sampling; a target-trained
*oracle* from scratch; and *AdaBN* (BN statistics of the source-only model re-estimated on target
train images) as a reference line. Every run is evaluated on target val (last checkpoint).

A run whose loss turns non-finite is recorded as diverged (listed apart, in no mean) and the
ablation goes on. All runs resume, finished ones are skipped, and results are written after each evaluation to
``<out>/ablation.json``, so an interrupted ablation continues where it stopped.

*Probes* investigate a result without touching the ablation's own runs: each is one more
adaptation run per seed from the same stage-1 checkpoint, with its own method and overrides
(e.g. ``fgd_ent`` at the paper's ``method.lambda_ent=0.001``), reported in extra rows.
"""
from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path

from udaseg.apps.pipeline import DEMO_CONFIGS
from udaseg.config import split_override_list
from udaseg.engine.checkpoint import atomic_write_json, atomic_write_text
from udaseg.engine.run_dir import config_digest, digest_matches
from udaseg.reporting.ablation_tables import (  # noqa: F401  (the tables' names, as before the split)
    LABELS, PAPER_ORDER, ROW_ORDER, SUMMARY_COLUMNS, THIN, format_markdown, row_label, row_names, summarise,
    summary_cells)

ADAPTATION = ("continue", "bn_control", "adaptsegnet", "minent", "fada", "fgd_ent",
              "dacs", "fgd_ent_st", "fgd_ent_st_mic")  # the last three: self-training (issue 12)


def parse_probe(text: str) -> tuple[str, str, list[str]]:
    """``NAME=METHOD[,key=value,...]`` → (name, method, overrides)."""
    name, sep, rest = text.partition("=")
    parts = split_override_list(rest) if sep else []
    method, extra = (parts[0], parts[1:]) if parts else ("", [])
    if not name or not method or name in LABELS or "/" in name:
        raise ValueError(f"probe {text!r}: expected NAME=METHOD[,key=value,...] with a new name "
                         f"(not one of {', '.join(LABELS)})")
    return name, method, extra


def check_probes(probes, data_dir, seed: int, overrides=(), configs=DEMO_CONFIGS) -> None:
    """Every probe's name once and its config valid — before anything trains, so a typo in a
    probe's method or key does not surface hours into a study."""
    from udaseg.apps.pipeline import demo_config

    names = [name for name, _, _ in probes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"probe name(s) given twice: {', '.join(twice)}")
    for name, method, extra in probes:
        try:
            demo_config(method, Path(data_dir), seed, [*overrides, *extra], configs=configs)
        except FileNotFoundError as exc:
            raise ValueError(f"probe {name}: no demo config for method {method!r}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"probe {name}: {exc}") from None


QUICK_DIVISOR = 10  # --quick: every schedule this many times shorter (a check that all rows run, not a result)


def quick_overrides(data_dir: Path, overrides=(), configs=DEMO_CONFIGS) -> dict[str, list[str]]:
    """Per config: the iteration overrides of the quick variant."""
    from udaseg.apps.pipeline import demo_config

    out = {}
    for method in ("source_only", "target_only", "fgd_ent"):
        it = demo_config(method, data_dir, 0, overrides, configs=configs)["train"]["iters"]
        out[method] = [f"train.iters={max(1, it // QUICK_DIVISOR)}"]
    return out


def publish_results(folder, stem: str, results: dict, markdown: str) -> None:
    """``<folder>/<stem>.json`` and ``<folder>/<STEM>.md``, atomically: a study's results copied
    into a tracked folder as they come (ablation, recipe study, dev grid)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / f"{stem}.json", results)
    atomic_write_text(folder / f"{stem.upper()}.md", markdown)


def load_study_results(path, publish_dir, empty: dict, log=print) -> dict:
    """A study's results so far: ``path`` (``<out>/<stem>.json``); where the out folder has none
    but the published copy exists (a fresh clone continuing a committed study), that copy — else
    the first new run, published, would replace every committed result with itself. Its runs
    count as measured; their checkpoints are not here."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    published = Path(publish_dir) / path.name if publish_dir is not None else None
    if published is not None and published.is_file():
        log(f"{path} not found: continuing the published results in {published}")
        return json.loads(published.read_text())
    return empty


def check_measured(results: dict, key: str, cfg: dict, path, run_dir=None) -> bool:
    """Whether ``key`` is already measured — with this config: a result of another config (an
    older recipe, other weights, a file from before digests were kept) is refused, naming it.
    ``run_dir``: where a result without a digest was trained; its config.yaml then decides."""
    run = results["runs"].get(key)
    if run is None:
        return False
    digest = run.get("config_digest")
    if digest is None and run_dir is not None and (Path(run_dir) / "config.yaml").is_file():
        import yaml

        digest = run["config_digest"] = config_digest(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))
    if not digest_matches(digest, cfg):
        raise ValueError(f"{path}: {key} was measured with another config than the current one (an older "
                         f"recipe or other weights; benchmark v2's studies ran the set now called "
                         f"--configs demo_scratch); write this study to another folder (--out)")
    return True


def train_or_diverged(cfg: dict, run_dir, progress: bool, log) -> tuple:
    """Train ``cfg`` into ``run_dir`` (resuming): (its last checkpoint, None); a run whose loss
    turns non-finite gives (None, the study's record of it) — a divergence is a result of a study
    (the ablation, the dev grid, the recipe study), not its end."""
    from udaseg.engine.stages import run_training
    from udaseg.engine.step import NonFiniteLossError

    try:
        return run_training(cfg, run_dir, resume=True, progress=progress)["main"]["last"], None
    except NonFiniteLossError as exc:
        log(f"  diverged: {exc}")
        return None, {"diverged": str(exc), "config_digest": config_digest(cfg)}


def run_ablation(data_dir="data/demo", out_dir="runs/ablation", seeds=(0, 1, 2), overrides=(), progress=False,
                 log=print, probes: list[tuple[str, str, list[str]]] = (), quick: bool = False,
                 publish_dir=None, configs=DEMO_CONFIGS) -> dict:
    """Runs what is missing, then summarises. ``quick``: every schedule ``QUICK_DIVISOR`` times
    shorter. ``publish_dir``: after each finished seed, ablation.json and ABLATION.md are also
    written there (a tracked folder, to commit results per seed as they come). ``configs``: the
    config set (``pipeline.config_folder``)."""
    from udaseg.benchmark.writer import demo_is_complete, write_demo
    from udaseg.apps import pipeline

    demo_config = partial(pipeline.demo_config, configs=configs)  # every run from the one config set
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_probes(probes, data_dir, seeds[0] if seeds else 0, overrides, configs)
    if not demo_is_complete(data_dir):
        log(f"writing the embedded benchmark to {data_dir} ...")
        write_demo(data_dir, seed=0, progress=progress)
    results_path = out_dir / "ablation.json"
    results = load_study_results(results_path, publish_dir, {"runs": {}}, log)
    if results.setdefault("quick", quick) != quick:
        raise ValueError(f"{results_path} holds a {'quick' if results['quick'] else 'full'} ablation; "
                         f"use another --out for the {'quick' if quick else 'full'} one")
    results["overrides"], results["configs"] = list(overrides), str(configs)
    short = quick_overrides(data_dir, overrides, configs) if quick else {}
    results.setdefault("probes", {}).update({name: [method, *extra] for name, method, extra in probes})
    for seed in seeds:
        seed_dir = out_dir / f"seed{seed}"
        src_cfg = demo_config("source_only", data_dir, seed, [*overrides, *short.get("source_only", [])])
        plan = [("source_only", src_cfg, False)]
        plan.append(("target_only", demo_config("target_only", data_dir, seed,
                                                [*overrides, *short.get("target_only", [])]), False))
        adapt_iters = demo_config("fgd_ent", data_dir, seed, [*overrides, *short.get("fgd_ent", [])])["train"]["iters"]
        for name in ADAPTATION:  # all from the stage-1 checkpoint, for the same number of iterations
            method = "source_only" if name == "continue" else name
            plan.append((name, demo_config(method, data_dir, seed, [*overrides, "train.pretrain_iters=0",
                                                                    f"train.iters={adapt_iters}"]), True))
        for name, method, extra in probes:
            plan.append((name, demo_config(method, data_dir, seed, [*overrides, "train.pretrain_iters=0",
                                                                    f"train.iters={adapt_iters}", *extra]), True))
        for name, cfg, from_source in plan:
            key = f"{seed}/{name}"
            if from_source:
                if "diverged" in results["runs"].get(f"{seed}/source_only", {}):
                    break  # no stage-1 checkpoint to adapt from
                cfg["train"]["init_from"] = str(seed_dir / "source_only" / "checkpoints" / "last.pt")
            if check_measured(results, key, cfg, results_path):
                continue
            t0 = time.time()
            log(f"seed {seed}: {name} ({cfg['train']['iters']} iterations)")
            last, diverged = train_or_diverged(cfg, seed_dir / name, progress, log)
            results["runs"][key] = diverged or {**evaluate_checkpoint(last, src_cfg),
                                                "seconds": round(time.time() - t0, 1), "config_digest": config_digest(cfg)}
            atomic_write_json(results_path, results)
        if "diverged" in results["runs"].get(f"{seed}/source_only", {}):
            log(f"seed {seed}: the source-only stage diverged; no adaptation rows, no AdaBN")
        elif not check_measured(results, f"{seed}/adabn", src_cfg, results_path):
            log(f"seed {seed}: AdaBN of the source-only model")
            results["runs"][f"{seed}/adabn"] = {
                **evaluate_checkpoint(seed_dir / "source_only" / "checkpoints" / "last.pt", src_cfg, adabn=True),
                "config_digest": config_digest(src_cfg)}
            atomic_write_json(results_path, results)
        summary = summarise(results)
        atomic_write_text(out_dir / "ABLATION.md", format_markdown(summary))
        if publish_dir is not None:
            publish_results(publish_dir, "ablation", results, format_markdown(summary))
            log(f"seed {seed} done: results in {publish_dir}")
    return summarise(results)


def evaluate_checkpoint(ckpt, cfg, adabn: bool = False) -> dict:
    """mIoU, per-class IoU and class fractions of a checkpoint on ``cfg``'s val split (with AdaBN
    on target train images first, if asked)."""
    from torch.utils.data import DataLoader

    from udaseg.engine.adabn import adapt_batchnorm
    from udaseg.engine.checkpoint import load_checkpoint
    from udaseg.engine.builders import build_split, build_val_loader, evaluate_model, load_segmentor, resolve_device

    state = load_checkpoint(ckpt)
    device = resolve_device(cfg["train"]["device"])
    model = load_segmentor(state, device)
    if adabn:
        tgt = build_split({**cfg["data"]["target"], "transforms": {"resize": cfg["data"]["target"]["transforms"].get("resize")}},
                          cfg["model"]["num_classes"], cfg["seed"], with_labels=False)
        model = adapt_batchnorm(model, DataLoader(tgt, batch_size=cfg["data"]["batch_size"]), cfg["model"]["input_norm"], device)
    r = evaluate_model(model, cfg, device, build_val_loader(cfg))
    return {"miou": r.main_miou, "iou": [None if math.isnan(v) else float(v) for v in r.iou],
            "predicted_fractions": [float(v) for v in r.predicted_fractions],
            "label_fractions": [float(v) for v in r.label_fractions], "checkpoint": str(ckpt)}


