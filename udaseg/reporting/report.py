"""``udaseg report``: one self-contained HTML page comparing runs (images embedded as base64).

Shaped like the paper's results: per-class IoU tables (Tables 1–3) with the differences to the
first run (put the source-only run first), a bar chart of per-class IoU per method, predicted
class fractions (a collapse towards one class shows there, not in the mean), training curves from
``metrics.jsonl`` and a qualitative grid — image | ground truth | each run's prediction, with each
run's entropy map under its prediction (Figs. 3, 6, 7). Oracle runs (trained on target labels)
are marked as such.

    write_report(["runs/demo_source_only", "runs/demo_fgd_ent"], "report.html")

Plots use matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""
from __future__ import annotations

import base64
import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udaseg.data import labels as Lb
from udaseg.engine.evaluation import EvalResult, class_labels, protocol_legend
from udaseg.engine.inference import forward_options, predict_probs
from udaseg.engine.run_logger import read_metrics
from udaseg.reporting import viz

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


def load_run(run_dir, checkpoint: str = "last") -> RunInfo:
    """A run directory's meta.json, metrics and chosen checkpoint (``last`` or ``best``)."""
    from udaseg.engine.eval_checkpoints import run_name

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


# ----------------------------------------------------------------------------------------------
# HTML pieces
# ----------------------------------------------------------------------------------------------

def _img_tag(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    style = f' style="{css}"' if css else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'


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

def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _fig_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


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
    fig = _figure(14, 4.2)
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
    return _fig_png(fig)


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
    fig = _figure(14, 3.0 * nrows)
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
    return _fig_png(fig)


# ----------------------------------------------------------------------------------------------
# qualitative grid
# ----------------------------------------------------------------------------------------------

def pick_indices(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over a split (the first, the last, and between)."""
    if n_items <= 0 or n <= 0:
        return []
    n = min(n, n_items)
    return sorted({int(round(i)) for i in np.linspace(0, n_items - 1, n)})


@torch.no_grad()
def grid_predictions(model, cfg: dict, dataset, indices: list[int], device) -> list[tuple[np.ndarray, np.ndarray]]:
    """(prediction, normalised entropy) at label resolution for the chosen val items, made as
    evaluation makes them (same inference function and settings)."""
    ec, fw = cfg["eval"], forward_options(cfg, device)
    out = []
    for i in indices:
        item = dataset[i]
        h, w = item["label"].shape if "label" in item else item["orig_size"]
        probs = predict_probs(model, item["image"][None].to(device), fw.norm, (h, w), flip=ec["flip"],
                              scales=ec["scales"], autocast_dtype=fw.autocast_dtype, channels_last=fw.channels_last)
        out.append((probs.argmax(1)[0].cpu().numpy().astype(np.uint8), viz.normalized_entropy(probs)[0]))
    return out


def legend_html(k: int) -> str:
    swatches = "".join(
        f'<span class="sw"><i style="background:rgb{tuple(int(c) for c in col)}"></i>{html.escape(n)}</span>'
        for n, col in zip(class_labels(k), Lb.palette(k)))
    bar = viz.entropy_rgb(np.tile(np.linspace(0, 1, 256, dtype=np.float32), (12, 1)))
    return (f'<div class="legend">{swatches}</div><div class="legend">entropy 0 (confident) '
            f'{_img_tag(viz.png_bytes(bar), "entropy colour scale", "vertical-align:middle;width:256px;height:12px")}'
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
        img_cell = _img_tag(viz.png_bytes(viz.resize_smooth(image, thumb)), name)
        gt_cell = (_img_tag(viz.png_bytes(viz.resize_nearest(Lb.colorize(label, k_gt), thumb)), f"{name} ground truth")
                   if label is not None else "no label")
        pred_cells = "".join(
            f"<td>{_img_tag(viz.png_bytes(viz.resize_nearest(Lb.colorize(p[n][0], r.result.num_classes), thumb)), r.label)}</td>"
            for r, p in zip(runs, preds))
        ent_cells = "".join(
            f"<td>{_img_tag(viz.png_bytes(viz.resize_smooth(viz.entropy_rgb(p[n][1]), thumb)), r.label + ' entropy')}</td>"
            for r, p in zip(runs, preds))
        rows.append(f'<tr><td>{img_cell}<div class="sub">{html.escape(name)}</div></td><td>{gt_cell}</td>{pred_cells}</tr>')
        rows.append(f'<tr class="ent"><td></td><td class="sub">entropy map ↓<br>(eq. 4)</td>{ent_cells}</tr>')
    return f'<table class="grid">{head}{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
p,.note{font-size:13px;max-width:1100px} .note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #d0d7de;padding:3px 5px;text-align:right}
table.runs td,table.runs th{text-align:left}
th.run{text-align:left;white-space:nowrap} th.cls{vertical-align:bottom;height:86px;width:30px;padding:2px}
th.cls span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
td.miou,th.miou{background:#f6f8fa;font-weight:600} td.best{font-weight:700;text-decoration:underline}
tr.oracle th.run,tr.oracle td{color:#8250df;font-style:italic} tr.gt td,tr.gt th{background:#f6f8fa}
.sub{font-size:10px;color:#57606a;font-weight:400}
table.grid td,table.grid th{border:none;padding:2px;text-align:center;vertical-align:top}
table.grid img{display:block} tr.ent td{padding-bottom:10px}
.legend{font-size:11px;margin:4px 0} .sw{display:inline-block;margin:2px 8px 2px 0}
.sw i{display:inline-block;width:12px;height:12px;margin-right:3px;vertical-align:middle;border:1px solid #999}
img.plot{max-width:100%}
"""


def write_report(run_dirs, out_path, *, data_root=None, num_images: int = 4, checkpoint: str = "last",
                 device: str | None = None, title: str | None = None, thumb_width: int | None = None,
                 log=None, results=None) -> Path:
    """Evaluate each run's ``checkpoint`` on its target val split and write the HTML report.

    run_dirs: run directories, the baseline (source-only) first — differences are to it.
    data_root: the target val root when it moved since training (else each run's config).
    num_images: rows of the qualitative grid (spread over the val split). device: e.g. "cpu"
    (default: each run's ``train.device``). results: the runs' EvalResults on that split with
    the config's eval settings, where the caller already has them (the demo job), in run order;
    None (or a None entry) evaluates. Returns the path written.
    """
    from udaseg.engine.checkpoint import atomic_write_text, load_checkpoint
    from udaseg.engine.eval_checkpoints import evaluate_state, evaluation_config
    from udaseg.engine.builders import build_val_loader, load_segmentor, resolve_device

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
                            thumb_width=thumb_width, seconds=time.time() - t0)
    out_path = Path(out_path)
    atomic_write_text(out_path, html_text)  # a kill or full disk never leaves half a page over the last one
    return out_path


def render_html(runs: list[RunInfo], dataset, indices, preds, val_desc: str, *, checkpoint: str = "last",
                title: str | None = None, thumb_width: int | None = None, seconds: float = 0.0) -> str:
    """The page from evaluated runs (``run.result`` set) and grid predictions."""
    title = title or "udaseg report: " + " vs ".join(r.name for r in runs)
    thumb = thumb_width or int(max(120, min(320, 1320 // (len(runs) + 2))))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Target val: {html.escape(val_desc)}. Checkpoint: <b>{checkpoint}.pt</b> of each run. "
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} in {seconds:.0f} s.</p>"]
    if checkpoint == "best":
        from udaseg.engine.eval_checkpoints import BEST_NOTE

        parts.append(f'<p class="note">{html.escape(BEST_NOTE)}</p>')
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
                  _img_tag(bar_chart_png(group), "per-class IoU bar chart", "max-width:100%"),
                  f"<h2>Predicted class fractions (%) — {k} classes</h2>",
                  "<p>Share of evaluated pixels given to each class: a method that collapses towards the source "
                  "class mix, or onto one class, shows here even when its mean looks fine.</p>",
                  fractions_table_html(group)]
    curves = curves_png(runs)
    parts.append("<h2>Training curves</h2>")
    parts.append(_img_tag(curves, "training curves", "max-width:100%") if curves else "<p>No metrics.jsonl found.</p>")
    if dataset is not None and indices:
        parts += ["<h2>Qualitative results on target val</h2>",
                  "<p>Image | ground truth | each run's prediction; under each prediction, that run's "
                  "normalised entropy map (paper eq. 4, Figs. 3, 6, 7).</p>",
                  legend_html(dataset.num_classes), grid_html(runs, dataset, indices, preds, thumb)]
    parts.append("</body></html>")
    return "\n".join(parts)

