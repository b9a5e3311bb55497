"""The embedded benchmark's recipe study: method-independent figures of a training recipe.

A recipe (optimiser, LR, input size, iterations ... as config overrides of a config set: by default
``configs/demo/``, v3; ``--configs demo_scratch`` is v2's) is judged only by models that involve no
adaptation method, per seed:

- the **oracle** (``target_only``: trained on target train labels) on target val;
- **source-only** on target val, on the held-out labelled *source* split (``gta5/heldout.txt``:
  does it learn in-domain?), and with AdaBN (BN statistics re-estimated on target train images);
- **source-only with per-image input normalisation** (``model.input_norm=per_image``) on target val;
- the oracle and source-only on the dev split too.

The issue's targets are figures on val of models that involve no adaptation method: they judge
the benchmark (is it learnable, is there a gap), not a method's hyper-parameters, which are
chosen on dev (:mod:`udaseg.apps.dev_grid`).

With the cheap fixes (AdaBN, per-image normalisation) closing at most a fraction of the
source-only → oracle gap, the gap is not colour or BN statistics alone and an adaptation method
has something to do. Results go to ``<out>/recipe.json`` after every evaluation; finished runs are
skipped, so an interrupted study continues where it stopped.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from udaseg.apps.pipeline import DEMO_CONFIGS
from udaseg.config import split_override_list
from udaseg.engine.checkpoint import atomic_write_json, atomic_write_text
from udaseg.reporting.ablation_tables import mean_std

# What a recipe must reach (means over seeds), per benchmark version: v2 (issue "decisive
# benchmark", from scratch) and v3 (issue #24: fine-tuning pretrained weights, demo_resnet18_world).
TARGETS_BY_VERSION = {
    "v2": {"oracle_min": 50.0,
           "heldout_source_vs_oracle": 1.0,  # source-only on held-out source >= oracle on target
           "source_only_share": (0.25, 0.60),  # source-only on target / oracle
           "cheap_fix_gap_max": 0.30,  # AdaBN, per-image normalisation: share of the gap closed
           "source_only_std_max": 1.0},
    "v3": {"oracle_min": 55.0, "heldout_source_vs_oracle": 1.0, "source_only_share": (0.40, 0.65),
           "cheap_fix_gap_max": 0.30, "source_only_std_max": 1.0},
}
TARGETS = TARGETS_BY_VERSION["v2"]
RUNS = ("target_only", "source_only", "source_only_per_image")


def heldout_source_config(cfg: dict) -> dict:
    """``cfg`` with its val split replaced by the held-out labelled source images, read like the
    source training images (resized to the training size; labels stay at file resolution)."""
    out = copy.deepcopy(cfg)
    src = cfg["data"]["source"]
    size = src["transforms"].get("resize")
    out["data"]["val"] = {**copy.deepcopy(src), "split_list": "heldout.txt",
                          "transforms": {"resize_image": list(size)} if size else {}}
    return out


def per_image_config(cfg: dict) -> dict:
    """``cfg`` with per-image input normalisation. Named pretrained weights refuse an input_norm
    other than the one they were trained with (elsewhere that is a slip); in this control the
    mismatch is the point, so the run gets the named weights' verified file instead of the name."""
    from udaseg.models.weights import PRETRAINED_WEIGHTS, resolve_pretrained

    out = copy.deepcopy(cfg)
    out["model"]["input_norm"] = "per_image"
    name = out["model"]["pretrained"]
    if name in PRETRAINED_WEIGHTS and not Path(name).exists():  # an existing path wins over a name
        out["model"]["pretrained"] = str(resolve_pretrained(name, out["model"]["arch"]))
    return out


def parse_recipe(text: str) -> tuple[str, list[str]]:
    """``NAME=key=value,key=value`` → (name, overrides); ``NAME`` alone: the configs as they are."""
    name, sep, rest = text.partition("=")
    if not name or "/" in name:
        raise ValueError(f"recipe {text!r}: expected NAME or NAME=key=value[,key=value...]")
    return name, split_override_list(rest) if sep else []


def run_recipes(recipes: list[tuple[str, list[str]]], data_dir="data/demo", out_dir="runs/recipe",
                seeds=(0, 1, 2), runs=RUNS, progress=False, log=print, publish_dir=None,
                targets: dict = TARGETS, configs=DEMO_CONFIGS) -> dict:
    """Run what is missing, then summarise; ``publish_dir``: recipe.json and RECIPE.md are also
    written there after every run (a tracked folder, to commit results as they come). A run whose
    loss turns non-finite is recorded as diverged and the study goes on. ``configs``: the config
    set the recipes override (``pipeline.config_folder``)."""
    from udaseg.apps.ablation import (check_measured, evaluate_checkpoint, load_study_results, publish_results,
                                      train_or_diverged)
    from udaseg.apps.dev_grid import dev_config
    from udaseg.apps.pipeline import demo_config
    from udaseg.engine.run_dir import config_digest
    from udaseg.benchmark.writer import demo_is_complete

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not demo_is_complete(data_dir):
        raise FileNotFoundError(f"{data_dir}: no complete embedded benchmark (run: udaseg data demo --out {data_dir})")
    path = out_dir / "recipe.json"
    results = load_study_results(path, publish_dir, {"recipes": {}, "runs": {}}, log)
    for name, overrides in recipes:
        if results["recipes"].setdefault(name, overrides) != overrides:
            raise ValueError(f"recipe {name!r} is in {path} with other overrides "
                             f"({results['recipes'][name]}); give the new one another name")
        for seed in seeds:
            for run in runs:
                key = f"{name}/{seed}/{run}"
                method = "source_only" if run.startswith("source_only") else run
                cfg = demo_config(method, data_dir, seed, overrides, configs=configs)
                if run == "source_only_per_image":
                    cfg = per_image_config(cfg)
                run_dir = out_dir / name / f"seed{seed}" / run
                if check_measured(results, key, cfg, path, run_dir):
                    rec = results["runs"][key]
                    if "diverged" in rec:
                        continue
                    if "dev" not in rec:  # measured before dev figures were kept
                        rec["dev"] = evaluate_checkpoint(run_dir / "checkpoints" / "last.pt", dev_config(cfg))
                        atomic_write_json(path, results)
                    continue
                log(f"{key}: {cfg['train']['iters']} iterations")
                t0 = time.time()
                last, diverged = train_or_diverged(cfg, run_dir, progress, log)
                if diverged:
                    results["runs"][key] = diverged
                    atomic_write_json(path, results)
                    continue
                rec = {"seconds": round(time.time() - t0, 1), "config_digest": config_digest(cfg),
                       "val": evaluate_checkpoint(last, cfg), "dev": evaluate_checkpoint(last, dev_config(cfg))}
                if run == "source_only":
                    rec["heldout_source"] = evaluate_checkpoint(last, heldout_source_config(cfg))
                    rec["adabn"] = evaluate_checkpoint(last, cfg, adabn=True)
                results["runs"][key] = rec
                atomic_write_json(path, results)
                log(f"  val mIoU {100 * rec['val']['miou']:.1f} ({rec['seconds']:.0f} s)")
                if publish_dir is not None:
                    publish_results(publish_dir, "recipe", results, format_markdown(summarise(results, targets)))
    summary = summarise(results, targets)
    atomic_write_text(out_dir / "RECIPE.md", format_markdown(summary))
    if publish_dir is not None:
        publish_results(publish_dir, "recipe", results, format_markdown(summary))
    return summary


def _stats(values: list[float]) -> dict:
    v = [100 * x for x in values]
    mean, std = mean_std(v)
    return {"mean": mean, "std": std, "n": len(v), "per_seed": v}


def summarise(results: dict, targets: dict = TARGETS) -> dict:
    """Per recipe: each figure's mean ± std over seeds, and each target of ``targets`` met or not."""
    out = {}
    for name in results["recipes"]:
        runs = {k.split("/", 1)[1]: r for k, r in results["runs"].items() if k.split("/")[0] == name}
        fig = {}
        for figure, run, field in (("oracle", "target_only", "val"), ("source_only", "source_only", "val"),
                                   ("heldout_source", "source_only", "heldout_source"),
                                   ("adabn", "source_only", "adabn"), ("per_image", "source_only_per_image", "val"),
                                   ("oracle_dev", "target_only", "dev"), ("source_only_dev", "source_only", "dev")):
            vals = [r[field]["miou"] for k, r in sorted(runs.items()) if k.endswith("/" + run) and field in r]
            if vals:
                fig[figure] = _stats(vals)
        out[name] = {"figures": fig, "checks": checks(fig, targets)}
        diverged = sorted(k for k, r in runs.items() if "diverged" in r)
        if diverged:
            out[name]["diverged"] = diverged
    return {"recipes": out, "overrides": results["recipes"]}


def checks(fig: dict, targets: dict = TARGETS) -> dict:
    """Each target of ``targets`` → True / False (None: not measured yet)."""
    t, m = targets, {k: v["mean"] for k, v in fig.items()}
    orc, so = m.get("oracle"), m.get("source_only")
    gap = orc - so if orc is not None and so is not None else None
    lo, hi = t["source_only_share"]
    res = {f"oracle >= {t['oracle_min']:g}": None if orc is None else orc >= t["oracle_min"],
           "held-out source >= oracle": None if orc is None or "heldout_source" not in m
           else m["heldout_source"] >= t["heldout_source_vs_oracle"] * orc,
           f"source-only {100 * lo:.0f}-{100 * hi:.0f}% of oracle": None if gap is None else lo <= so / orc <= hi,
           f"source-only std <= {t['source_only_std_max']:.1f}": None
           if "source_only" not in fig or fig["source_only"]["n"] < 2
           else fig["source_only"]["std"] <= t["source_only_std_max"]}
    for fix in ("adabn", "per_image"):
        res[f"{fix} closes <= {100 * t['cheap_fix_gap_max']:.0f}% of the gap"] = \
            None if gap is None or fix not in m or gap <= 0 else (m[fix] - so) / gap <= t["cheap_fix_gap_max"]
    return res


def gap_share(fig: dict, fix: str) -> float | None:
    try:
        return (fig[fix]["mean"] - fig["source_only"]["mean"]) / (fig["oracle"]["mean"] - fig["source_only"]["mean"])
    except (KeyError, ZeroDivisionError):
        return None


def format_markdown(summary: dict) -> str:
    cols = ("oracle", "source_only", "heldout_source", "adabn", "per_image")
    head = ("recipe", "oracle (target val)", "source-only (target val)", "source-only (held-out source)",
            "AdaBN (gap closed)", "per-image norm (gap closed)")
    out = ["mIoU19 (%) mean ± std over seeds, last checkpoints.", "", "| " + " | ".join(head) + " |",
           "|---" * len(head) + "|"]
    for name, r in summary["recipes"].items():
        cells = []
        for c in cols:
            f = r["figures"].get(c)
            cell = "–" if f is None else f"{f['mean']:.1f} ± {f['std']:.1f} (n={f['n']})"
            share = gap_share(r["figures"], c) if c in ("adabn", "per_image") else None
            cells.append(cell + (f", {100 * share:.0f}%" if share is not None else ""))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    dev = [f"{name}: oracle {r['figures']['oracle_dev']['mean']:.1f}, source-only "
           f"{r['figures']['source_only_dev']['mean']:.1f}" for name, r in summary["recipes"].items()
           if "oracle_dev" in r["figures"] and "source_only_dev" in r["figures"]]
    if dev:
        out += ["", "The same models on the dev split (mean over seeds): " + "; ".join(dev) + "."]
    diverged = [f"{name} ({', '.join(r['diverged'])})" for name, r in summary["recipes"].items() if r.get("diverged")]
    if diverged:
        out += ["", "Diverged (non-finite loss, no figures): " + "; ".join(diverged) + "."]
    out += ["", "Targets:", ""]
    for name, r in summary["recipes"].items():
        met = ", ".join(f"{k}: {'yes' if v else 'no' if v is not None else '–'}" for k, v in r["checks"].items())
        out.append(f"- **{name}** ({' '.join(summary['overrides'][name]) or 'configs as they are'}): {met}")
    return "\n".join(out) + "\n"
