"""Loss weights of the embedded benchmark's methods, chosen on the labelled target ``dev`` split.

The rule (README "Choosing hyper-parameters"): weights are chosen on ``dev``, results reported on
``val``. Every method varies one weight over three values — one seed, the ablation's schedule,
from one stage-1 (source-only) checkpoint — and the value with the best dev mIoU (last
checkpoint) is chosen. A method that adds a loss to another inherits that one's chosen weights
and varies only its own (the paper's method = FADA's fine-grained D, chosen on FADA's grid, + an
entropy term varied here). So the dev runs behind a method's weights accumulate along its
parents: 3 for AdaptSegNet, MinEnt, FADA and DACS, 6 for the paper's method, 9 for + self-training,
12 for + MIC (``runs_behind``); BENCHMARKS.md states this next to the grid's table.
Auxiliary (conv4) weights are tied to the main one by the references' ratio (0.0002 / 0.001).

The grid trains on seed 3, which is not one of the ablation's seeds (0, 1, 2): the chosen point
is the best of three runs on dev, and the luck of that one run would carry over to val if it were
also one of the ablation's runs.

A point whose loss turns non-finite is recorded as diverged (shown so, never chosen) and the grid
goes on. Results go to ``<out>/grid.json`` after every run; finished runs are skipped, so an interrupted
grid continues where it stopped. Every run adapts from one stage-1 checkpoint, recorded by its
SHA-256: a stage 1 retrained at the same path (another CPU gives other bits) is refused.

Results of a config that has since changed can be moved under ``superseded`` in ``grid.json``
(with a ``why``): shown in a table of their own, never chosen from.

*Dev probes* investigate a method on dev (never on val): each is one more run from the grid's
stage-1 checkpoint with its own method and overrides (``NAME=METHOD[,key=value,...]``, e.g.
``softmax_d=fgd_ent,method.d_input=softmax``), reported in a table of their own. A probe takes its
method's weights from ``<config set>/<method>.yaml`` (where the grid's chosen values are written);
a probe measured before that file changed is refused as another config's result: give the
re-run a new name.
"""
from __future__ import annotations

import copy
import time
from functools import partial
from pathlib import Path

from udaseg.apps.pipeline import DEMO_CONFIGS
from udaseg.engine.checkpoint import atomic_write_json, atomic_write_text

AUX_RATIO = 0.2  # AdaptSegNet / ADVENT: lambda_*_aux 0.0002 with lambda_* 0.001
# method: the weight it varies (key, values), weights tied to it (key: factor), and the methods
# whose chosen weights it inherits — in an order where every parent comes first.
GRID = {
    "adaptsegnet": {"vary": ("method.lambda_adv", (1e-4, 1e-3, 1e-2)), "tied": {"method.lambda_adv_aux": AUX_RATIO}},
    "minent": {"vary": ("method.lambda_ent", (1e-3, 1e-2, 1e-1)), "tied": {"method.lambda_ent_aux": AUX_RATIO}},
    "fada": {"vary": ("method.lambda_adv", (1e-3, 1e-2, 1e-1))},
    "fgd_ent": {"inherit": ("fada",), "vary": ("method.lambda_ent", (1e-3, 1e-2, 1e-1)),
                "tied": {"method.lambda_ent_aux": AUX_RATIO}},
    "dacs": {"vary": ("self_training.weight", (0.3, 1.0, 3.0))},
    "fgd_ent_st": {"inherit": ("fgd_ent",), "vary": ("self_training.weight", (0.3, 1.0, 3.0))},
    "fgd_ent_st_mic": {"inherit": ("fgd_ent_st",), "vary": ("self_training.mic.weight", (0.3, 1.0, 3.0))},
}


GRID_SEED = 3  # not an ablation seed (see above)


def runs_behind(method: str) -> int:
    """How many dev runs chose ``method``'s weights: its own grid plus its parents'."""
    return len(GRID[method]["vary"][1]) + sum(runs_behind(p) for p in GRID[method].get("inherit", ()))


def point_overrides(method: str, value: float) -> list[str]:
    """The overrides of one grid point: the varied weight and the weights tied to it."""
    key, _ = GRID[method]["vary"]
    return [f"{key}={value}", *(f"{k}={factor * value:.6g}" for k, factor in GRID[method].get("tied", {}).items())]


def point_name(method: str, value: float) -> str:
    return f"{GRID[method]['vary'][0].rsplit('.', 1)[-1]}={value:g}"


def chosen(results: dict, method: str) -> dict | None:
    """The best grid point of ``method`` on dev (None until all its points ran): its overrides,
    the parents' included, and its dev mIoU."""
    points = [results["runs"].get(f"{method}/{point_name(method, v)}") for v in GRID[method]["vary"][1]]
    trained = [p for p in points if p is not None and "diverged" not in p]  # a diverged point is never chosen
    if any(p is None for p in points) or not trained:
        return None
    best = max(trained, key=lambda p: p["dev_miou"])
    return {"overrides": best["overrides"], "dev_miou": best["dev_miou"], "name": best["name"]}


def plan(results: dict, methods) -> list[tuple[str, str, list[str]]]:
    """(method, point name, overrides) of every grid point whose parents are chosen."""
    out = []
    for method in methods:
        inherited = []
        for parent in GRID[method].get("inherit", ()):
            c = chosen(results, parent)
            if c is None:
                break
            inherited += c["overrides"]
        else:
            out += [(method, point_name(method, v), inherited + point_overrides(method, v))
                    for v in GRID[method]["vary"][1]]
    return out


def dev_config(cfg: dict) -> dict:
    """``cfg`` evaluated on its ``data.dev`` section instead of ``data.val``."""
    out = copy.deepcopy(cfg)
    out["data"]["val"] = out["data"]["dev"]
    return out


def stage1_mismatch(path, stage1, evidence: str) -> str:
    """The error for a grid whose runs adapted from another checkpoint than ``stage1`` (at the
    same path: retrained — a fresh clone continuing a published grid, another machine)."""
    return (f"{path}: its runs adapted from another stage-1 checkpoint than {stage1} ({evidence}; retrained, "
            f"perhaps on another machine): their dev figures and new ones would not compare; write to another --out")


def run_grid(data_dir="data/demo", out_dir="runs/dev_grid", methods=tuple(GRID), seed: int = GRID_SEED,
             overrides=(), stage1=None, progress=False, log=print, publish_dir=None,
             probes: list[tuple[str, str, list[str]]] = (), configs=DEMO_CONFIGS) -> dict:
    """Run every missing grid point (parents' grids first), then every missing dev probe (see the
    module's docstring), evaluate each on dev, and summarise. ``stage1``: the source-only
    checkpoint to adapt from (default: trained into <out>/source_only). ``configs``: the config
    set (``pipeline.config_folder``)."""
    from udaseg.apps.ablation import (check_measured, check_probes, evaluate_checkpoint, load_study_results,
                                      publish_results, train_or_diverged)
    from udaseg.apps import pipeline
    from udaseg.engine.run_dir import config_digest
    from udaseg.engine.stages import run_training
    from udaseg.models.deeplabv2 import sha256sum

    demo_config = partial(pipeline.demo_config, configs=configs)  # every run from the one config set
    unknown = set(methods) - set(GRID)
    if unknown:
        raise ValueError(f"no dev grid for {', '.join(sorted(unknown))}; methods with one: {', '.join(GRID)}")
    methods = [m for m in GRID if m in methods]  # parents first
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_probes(probes, data_dir, seed, overrides, configs)
    path = out_dir / "grid.json"
    results = load_study_results(path, publish_dir, {"runs": {}}, log)
    results.update(seed=seed, overrides=list(overrides))
    src = demo_config("source_only", data_dir, seed, overrides)
    if stage1 is None:
        stage1 = run_training(src, out_dir / "source_only", resume=True, progress=progress)["main"]["last"]
    sha = sha256sum(stage1)
    recorded = results.get("stage1", {})
    same_path = recorded.get("checkpoint") == str(stage1)
    if same_path and recorded.get("sha256", sha) != sha:
        raise ValueError(stage1_mismatch(path, stage1, f"SHA-256 {sha[:12]}…, recorded {recorded['sha256'][:12]}…"))
    if not same_path or "sha256" not in recorded:
        # the starting point of every run, on dev: what each grid point gains from it
        ev = evaluate_checkpoint(stage1, dev_config(src))
        if same_path and abs(ev["miou"] - recorded["dev_miou"]) > 1e-3:  # a record from before digests: its figure
            raise ValueError(stage1_mismatch(path, stage1, f"dev mIoU {100 * ev['miou']:.2f}, recorded "
                                                           f"{100 * recorded['dev_miou']:.2f}"))
        results["stage1"] = {"checkpoint": str(stage1), "sha256": sha, "dev_miou": ev["miou"], "dev_iou": ev["iou"]}
        atomic_write_json(path, results)
    adapt_iters = demo_config("fgd_ent", data_dir, seed, overrides)["train"]["iters"]

    def adaptation_config(method, extra):
        return demo_config(method, data_dir, seed, [*overrides, "train.pretrain_iters=0", f"train.iters={adapt_iters}",
                                                    f"train.init_from={stage1}", *extra])

    def run_on_dev(cfg, run_dir, **fields):
        t0 = time.time()
        last, diverged = train_or_diverged(cfg, run_dir, progress, log)
        if diverged:  # kept, never chosen
            return {**fields, **diverged}
        ev = evaluate_checkpoint(last, dev_config(cfg))
        log(f"  dev mIoU {100 * ev['miou']:.1f}")
        return {**fields, "dev_miou": ev["miou"], "dev_iou": ev["iou"], "seconds": round(time.time() - t0, 1),
                "checkpoint": str(last), "config_digest": config_digest(cfg)}

    def save():
        atomic_write_json(path, results)
        if publish_dir is not None:
            publish_results(publish_dir, "grid", results, format_markdown(results))

    done = -1
    while len(results["runs"]) > done:  # each pass runs the points whose parents are now chosen
        done = len(results["runs"])
        for method, name, extra in plan(results, methods):
            key = f"{method}/{name}"
            cfg = adaptation_config(method, extra)
            if check_measured(results, key, cfg, path):
                continue
            log(f"dev grid: {key} ({' '.join(extra)})")
            results["runs"][key] = run_on_dev(cfg, out_dir / method / name, name=name, overrides=extra)
            save()
    measured_probes = results.setdefault("probes", {})
    for name, method, extra in probes:
        cfg = adaptation_config(method, extra)
        if check_measured({"runs": measured_probes}, name, cfg, path):
            continue
        log(f"dev probe: {name} ({method} {' '.join(extra)})")
        measured_probes[name] = run_on_dev(cfg, out_dir / "probes" / name, method=method, overrides=extra)
        save()
    failed = sorted(m for m in methods if all(  # every point diverged: nothing chosen, ever
        "diverged" in results["runs"].get(f"{m}/{point_name(m, v)}", {}) for v in GRID[m]["vary"][1]))
    if failed:
        log(f"dev grid: every point of {', '.join(failed)} diverged: nothing to choose (lower the LR or the weights)")
    waiting = sorted({p for m in methods for p in GRID[m].get("inherit", ()) if chosen(results, p) is None})
    if waiting:
        log(f"dev grid: not run, waiting for the grid of {', '.join(waiting)} (add it to --methods)")
    atomic_write_text(out_dir / "GRID.md", format_markdown(results))
    return results


def format_markdown(results: dict) -> str:
    out = [f"Dev mIoU19 (%, last checkpoints, seed {results.get('seed', GRID_SEED)}, the ablation's schedule from "
           "one stage-1 checkpoint). **Bold**: chosen."
           + (f" The stage-1 (source-only) checkpoint itself: {100 * results['stage1']['dev_miou']:.1f}."
              if "stage1" in results else "")]
    if results.get("runs"):  # probes alone (--methods ''): no empty grid table
        out += ["", "| method | varied | inherited / tied | dev mIoU per value | dev runs behind the choice |",
                "|---|---|---|---|---|"]
    for method, spec in GRID.items():
        key, values = spec["vary"]
        runs = [results["runs"].get(f"{method}/{point_name(method, v)}") for v in values]
        if all(r is None for r in runs):
            continue
        best = chosen(results, method)
        cells = []
        for v, r in zip(values, runs):
            if r is None:
                cells.append(f"{v:g}: –")
            elif "diverged" in r:
                cells.append(f"{v:g}: diverged")
            else:
                text = f"{v:g}: {100 * r['dev_miou']:.1f}"
                cells.append(f"**{text}**" if best and best["name"] == r["name"] else text)
        first, value = next((r, v) for r, v in zip(runs, values) if r is not None)
        own = set(point_overrides(method, value))
        fixed = [o for o in first["overrides"] if o not in own]  # inherited from the parents' choices
        fixed += [f"{k} = {factor:g} × {key.rsplit('.', 1)[-1]}" for k, factor in spec.get("tied", {}).items()]
        out.append(f"| {method} | {key} | {' '.join(fixed) or '–'} | {' / '.join(cells)} | {runs_behind(method)} |")
    if results.get("probes"):
        out += ["", "Dev probes (the same stage-1 checkpoint and schedule; weights from the config set's YAMLs).", "",
                "| probe | method | overrides | dev mIoU |", "|---|---|---|---|"]
        for name, r in results["probes"].items():
            score = "diverged" if "diverged" in r else f"{100 * r['dev_miou']:.1f}"
            out.append(f"| {name} | {r['method']} | {' '.join(r['overrides']) or '–'} | {score} |")
    if results.get("superseded"):  # runs of a config since changed, kept for the record (never chosen from)
        out += ["", "Superseded (measured with a config since changed; not chosen from).", "",
                "| run | why | dev mIoU |", "|---|---|---|"]
        for name, r in results["superseded"].items():
            out.append(f"| {name} | {r.get('why', '–')} | {100 * r['dev_miou']:.1f} |")
    return "\n".join(out) + "\n"
