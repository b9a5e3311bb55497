"""``udaseg report runs/ablation/ablation.json``: the ablation's results file as an HTML page.

Rendered from the file alone (no checkpoint is loaded or re-evaluated): the Table-3-shaped
summary (mean ± std over seeds, gain over the BN-only control, share of the source-only → oracle
gap), whether the paper's ordering holds beyond the seed spread, per-class IoU with the thin
classes marked (Table 1 shape), predicted class fractions against the ground truth, and a chart
of each run's mIoU per seed.
"""
from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import numpy as np

from udaseg.reporting.ablation_tables import (LABELS, ORDER_RULES, PAPER_ORDER, STEP_COLUMNS, SUMMARY_COLUMNS, THIN,
                                              diverged_runs, row_label, row_names, step_cells, summarise,
                                              summary_cells, verdict)
from udaseg.data import labels as Lb
from udaseg.engine.checkpoint import atomic_write_text
from udaseg.reporting.page import CSS, fig_png, figure, img_tag

_RUN_KEYS = ("miou", "iou", "predicted_fractions", "label_fractions")


def is_ablation_results(path: str | Path) -> bool:
    """True for an ablation results file, or a folder holding one (``ablation.json``)."""
    p = Path(path)
    return (p.is_file() and p.suffix == ".json") or (p.is_dir() and (p / "ablation.json").is_file()
                                                     and not (p / "checkpoints").is_dir())


def load_ablation(path: str | Path) -> tuple[Path, dict]:
    """Read and check an ``ablation.json`` (or the folder holding it); errors name file and key."""
    p = Path(path)
    if p.is_dir():
        p = p / "ablation.json"
    try:
        results = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"ablation results {p} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None
    runs = results.get("runs") if isinstance(results, dict) else None
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"{p}: no 'runs' entries — not an ablation results file (written by benchmarks/ablation.py)")
    for key, r in runs.items():
        if "/" not in key or not key.split("/", 1)[0].isdigit():
            raise ValueError(f"{p}: run key {key!r} is not '<seed>/<run name>'")
        if isinstance(r, dict) and "diverged" in r:  # no figures (the page lists it apart)
            continue
        missing = [k for k in _RUN_KEYS if k not in r]
        if missing:
            raise ValueError(f"{p}: run {key!r} lacks {', '.join(missing)}")
        if len(r["iou"]) != len(Lb.CLASSES_19) or len(r["predicted_fractions"]) != len(Lb.CLASSES_19):
            raise ValueError(f"{p}: run {key!r} has {len(r['iou'])} per-class IoUs; the ablation reports "
                             f"{len(Lb.CLASSES_19)} classes")
    return p, results


def _num(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def summary_table_html(summary: dict) -> str:
    rows = summary["rows"]
    head = "".join(f"<th>{h}</th>" for h in SUMMARY_COLUMNS)
    out = []
    for n in row_names(summary):
        mean, *rest = summary_cells(rows[n], missing="–")
        cls = ' class="oracle"' if n == "target_only" else (' class="control"' if n == "bn_control" else "")
        out.append(f'<tr{cls}><th class="run">{html.escape(row_label(n, summary))}</th>'
                   f'<td class="miou">{mean}</td>' + "".join(f"<td>{c}</td>" for c in rest) + "</tr>")
    return f'<table class="iou"><tr>{head}</tr>{"".join(out)}</table>'


def steps_table_html(summary: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in STEP_COLUMNS)
    rows = ["<tr>" + f'<th class="run">{html.escape(first)}</th>' + "".join(f"<td>{html.escape(c)}</td>" for c in rest)
            + "</tr>" for first, *rest in map(step_cells, summary["order_steps"])]
    return f'<table class="iou"><tr>{head}</tr>{"".join(rows)}</table>'


def _class_table(summary: dict, key: str, with_truth: bool) -> str:
    rows = summary["rows"]
    names = Lb.CLASSES_19
    head = "".join(f'<th class="cls{" thin" if c in THIN else ""}"><span>{html.escape(c)}</span></th>' for c in names)
    out = []
    if with_truth and summary["label_fractions"]:
        out.append('<tr class="gt"><th class="run">ground truth</th>'
                   + "".join(f"<td>{v:.1f}</td>" for v in summary["label_fractions"]) + "</tr>")
    for n in row_names(summary):
        cells = "".join(f'<td{" class=thin" if c in THIN else ""}>{_num(v)}</td>' for c, v in zip(names, rows[n][key]))
        out.append(f'<tr{" class=oracle" if n == "target_only" else ""}><th class="run">'
                   f"{html.escape(row_label(n, summary))}</th>{cells}</tr>")
    return f'<table class="iou"><tr><th></th>{head}</tr>{"".join(out)}</table>'


def miou_chart_png(summary: dict) -> bytes:
    """Mean mIoU per run with each seed's value as a dot; the BN-only control as a line."""
    rows = summary["rows"]
    names = row_names(summary)
    fig = figure(10, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    means = [rows[n]["mean"] for n in names]
    colours = ["#8250df" if n == "target_only" else "#57606a" if n in ("source_only", "continue", "adabn", "bn_control")
               else "#0969da" for n in names]
    ax.bar(x, means, 0.6, yerr=[rows[n]["std"] for n in names], color=colours, alpha=0.8, capsize=3)
    for i, n in enumerate(names):
        ax.plot([i] * len(rows[n]["per_seed"]), rows[n]["per_seed"], "k.", ms=5)
    if "bn_control" in rows:
        ax.axhline(rows["bn_control"]["mean"], color="#cf222e", lw=1, ls="--", label="BN-only control (mean)")
        ax.legend(fontsize=9, loc="upper left")
    ax.set_xticks(x, [row_label(n, summary) for n in names], rotation=30, ha="right")
    ax.set_ylabel("target val mIoU (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"mean ± std over seeds {', '.join(map(str, summary['seeds']))}; dots: seeds")
    return fig_png(fig)


def render_ablation_html(results: dict, source: Path, title: str | None = None) -> str:
    summary = summarise(results)
    title = title or "udaseg ablation on the embedded benchmark"
    unmeasured = "not measured (needs every run of the ordering on the same ≥ 2 seeds)"
    holds, holds_paired = (verdict(summary[k], unmeasured) for k in ("paper_order_holds", "paper_order_holds_paired"))
    order = " &lt; ".join(html.escape(LABELS[n]) for n in PAPER_ORDER)
    overrides = results.get("overrides") or []
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}td.thin,th.thin{{background:#fff1e5}} tr.control th.run{{font-weight:700}}</style>"
             "</head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>From <code>{html.escape(str(source))}</code>; seeds {', '.join(map(str, summary['seeds']))}"
             + (f"; overrides <code>{html.escape(' '.join(overrides))}</code>" if overrides else "")
             + f". Target val, 19 classes, last checkpoints. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>",
             "<h2>Summary (Table 3 shape)</h2>", summary_table_html(summary),
             *([f"<p>Diverged (non-finite loss; no figures, left out of every mean): "
                f"{html.escape(diverged_runs(summary))}.</p>"]
               if summary.get("diverged") else []),
             f"<p>Paper ordering ({order}) beyond the seed spread — {ORDER_RULES[0]}: <b>{holds}</b>; "
             f"{ORDER_RULES[1]}: <b>{holds_paired}</b>. Every adaptation run starts "
             "from its seed's source-only checkpoint and is measured against the <b>BN-only control</b> (same "
             "schedule, target images through train-mode BN, no target loss); the oracle is trained on target "
             "labels (an upper bound, not adaptation).</p>",
             "<h2>The ordering step by step</h2>",
             "<p>Paired: the later run minus the earlier one on each seed (both from that seed's stage-1 "
             "checkpoint).</p>", steps_table_html(summary),
             img_tag(miou_chart_png(summary), "mIoU per run", "max-width:100%"),
             "<h2>Per-class IoU (%), mean over seeds (Table 1 shape)</h2>", _class_table(summary, "iou", False),
             f"<p>Shaded: the thin classes ({', '.join(THIN)}).</p>",
             "<h2>Predicted class fractions (%), mean over seeds</h2>",
             "<p>Share of val pixels given to each class; a collapse towards a class shows here.</p>",
             _class_table(summary, "fractions", True), "</body></html>"]
    return "\n".join(parts)


def write_ablation_report(path: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    source, results = load_ablation(path)
    out_path = Path(out_path)
    atomic_write_text(out_path, render_ablation_html(results, source, title))
    return out_path
