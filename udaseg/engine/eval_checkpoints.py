"""Evaluating checkpoints (one, several, or all of a run) into one table, CSV and JSON.

What ``udaseg evaluate`` does, as functions:

    evals = evaluate_checkpoints(["runs/demo/fgd_ent"], flip=True, official_check=True)
    print(format_evaluations(evals))

Each checkpoint is evaluated with its own resolved config (model, input normalisation, val
split), changed by the caller's overrides. Rows are marked ``last`` / ``best``; ``best.pt`` was
chosen on the same val labels it is scored on, which the reference implementations do and which
is optimistic — the printed table says so.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udaseg.engine.evaluation import (EvalResult, class_labels, eval_class_map, evaluate_mapped, format_table,
                                      protocol_legend)
from udaseg.engine.inference import forward_options

BEST_NOTE = ("note: 'best' is the checkpoint with the highest val mIoU, picked with the very target labels it is "
             "scored on here. The reference implementations report it; it is optimistic, since an unsupervised "
             "method has no target labels to pick with. Report 'last' (or say the checkpoint was picked on val).")


@dataclass
class CheckpointRef:
    """A checkpoint file to evaluate, where it comes from, and how its row is marked."""

    path: Path
    run_dir: Path
    marks: list[str] = field(default_factory=list)  # "last" and/or "best"

    def label(self, with_run: bool) -> str:
        name = f"{run_name(self.run_dir)}/{self.path.name}" if with_run else self.path.name
        return name + (f" ({', '.join(self.marks)})" if self.marks else "")


@dataclass
class CheckpointEval:
    ref: CheckpointRef
    iteration: int
    method: str
    result: EvalResult
    settings: dict
    data: dict
    official: object = None  # OfficialComparison when the official check ran

    def to_dict(self) -> dict:
        d = {"checkpoint": str(self.ref.path), "run_dir": str(self.ref.run_dir), "marks": self.ref.marks,
             "iteration": self.iteration, "method": self.method, "settings": self.settings, "data": self.data,
             **self.result.to_dict()}
        if self.official is not None:
            d["official_check"] = self.official.to_dict()
        return d


def run_name(run_dir) -> str:
    """A run's short name: its folder, or ``<run>/source_only`` for a two-stage run's first stage."""
    run_dir = Path(run_dir)
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name == "source_only" else run_dir.name


def run_dir_of(checkpoint: Path) -> Path:
    """``<run>/checkpoints/x.pt`` → ``<run>``; any other file → its folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _marks_of(path: Path) -> list[str]:
    return {"last.pt": ["last"], "best.pt": ["best"]}.get(path.name, [])


def find_checkpoints(targets) -> list[CheckpointRef]:
    """Checkpoint files and run directories → checkpoints to evaluate, in order.

    A run directory gives all of ``<run>/checkpoints/*.pt`` (``last.pt`` first, then ``best.pt``,
    then the rest by name).
    """
    refs: list[CheckpointRef] = []
    order = {"last.pt": 0, "best.pt": 1}
    for t in targets:
        t = Path(t)
        if t.is_dir():
            folder = t / "checkpoints" if (t / "checkpoints").is_dir() else t
            files = sorted(folder.glob("*.pt"), key=lambda p: (order.get(p.name, 2), p.name))
            if not files:
                raise FileNotFoundError(f"{t}: no checkpoints (*.pt) in {folder}")
            refs += [CheckpointRef(p, run_dir_of(p), _marks_of(p)) for p in files]
        elif t.is_file():
            refs.append(CheckpointRef(t, run_dir_of(t), _marks_of(t)))
        else:
            raise FileNotFoundError(f"checkpoint or run directory {t} not found")
    return refs


def evaluation_config(state: dict, path, overrides=(), *, data_root=None, split=None) -> dict:
    """The checkpoint's resolved config with the caller's changes; checks the class counts."""
    from udaseg.config import resolve

    extra = list(overrides)
    section = "dev" if split == "dev" else "val"  # "dev": the config's data.dev section, wherever it is
    if data_root is not None:
        extra.append(f"data.{section}.root={data_root}")
    if split is not None and section == "val":
        extra.append(f"data.val.split={split}")
    if "config" not in state:
        raise ValueError(f"{path}: checkpoint holds no config; it was not written by the udaseg trainer")
    cfg = resolve(state["config"], extra)
    if section == "dev":
        cfg["data"]["val"] = cfg["data"]["dev"]
    k_ckpt, k_cfg = state.get("num_classes"), cfg["model"]["num_classes"]
    if k_ckpt is not None and k_ckpt != k_cfg:
        raise ValueError(f"{path}: checkpoint has {k_ckpt} classes but the config asks for model.num_classes={k_cfg}")
    return cfg


def evaluate_state(state: dict, cfg: dict, path, *, flip=None, scales=None, window=None, stride=None,
                   official_dir=None, progress: bool = False, model=None, on_probs=None) -> tuple[EvalResult, dict, object]:
    """Evaluate one loaded checkpoint. Returns (result, settings used, official comparison or None).

    flip / scales: None takes ``eval.flip`` / ``eval.scales`` from the config. window / stride:
    (W, H) of sliding-window inference on the network input; None takes ``eval.window`` /
    ``eval.stride`` (a window given here comes with its own stride). official_dir: write the
    predictions there as labelId PNGs and compare with the official Cityscapes script. on_probs:
    see :func:`udaseg.engine.evaluation.evaluate` (probabilities in the model's classes).
    """
    from udaseg.engine.builders import build_val_loader, load_segmentor, resolve_device

    ec, tc = cfg["eval"], cfg["train"]
    k_eval, class_map = eval_class_map(cfg)
    try:
        loader = build_val_loader(cfg)
    except ValueError as exc:  # DatasetError is a ValueError too; say which checkpoint wanted it
        raise type(exc)(f"{path}: {exc}") from None
    if loader.dataset.num_classes != k_eval:
        raise ValueError(f"{path}: checkpoint is evaluated in {k_eval} classes but dataset {loader.dataset.name} "
                         f"has {loader.dataset.num_classes}")
    device = resolve_device(tc["device"])
    model = load_segmentor(state, device) if model is None else model
    fw = forward_options(cfg, device)  # the same as udaseg predict's
    if window is None:  # the config's (HRDA's test_cfg slide), unless the command line gave one
        window, stride = ec.get("window"), stride if stride is not None else ec.get("stride")
    settings = {"flip": bool(ec["flip"] if flip is None else flip),
                "scales": [float(s) for s in (ec["scales"] if scales is None else scales)],
                "window": list(window) if window else None, "stride": list(stride) if stride else None,
                "amp": tc["amp"], "num_classes": k_eval}
    writer = None
    if official_dir is not None:
        if k_eval != 19:
            raise ValueError(f"{path}: the official Cityscapes script scores 19 classes; this checkpoint is "
                             f"evaluated in {k_eval}, which has no official counterpart")
        from udaseg.engine.official_check import LabelIdWriter

        writer = LabelIdWriter(loader.dataset, official_dir, k_eval)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = lambda it: tqdm(it, desc=f"evaluating {Path(path).name}", unit="batch", leave=False)  # noqa: E731
    # window / stride come as (W, H) like every size on the command line; torch wants (H, W)
    hw = lambda s: None if s is None else (int(s[1]), int(s[0]))  # noqa: E731
    # class_map (a 19-class model scored in 16): predictions outside the 16 count as misses
    result = evaluate_mapped(model, loader, k_eval, fw.norm, device, flip=settings["flip"],
                             scales=settings["scales"], window=hw(window), stride=hw(stride),
                             autocast_dtype=fw.autocast_dtype, channels_last=fw.channels_last, class_map=class_map,
                             progress=bar, on_batch=writer, on_probs=on_probs)
    official = None
    if writer is not None:
        from udaseg.engine.official_check import compare_with_official

        official = compare_with_official(result, writer.predictions, writer.ground_truths)
    return result, settings, official


def settings_tag(settings: dict) -> str:
    """File-name suffix naming the test-time options (so differently made numbers never overwrite)."""
    tag = ""
    if settings["flip"]:
        tag += "_flip"
    if settings["scales"] != [1.0]:
        tag += "_ms" + "-".join(f"{s:g}" for s in settings["scales"])
    if settings["window"]:
        tag += f"_slide{settings['window'][0]}x{settings['window'][1]}"
    return tag


def labelid_folder(ref, out_dir) -> Path:
    """Where ``--official-check`` writes the labelId predictions of checkpoint ``ref``."""
    dest = Path(out_dir) if out_dir else ref.run_dir
    return dest / "predictions_labelIds" / f"{run_name(ref.run_dir).replace('/', '_')}_{ref.path.stem}"


def evaluate_checkpoints(targets, *, overrides=(), data_root=None, split=None, flip=None, scales=None,
                         window=None, stride=None, out_dir=None, official_check: bool = False,
                         progress: bool = False, log=None, overwrite: bool = False) -> list[CheckpointEval]:
    """Evaluate checkpoint files and run directories (all their checkpoints), write
    ``eval_<split><tag>.csv`` / ``.json`` into each run directory (or all into ``out_dir``), and
    return the evaluations. A checkpoint of the same run and iteration as one already evaluated
    (``best.pt`` or a snapshot at ``last.pt``'s iteration) is folded into its row ("last, best"). ``official_check`` also scores each checkpoint's
    predictions with the Cityscapes official script (labelId PNGs kept beside the CSV). Files of
    those names that an earlier evaluate wrote are replaced (and said so); others are refused
    (after the evaluation, before any file is written) unless ``overwrite``; so is a labelId
    folder holding files evaluate did not write (checked before anything is evaluated)."""
    from udaseg.engine.checkpoint import load_checkpoint

    refs = find_checkpoints(targets)
    if official_check and not overwrite:  # before any evaluation writes a labelId file
        from udaseg.engine.official_check import foreign_folder

        foreign = [d for d in (labelid_folder(r, out_dir) for r in refs) if foreign_folder(d)]
        if foreign:
            raise FileExistsError(f"{foreign[0]} holds files udaseg evaluate did not write: refusing to write labelId "
                                  f"predictions into it (--overwrite writes there anyway; or choose another --out)")
    evals: list[CheckpointEval] = []
    for ref in refs:
        state = load_checkpoint(ref.path)
        it = int(state.get("iteration", -1))
        twin = next((e for e in evals if e.ref.run_dir == ref.run_dir and e.iteration == it), None)
        if twin is not None:  # e.g. best.pt or a snapshot at last.pt's iteration: same weights, one row
            twin.ref.marks.extend(ref.marks or [ref.path.stem])
            continue
        cfg = evaluation_config(state, ref.path, overrides, data_root=data_root, split=split)
        official_dir = labelid_folder(ref, out_dir) if official_check else None
        result, settings, official = evaluate_state(state, cfg, ref.path, flip=flip, scales=scales, window=window,
                                                    stride=stride, official_dir=official_dir, progress=progress)
        vc = cfg["data"]["val"]
        data = {"kind": vc["kind"], "root": str(vc["root"]), "split": vc.get("split")}
        evals.append(CheckpointEval(ref, it, str(state.get("method", cfg["method"]["name"])), result, settings, data,
                                    official))
        if log is not None:
            log(f"{ref.path}: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in result.miou.items())
                + (f"; {official.summary()}" if official is not None else ""))
        del state
    groups: dict[tuple[Path, int], list[CheckpointEval]] = {}
    for e in evals:
        groups.setdefault((Path(out_dir) if out_dir else e.ref.run_dir, e.result.num_classes), []).append(e)
    suffixes = {key: f"_{key[1]}cls" if sum(d == key[0] for d, _ in groups) > 1 else ""  # 19 and 16 classes in one folder
                for key in groups}
    if not overwrite:  # every file checked before any is written: a refusal leaves no half-written set
        _refuse_foreign([p for key, group in groups.items() for p in output_paths(group, key[0], suffixes[key])])
    for (dest, k), group in groups.items():
        replaced = [p for p in output_paths(group, dest, suffixes[dest, k]) if p.exists()]
        paths = write_outputs(group, dest, suffix=suffixes[dest, k])
        if log is not None:
            log(f"wrote {paths[0]} and {paths[1]}" + (f" (replaced the earlier {', '.join(p.name for p in replaced)})"
                                                      if replaced else ""))
    return evals


def _row_labels(evals: list[CheckpointEval]) -> list[str]:
    with_run = len({e.ref.run_dir for e in evals}) > 1
    return [f"{e.ref.label(with_run)} @{e.iteration}" for e in evals]


def format_evaluations(evals: list[CheckpointEval]) -> str:
    """The paper-layout table of all evaluations (one table per class count), the protocols'
    legend, the test-time settings and, when a 'best' row is present, the plain warning."""
    out = []
    by_k: dict[int, dict[str, EvalResult]] = {}
    for label, e in zip(_row_labels(evals), evals):
        by_k.setdefault(e.result.num_classes, {})[label] = e.result
    for k, results in by_k.items():
        out.append(f"per-class IoU (%), {k} classes, at label resolution:")
        out.append(format_table(results, all_protocols=True))
        out.append("protocols — " + protocol_legend(k))
    if evals:
        s = evals[0].settings
        d = evals[0].data
        out.append(f"data: {d['kind']} {d['root']} split {d['split']}, {evals[0].result.num_images} images; "
                   f"flip {'on' if s['flip'] else 'off'}, scales {s['scales']}, "
                   f"sliding window {s['window'] or 'off'}")
    if any("best" in e.ref.marks for e in evals):
        out.append(BEST_NOTE)
    for e in evals:
        if e.official is not None:
            out.append(f"{e.ref.path}: {e.official.summary()}")
    return "\n".join(out)


WRITTEN_BY = "udaseg evaluate"  # in the JSON: which files evaluate may replace
CSV_HEADER = "checkpoint,iteration,marks,method,"


def _written_by_evaluate(path: Path) -> bool:
    """Whether ``path`` is an output of ``udaseg evaluate`` (this or an older version)."""
    try:
        if path.suffix == ".json":
            doc = json.loads(path.read_text())
            return isinstance(doc, dict) and (doc.get("written_by") == WRITTEN_BY
                                              or str(doc.get("units", "")).startswith("IoU and mIoU as fractions"))
        return path.read_text().startswith(CSV_HEADER)
    except (OSError, ValueError):
        return False


def _refuse_foreign(paths) -> None:
    foreign = [p for p in paths if p.exists() and not _written_by_evaluate(p)]
    if foreign:
        raise FileExistsError(f"{foreign[0]} exists and was not written by udaseg evaluate: refusing to replace it "
                              f"(--overwrite replaces it; or choose another --out)")


def output_paths(evals: list[CheckpointEval], out_dir, suffix: str = "") -> tuple[Path, Path]:
    first = evals[0]
    stem = f"eval_{first.data['split'] or 'val'}{settings_tag(first.settings)}{suffix}"
    return Path(out_dir) / f"{stem}.csv", Path(out_dir) / f"{stem}.json"


def write_outputs(evals: list[CheckpointEval], out_dir, suffix: str = "") -> tuple[Path, Path]:
    """``eval_<split><tag>.csv`` (IoU in %, one row per checkpoint, classes then protocols) and
    ``.json`` (fractions, with settings, data, predicted fractions, official check), written
    atomically over whatever is there: ``evaluate_checkpoints`` refuses foreign files first, for
    the whole set at once."""
    from udaseg.engine.checkpoint import atomic_write_text

    csv_path, json_path = output_paths(evals, out_dir, suffix)
    first = evals[0]
    k = first.result.num_classes
    names = class_labels(k)
    keys = list(first.result.miou)
    with io.StringIO(newline="") as f:
        w = csv.writer(f)
        w.writerow(["checkpoint", "iteration", "marks", "method", *names, *keys, "pixel_accuracy"])
        for label, e in zip(_row_labels(evals), evals):
            pct = lambda v: "" if v is None or math.isnan(v) else f"{100 * v:.4f}"  # noqa: E731
            w.writerow([str(e.ref.path), e.iteration, "+".join(e.ref.marks), e.method,
                        *(pct(v) for v in e.result.iou), *(pct(e.result.miou.get(key, math.nan)) for key in keys),
                        pct(e.result.pixel_accuracy)])
        atomic_write_text(csv_path, f.getvalue())
    doc = {"written_by": WRITTEN_BY, "units": "IoU and mIoU as fractions (the CSV has percent)", "protocols": protocol_legend(k),
           "note": BEST_NOTE if any("best" in e.ref.marks for e in evals) else None,
           "checkpoints": [e.to_dict() for e in evals]}
    atomic_write_text(json_path, json.dumps(_no_nan(doc), indent=2, allow_nan=False) + "\n")
    return csv_path, json_path


def _no_nan(x):
    """JSON has no NaN: undefined numbers (a class never labelled nor predicted) become null."""
    if isinstance(x, np.generic):  # numpy scalars: plain Python numbers and bools
        x = x.item()
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
