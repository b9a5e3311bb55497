"""The ablation's tables: mean ± std over seeds, gains over the BN-only control, share of the
source-only → oracle gap closed, per-class IoU and predicted class fractions, as data
(:func:`summarise`) and as Markdown (:func:`format_markdown`). Used by the ablation runner
(:mod:`udaseg.apps.ablation`) and the HTML report (:mod:`udaseg.reporting.report_ablation`).
"""
from __future__ import annotations

import numpy as np

from udaseg.data import labels as Lb

# the paper's ordering (Table 3): source-only < AdaptSegNet < fine-grained D < fine-grained D + entropy
PAPER_ORDER = ("source_only", "adaptsegnet", "fada", "fgd_ent")
LABELS = {
    "source_only": "source-only (stage 1)", "continue": "continue source-only", "adabn": "AdaBN (reference)",
    "bn_control": "BN-only control", "adaptsegnet": "AdaptSegNet", "minent": "MinEnt (ADVENT)",
    "fada": "fine-grained D (FADA)", "fgd_ent": "fine-grained D + entropy (paper)", "target_only": "oracle (target labels)",
    "dacs": "DACS (mean teacher + ClassMix)", "fgd_ent_st": "paper + self-training",
    "fgd_ent_st_mic": "paper + self-training + MIC + RCS",
}
THIN = ("pole", "light", "sign")


def summarise(results: dict) -> dict:
    """Mean ± std over seeds per run, gains over the BN-only control, share of the
    source-only → oracle gap closed, per-class means, and whether the paper's ordering holds."""
    by_name: dict[str, list[dict]] = {}
    seeds = sorted({int(k.split("/")[0]) for k in results["runs"]})
    for key, r in results["runs"].items():
        by_name.setdefault(key.split("/", 1)[1], []).append(r)
    rows = {}
    for name, rs in by_name.items():
        m = np.array([r["miou"] for r in rs]) * 100
        iou = np.array([[np.nan if v is None else v for v in r["iou"]] for r in rs]) * 100
        frac = np.array([r["predicted_fractions"] for r in rs]) * 100
        rows[name] = {"n": len(rs), "mean": float(m.mean()), "std": float(m.std(ddof=1)) if len(rs) > 1 else 0.0,
                      "per_seed": m.tolist(), "iou": np.nanmean(iou, 0).tolist() if len(iou) else [],
                      "fractions": frac.mean(0).tolist()}
    label_frac = (np.array(next(iter(results["runs"].values()))["label_fractions"]) * 100).tolist() if results["runs"] else []
    so, orc, bn = rows.get("source_only"), rows.get("target_only"), rows.get("bn_control")
    for name, row in rows.items():
        row["gain_vs_bn_control"] = row["mean"] - bn["mean"] if bn else None
        gap = (orc["mean"] - so["mean"]) if so and orc else None
        row["gap_closed"] = (row["mean"] - so["mean"]) / gap if gap else None
    order = [rows[n] for n in PAPER_ORDER if n in rows]
    holds = None
    if len(order) == len(PAPER_ORDER):
        # "beyond the seed spread": each step's mean difference exceeds both runs' std
        holds = all(b["mean"] - a["mean"] > max(a["std"], b["std"]) for a, b in zip(order, order[1:]))
    return {"seeds": seeds, "rows": rows, "label_fractions": label_frac, "paper_order_holds": holds,
            "probes": dict(results.get("probes", {}))}


ROW_ORDER = ("source_only", "continue", "adabn", "bn_control", "adaptsegnet", "minent", "fada", "fgd_ent",
             "dacs", "fgd_ent_st", "fgd_ent_st_mic", "target_only")


def row_names(summary: dict) -> list[str]:
    """The ablation's rows in table order, then any probes."""
    rows = summary["rows"]
    return [n for n in ROW_ORDER if n in rows] + sorted(n for n in rows if n not in ROW_ORDER)


def row_label(name: str, summary: dict) -> str:
    probe = summary.get("probes", {}).get(name)
    return LABELS.get(name) or (f"probe {name}: {' '.join(probe)}" if probe else name)


SUMMARY_COLUMNS = ("run", "mIoU mean ± std", "per seed", "vs BN-only control", "share of the source-only → oracle gap")


def summary_cells(row: dict, missing: str = "") -> list[str]:
    """The summary table's cells after the run's name (see ``SUMMARY_COLUMNS``), as text."""
    gain = missing if row["gain_vs_bn_control"] is None else f"{row['gain_vs_bn_control']:+.1f}"
    gap = missing if row["gap_closed"] is None else f"{round(100 * row['gap_closed']) or 0}%"  # no "-0%"
    return [f"{row['mean']:.1f} ± {row['std']:.1f}", " / ".join(f"{v:.1f}" for v in row["per_seed"]), gain, gap]


def format_markdown(summary: dict) -> str:
    rows = summary["rows"]
    names = row_names(summary)
    out = [f"Seeds: {', '.join(map(str, summary['seeds']))}. Target val mIoU (19 classes, %, last checkpoints).", "",
           "| " + " | ".join(SUMMARY_COLUMNS) + " |", "|---" * len(SUMMARY_COLUMNS) + "|"]
    for n in names:
        out.append(f"| {row_label(n, summary)} | " + " | ".join(summary_cells(rows[n])) + " |")
    holds = summary["paper_order_holds"]
    out += ["", "Paper ordering (source-only < AdaptSegNet < fine-grained D < fine-grained D + entropy) beyond "
            f"the seed spread: **{'yes' if holds else 'no' if holds is not None else 'not measured yet'}**.", ""]
    cls = [c[:5] for c in Lb.CLASSES_19]
    out += ["Per-class IoU (%, mean over seeds); thin classes: " + ", ".join(THIN) + ".", "",
            "| run | " + " | ".join(cls) + " |", "|---|" + "---|" * len(cls)]
    for n in names:
        out.append(f"| {row_label(n, summary)} | " + " | ".join("–" if np.isnan(v) else f"{v:.1f}" for v in rows[n]["iou"]) + " |")
    out += ["", "Predicted class fractions (% of val pixels, mean over seeds) — collapse towards a class shows here.", "",
            "| run | " + " | ".join(cls) + " |", "|---|" + "---|" * len(cls)]
    if summary["label_fractions"]:
        out.append("| ground truth | " + " | ".join(f"{v:.1f}" for v in summary["label_fractions"]) + " |")
    for n in names:
        out.append(f"| {row_label(n, summary)} | " + " | ".join(f"{v:.1f}" for v in rows[n]["fractions"]) + " |")
    return "\n".join(out) + "\n"
