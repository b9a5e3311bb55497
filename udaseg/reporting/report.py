"""``udaseg report``: one self-contained HTML page comparing runs (images embedded as base64).

Shaped like the paper's results: per-class IoU tables (Tables 1–3) with the differences to the
first run (put the source-only run first), a bar chart of per-class IoU per method, predicted
class fractions (a collapse towards one class shows there, not in the mean), training curves from
``metrics.jsonl`` and a qualitative grid — image | ground truth | each run's prediction, with each
run's entropy map under its prediction (Figs. 3, 6, 7). Oracle runs (trained on target labels)
are marked as such.

This module only renders: the runs arrive evaluated (``RunInfo.result``) with their grid
predictions; loading checkpoints and running the model is ``udaseg.apps.report_runs``:

    write_report(["runs/demo_source_only", "runs/demo_fgd_ent"], "report.html")
"""
from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udaseg.data import labels as Lb
from udaseg.engine.evaluation import EvalResult, class_labels, protocol_legend
from udaseg.reporting import viz
from udaseg.reporting.page import CSS, fig_png, figure, img_tag

_PROTO_ORDER = ("mIoU19", "mIoU16", "mIoU13")


# ----------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """What the report needs from a run directory."""

    dir: Path
    name: str
    meta: dict
    metrics: list[dict]
    stage1_metrics: list[dict] = field(default_factory=list)  # <run>/source_only, when two-stage
    checkpoint: Path | None = None
    iteration: int | None = None
    result: EvalResult | None = None

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "?"))

    @property
    def oracle(self) -> bool:
        return bool(self.meta.get("oracle_uses_target_labels"))

    @property
    def label(self) -> str:
        return self.name + (" [oracle]" if self.oracle else "")


# ----------------------------------------------------------------------------------------------
# HTML pieces
# ----------------------------------------------------------------------------------------------

def _pct(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.1f}"


def _protocol_keys(k: int, result: EvalResult) -> list[str]:
    return [p for p in _PROTO_ORDER if p in result.miou] or list(result.miou)


def iou_table_html(runs: list[RunInfo]) -> str:
    """Per-class IoU (%) rows per run, classes in Cityscapes order, the protocols' mIoU last;
    the best non-oracle value of each column in bold (as the paper's tables)."""
    k = runs[0].result.num_classes
    names, keys = class_labels(k), _protocol_keys(k, runs[0].result)
    cols = [r.result.iou for r in runs]
    mious = [[r.result.miou.get(p, math.nan) for p in keys] for r in runs]
    contenders = [i for i, r in enumerate(runs) if not r.oracle] or list(range(len(runs)))

    def best_of(values):  # bold needs a real best: several runs and a value above zero
        vals = [values[i] for i in contenders if not math.isnan(values[i])]
        return max(vals) if vals and max(vals) > 0 and len(runs) > 1 else None

    best_cls = [best_of([c[j] for c in cols]) for j in range(k)]
    best_m = [best_of([m[j] for m in mious]) for j in range(len(keys))]
    head = "".join(f'<th class="cls"><span>{html.escape(n)}</span></th>' for n in names)
    head += "".join(f'<th class="miou">{p}</th>' for p in keys)
    rows = []
    for i, r in enumerate(runs):
        cells = "".join(f'<td{" class=best" if i in contenders and v == best_cls[j] else ""}>{_pct(v)}</td>'
                        for j, v in enumerate(r.result.iou))
        cells += "".join(f'<td class="miou{" best" if i in contenders and v == best_m[j] else ""}">{_pct(v)}</td>'
                         for j, v in enumerate(mious[i]))
        rows.append(f'<tr{" class=oracle" if r.oracle else ""}><th class="run">{html.escape(r.label)}'
                    f'<div class="sub">{html.escape(r.method)} @{r.iteration}</div></th>{cells}</tr>')
    return f'<table class="iou"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def _diff_cell(d: float, cls: str = "") -> str:
    if math.isnan(d):
        return f'<td class="{cls}">–</td>'
    # green for gains, red for losses; saturating at ±20 points
    a = min(abs(d) * 100 / 20, 1.0) * 0.55
    colour = f"rgba(46,160,67,{a:.2f})" if d > 0 else f"rgba(218,54,51,{a:.2f})"
    return f'<td class="{cls}" style="background:{colour}">{100 * d:+.1f}</td>'


def diff_table_html(runs: list[RunInfo]) -> str:
    """Each later run minus the first, per class and per protocol (percentage points)."""
    base = runs[0]
    k = base.result.num_classes
    names, keys = class_labels(k), _protocol_keys(k, base.result)
    head = "".join(f'<th class="cls"><span>{html.escape(n)}</span></th>' for n in names)
    head += "".join(f'<th class="miou">Δ{p}</th>' for p in keys)
    rows = []
    for r in runs[1:]:
        cells = "".join(_diff_cell(a - b) for a, b in zip(r.result.iou, base.result.iou))
        cells += "".join(_diff_cell(r.result.miou.get(p, math.nan) - base.result.miou.get(p, math.nan), "miou")
                         for p in keys)
        rows.append(f'<tr{" class=oracle" if r.oracle else ""}><th class="run">{html.escape(r.label)}</th>{cells}</tr>')
    return (f'<p>Percentage points relative to <b>{html.escape(base.label)}</b>.</p>'
            f'<table class="iou"><tr><th></th>{head}</tr>{"".join(rows)}</table>')


def fractions_table_html(runs: list[RunInfo]) -> str:
    """Share of val pixels predicted as each class (%), with the ground truth's share first."""
    k = runs[0].result.num_classes
    names = class_labels(k)
    head = "".join(f'<th class="cls"><span>{html.escape(n)}</span></th>' for n in names)
    gt = runs[0].result.label_fractions
    rows = [f'<tr class="gt"><th class="run">ground truth</th>{"".join(f"<td>{_pct(v)}</td>" for v in gt)}</tr>']
    for r in runs:
        cells = "".join(f"<td>{_pct(v)}</td>" for v in r.result.predicted_fractions)
        rows.append(f'<tr{" class=oracle" if r.oracle else ""}><th class="run">{html.escape(r.label)}</th>{cells}</tr>')
    return f'<table class="iou"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def runs_table_html(runs: list[RunInfo]) -> str:
    rows = []
    for r in runs:
        m = r.meta
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r.label, r.method, m.get("bn_mode", "?"), r.iteration,
            "yes — trained on target labels (upper bound, not adaptation)" if r.oracle else "no",
            m.get("init_from") or "–", m.get("git_revision", "?"), r.dir)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run", "method", "BN mode", "iteration", "oracle", "initialised from",
                                            "git revision", "directory"))
    return f'<table class="runs"><tr>{head}</tr>{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------------
# plots (matplotlib object API on Agg)
# ----------------------------------------------------------------------------------------------

def _run_colours(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def bar_chart_png(runs: list[RunInfo]) -> bytes:
    """Grouped bars: per-class IoU (%) of each run, classes in Cityscapes order, mIoU last."""
    k = runs[0].result.num_classes
    names = class_labels(k) + ["mIoU"]
    x = np.arange(len(names))
    width = 0.8 / len(runs)
    fig = figure(14, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for i, (r, c) in enumerate(zip(runs, _run_colours(len(runs)))):
        vals = np.append(r.result.iou, r.result.main_miou) * 100
        ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(vals), width, label=r.label, color=c,
               hatch="//" if r.oracle else None, edgecolor="white" if r.oracle else None)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(len(runs), 4), fontsize=9, loc="upper right")
    ax.set_title("per-class IoU on target val")
    return fig_png(fig)


def _smooth(values: np.ndarray) -> np.ndarray:
    """Moving average over ~2% of the points (losses of single iterations are noisy)."""
    w = max(1, len(values) // 50)
    if w == 1:
        return values
    kernel = np.ones(w) / w
    padded = np.concatenate([np.full(w - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _series(records: list[dict], key: str, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["iter"] + offset, r[key]) for r in records
           if isinstance(r.get(key), (int, float)) and r.get("iter") is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    it, v = zip(*pts)
    return np.asarray(it, float), np.asarray(v, float)


_NOT_LOSSES = {"kind", "iter", "time", "lr", "sec_per_iter"}


def _curve_keys(runs: list[RunInfo]) -> tuple[list[str], list[str]]:
    losses, accs = [], []
    for r in runs:
        for rec in r.stage1_metrics + r.metrics:
            if rec.get("kind") != "train":
                continue
            for key, v in rec.items():
                if key in _NOT_LOSSES or not isinstance(v, (int, float)):
                    continue
                target = accs if key.endswith("_acc") else losses
                if key not in target:
                    target.append(key)
    return losses, accs


def curves_png(runs: list[RunInfo]) -> bytes | None:
    """Training losses (one panel each), discriminator accuracy and val mIoU over iterations.

    A two-stage run's source-only stage is drawn before its adaptation stage (dotted line at the
    switch), so the x axis counts all iterations of the run."""
    losses, accs = _curve_keys(runs)
    panels = [("loss", key) for key in losses] + [("acc", key) for key in accs] + [("val", "val mIoU")]
    if not any(r.metrics or r.stage1_metrics for r in runs):
        return None
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig = figure(14, 3.0 * nrows)
    colours = _run_colours(len(runs))
    shown = {r.dir for r in runs}
    for pi, (kind, key) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, pi + 1)
        for r, c in zip(runs, colours):
            offset = max((rec.get("iter", 0) for rec in r.stage1_metrics), default=0)
            # a stage 1 that is itself one of the runs is drawn once, as that run
            stage1 = r.stage1_metrics if (r.dir / "source_only") not in shown else []
            parts = [(stage1, 0, ":"), (r.metrics, offset, "-")] if stage1 else [(r.metrics, offset, "-")]
            for j, (recs, off, style) in enumerate(parts):
                if kind == "val":
                    vals = [x for x in recs if x.get("kind") == "val"]
                    main = next((p for p in _PROTO_ORDER if vals and p in vals[0]), None)
                    if main is None:
                        continue
                    it, v = _series(vals, main, off)
                    v = v * 100
                    marker = "o"
                else:
                    it, v = _series([x for x in recs if x.get("kind") == "train"], key, off)
                    v = _smooth(v) if len(v) else v
                    marker = "o" if len(v) == 1 else None  # a lone point has no line to show it
                if len(it):
                    ax.plot(it, v, style, color=c, marker=marker, ms=3, lw=1.2,
                            label=r.label if j == len(parts) - 1 else None)
            if r.stage1_metrics and offset:
                ax.axvline(offset, color=c, ls=":", lw=0.8, alpha=0.6)
        title = {"loss": f"loss: {key}", "acc": f"discriminator accuracy: {key}",
                 "val": "validation mIoU (%, the run's train.validate_on split)"}[kind]
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if kind == "acc":
            ax.set_ylim(0, 1)
        if pi == len(panels) - 1 and ax.get_legend_handles_labels()[0]:  # runs without validation have no curve here
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig_png(fig)


# ----------------------------------------------------------------------------------------------
# qualitative grid
# ----------------------------------------------------------------------------------------------

def pick_indices(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over a split (the first, the last, and between)."""
    if n_items <= 0 or n <= 0:
        return []
    n = min(n, n_items)
    return sorted({int(round(i)) for i in np.linspace(0, n_items - 1, n)})


def legend_html(k: int) -> str:
    swatches = "".join(
        f'<span class="sw"><i style="background:rgb{tuple(int(c) for c in col)}"></i>{html.escape(n)}</span>'
        for n, col in zip(class_labels(k), Lb.palette(k)))
    bar = viz.entropy_rgb(np.tile(np.linspace(0, 1, 256, dtype=np.float32), (12, 1)))
    return (f'<div class="legend">{swatches}</div><div class="legend">entropy 0 (confident) '
            f'{img_tag(viz.png_bytes(bar), "entropy colour scale", "vertical-align:middle;width:256px;height:12px")}'
            f' 1 (uniform); black in the ground truth = ignored pixels</div>')


def grid_html(runs: list[RunInfo], dataset, indices: list[int], preds: list[list], thumb: int) -> str:
    """image | ground truth | each run's prediction; under each prediction, its entropy map."""
    k_gt = dataset.num_classes
    head = "<tr><th>image</th><th>ground truth</th>" + "".join(
        f"<th>{html.escape(r.label)}</th>" for r in runs) + "</tr>"
    rows = []
    for n, i in enumerate(indices):
        image, label = dataset.load(i)
        name = Path(dataset.pairs[i][0]).name
        img_cell = img_tag(viz.png_bytes(viz.resize_smooth(image, thumb)), name)
        gt_cell = (img_tag(viz.png_bytes(viz.resize_nearest(Lb.colorize(label, k_gt), thumb)), f"{name} ground truth")
                   if label is not None else "no label")
        pred_cells = "".join(
            f"<td>{img_tag(viz.png_bytes(viz.resize_nearest(Lb.colorize(p[n][0], r.result.num_classes), thumb)), r.label)}</td>"
            for r, p in zip(runs, preds))
        ent_cells = "".join(
            f"<td>{img_tag(viz.png_bytes(viz.resize_smooth(viz.entropy_rgb(p[n][1]), thumb)), r.label + ' entropy')}</td>"
            for r, p in zip(runs, preds))
        rows.append(f'<tr><td>{img_cell}<div class="sub">{html.escape(name)}</div></td><td>{gt_cell}</td>{pred_cells}</tr>')
        rows.append(f'<tr class="ent"><td></td><td class="sub">entropy map ↓<br>(eq. 4)</td>{ent_cells}</tr>')
    return f'<table class="grid">{head}{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

def render_html(runs: list[RunInfo], dataset, indices, preds, val_desc: str, *, checkpoint: str = "last",
                title: str | None = None, thumb_width: int | None = None, seconds: float = 0.0,
                notes: tuple[str, ...] = ()) -> str:
    """The page from evaluated runs (``run.result`` set) and grid predictions (``preds[run][row]``
    = (prediction, normalised entropy) at label resolution); ``notes``: warnings shown on top.
    ``dataset`` is only read (images and labels of the grid's rows)."""
    title = title or "udaseg report: " + " vs ".join(r.name for r in runs)
    thumb = thumb_width or int(max(120, min(320, 1320 // (len(runs) + 2))))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Target val: {html.escape(val_desc)}. Checkpoint: <b>{checkpoint}.pt</b> of each run. "
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} in {seconds:.0f} s.</p>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    if any(r.oracle for r in runs):
        parts.append('<p class="note">Runs marked <b>[oracle]</b> were trained on the <b>target labels</b>: an upper '
                     "bound for adaptation, not an adaptation result. They are excluded from the bold best values.</p>")
    bn = {r.meta.get("bn_mode") for r in runs}
    if len(bn) > 1:
        parts.append(f'<p class="note">The runs differ in BN mode ({", ".join(sorted(map(str, bn)))}); BN statistics '
                     "alone move target mIoU, so these rows are not a like-for-like comparison.</p>")
    parts += ["<h2>Runs</h2>", runs_table_html(runs)]
    groups: dict[int, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(r.result.num_classes, []).append(r)
    for k, group in groups.items():
        parts += [f"<h2>Per-class IoU (%) on target val — {k} classes</h2>", iou_table_html(group),
                  f"<p>{html.escape(protocol_legend(k))}. Bold: best non-oracle value of a column.</p>"]
        if len(group) > 1:
            parts += [f"<h2>Difference to {html.escape(group[0].label)}</h2>", diff_table_html(group)]
        parts += [f"<h2>Per-class IoU by method — {k} classes</h2>",
                  img_tag(bar_chart_png(group), "per-class IoU bar chart", "max-width:100%"),
                  f"<h2>Predicted class fractions (%) — {k} classes</h2>",
                  "<p>Share of evaluated pixels given to each class: a method that collapses towards the source "
                  "class mix, or onto one class, shows here even when its mean looks fine.</p>",
                  fractions_table_html(group)]
    curves = curves_png(runs)
    parts.append("<h2>Training curves</h2>")
    parts.append(img_tag(curves, "training curves", "max-width:100%") if curves else "<p>No metrics.jsonl found.</p>")
    if dataset is not None and indices:
        parts += ["<h2>Qualitative results on target val</h2>",
                  "<p>Image | ground truth | each run's prediction; under each prediction, that run's "
                  "normalised entropy map (paper eq. 4, Figs. 3, 6, 7).</p>",
                  legend_html(dataset.num_classes), grid_html(runs, dataset, indices, preds, thumb)]
    parts.append("</body></html>")
    return "\n".join(parts)

