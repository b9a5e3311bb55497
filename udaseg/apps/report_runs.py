"""``udaseg report`` of run directories: load each run, evaluate its checkpoint (or take the
caller's results), predict the qualitative grid, then hand everything to the renderer
(``udaseg.reporting.report``, which runs no model)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from udaseg.engine.builders import build_val_loader, load_segmentor, resolve_device
from udaseg.engine.checkpoint import atomic_write_text, load_checkpoint
from udaseg.engine.eval_checkpoints import BEST_NOTE, evaluate_state, evaluation_config, run_name
from udaseg.engine.inference import config_window, forward_options, predict_probs
from udaseg.engine.run_logger import read_metrics
from udaseg.reporting import viz
from udaseg.reporting.report import RunInfo, pick_indices, render_html


def load_run(run_dir, checkpoint: str = "last") -> RunInfo:
    """A run directory's meta.json, metrics and chosen checkpoint (``last`` or ``best``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} not found")
    meta_path = run_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    ckpt = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint {ckpt.relative_to(run_dir)} (has the run finished a stage?)")
    name = run_name(run_dir)
    stage1 = read_metrics(run_dir / "source_only") if (run_dir / "source_only" / "metrics.jsonl").is_file() else []
    return RunInfo(run_dir, name, meta, read_metrics(run_dir), stage1, ckpt)


@torch.no_grad()
def grid_predictions(model, cfg: dict, dataset, indices: list[int], device) -> list[tuple[np.ndarray, np.ndarray]]:
    """(prediction, normalised entropy) at label resolution for the chosen val items, made as
    evaluation makes them (same inference function and settings)."""
    ec, fw = cfg["eval"], forward_options(cfg, device)
    window, stride = config_window(cfg)
    out = []
    for i in indices:
        item = dataset[i]
        h, w = item["label"].shape if "label" in item else item["orig_size"]
        probs = predict_probs(model, item["image"][None].to(device), fw.norm, (h, w), flip=ec["flip"],
                              scales=ec["scales"], window=window, stride=stride, autocast_dtype=fw.autocast_dtype,
                              channels_last=fw.channels_last)
        out.append((probs.argmax(1)[0].cpu().numpy().astype(np.uint8), viz.normalized_entropy(probs)[0]))
    return out


def write_report(run_dirs, out_path, *, data_root=None, num_images: int = 4, checkpoint: str = "last",
                 device: str | None = None, title: str | None = None, thumb_width: int | None = None,
                 log=None, results=None, check_out=None) -> Path:
    """Evaluate each run's ``checkpoint`` on its target val split and write the HTML report.

    run_dirs: run directories, the baseline (source-only) first — differences are to it.
    data_root: the target val root when it moved since training (else each run's config).
    num_images: rows of the qualitative grid (spread over the val split). device: e.g. "cpu"
    (default: each run's ``train.device``). results: the runs' EvalResults on that split with
    the config's eval settings, where the caller already has them (the demo job), in run order;
    None (or a None entry) evaluates. check_out(out_path): raises if the page may not be written
    there, called just before writing. Returns the path written.
    """
    if not run_dirs:
        raise ValueError("the report needs at least one run directory")
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    t0 = time.time()
    runs = [load_run(d, checkpoint) for d in run_dirs]
    seen: dict[str, int] = {}
    for r in runs:  # two runs with the same folder name stay distinguishable
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} ({seen[r.name]})"
    overrides = [f"train.device={device}"] if device else []
    dataset, indices, preds, val_desc = None, [], [], ""
    if results is not None and len(results) != len(runs):
        raise ValueError(f"write_report: {len(results)} results for {len(runs)} runs")
    for i, r in enumerate(runs):
        state = load_checkpoint(r.checkpoint)
        cfg = evaluation_config(state, r.checkpoint, overrides, data_root=data_root)
        r.iteration = int(state.get("iteration", -1))
        dev = resolve_device(cfg["train"]["device"])
        model = load_segmentor(state, dev)
        if results is not None and results[i] is not None:
            r.result, settings = results[i], {"flip": cfg["eval"]["flip"], "scales": list(cfg["eval"]["scales"])}
        else:
            r.result, settings, _ = evaluate_state(state, cfg, r.checkpoint, model=model)
        del state
        if dataset is None:  # the first run's val split is the grid's
            dataset = build_val_loader(cfg).dataset
            indices = pick_indices(len(dataset), num_images)
            vc = cfg["data"]["val"]
            val_desc = (f"{vc['kind']} {vc['root']} split {vc.get('split')}, {r.result.num_images} images, at label "
                        f"resolution; flip {'on' if settings['flip'] else 'off'}, scales {settings['scales']}")
        preds.append(grid_predictions(model, cfg, dataset, indices, dev))
        del model
        if log is not None:
            log(f"{r.name}: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in r.result.miou.items()))
    html_text = render_html(runs, dataset, indices, preds, val_desc, checkpoint=checkpoint, title=title,
                            thumb_width=thumb_width, seconds=time.time() - t0,
                            notes=(BEST_NOTE,) if checkpoint == "best" else ())
    out_path = Path(out_path)
    if check_out is not None:  # again: a file may have appeared at out_path while the runs were evaluated
        check_out(out_path)
    atomic_write_text(out_path, html_text)  # a kill or full disk never leaves half a page over the last one
    return out_path
