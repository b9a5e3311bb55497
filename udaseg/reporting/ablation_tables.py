"""The ablation's tables: mean ± std over seeds, gains over the BN-only control (of the means,
and paired: per seed, against the control trained from the same stage-1 checkpoint), share of the
source-only → oracle gap closed, per-class IoU and predicted class fractions, as data
(:func:`summarise`) and as Markdown (:func:`format_markdown`). Used by the ablation runner
(:mod:`udaseg.apps.ablation`) and the HTML report (:mod:`udaseg.reporting.report_ablation`).
"""
from __future__ import annotations

import numpy as np

from udaseg.data import labels as Lb

# the paper's ordering (Table 3): source-only < AdaptSegNet < fine-grained D < fine-grained D + entropy
PAPER_ORDER = ("source_only", "adaptsegnet", "fada", "fgd_ent")
PAPER_STEPS = tuple(zip(PAPER_ORDER, PAPER_ORDER[1:]))
LABELS = {
    "source_only": "source-only (stage 1)", "continue": "continue source-only", "adabn": "AdaBN (reference)",
    "bn_control": "BN-only control", "adaptsegnet": "AdaptSegNet", "minent": "MinEnt (ADVENT)",
    "fada": "fine-grained D (FADA)", "fgd_ent": "fine-grained D + entropy (paper)", "target_only": "oracle (target labels)",
    "dacs": "DACS (mean teacher + ClassMix)", "fgd_ent_st": "paper + self-training",
    "fgd_ent_st_mic": "paper + self-training + MIC + RCS",
}
THIN = ("pole", "light", "sign")


def paired_differences(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """b − a per seed, over the seeds both have (runs of a seed share its stage-1 checkpoint)."""
    return [b[s] - a[s] for s in sorted(set(a) & set(b))]


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof 1; 0 for one value) — the one definition every table uses."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


# steps beyond the paper's ordering that the self-training rows add (issue 12): does self-training
# add to the paper's method, does the paper's method add to DACS, do MIC + RCS add to both
EXTENSION_STEPS = (("fgd_ent", "fgd_ent_st"), ("dacs", "fgd_ent_st"), ("fgd_ent_st", "fgd_ent_st_mic"))


def step_comparison(a: str, b: str, rows: dict, by_seed: dict) -> dict:
    """Is run ``b`` above run ``a`` beyond the seed spread? Unpaired: the difference of means
    exceeds both runs' std over seeds. Paired: on every seed both have, b is above a (same
    stage-1 checkpoint), and the mean of those differences exceeds their std. Either verdict is
    None below two seeds (no spread to exceed)."""
    diff = rows[b]["mean"] - rows[a]["mean"]
    spread = max(rows[a]["std"], rows[b]["std"])
    d = paired_differences(by_seed[a], by_seed[b])
    p_mean, p_std = mean_std(d) if d else (float("nan"), float("nan"))
    enough = min(rows[a]["n"], rows[b]["n"]) >= 2
    return {"from": a, "to": b, "diff": diff, "spread": spread, "holds": diff > spread if enough else None,
            "paired": d, "paired_mean": p_mean, "paired_std": p_std,
            "holds_paired": (min(d) > 0 and p_mean > p_std) if len(d) >= 2 else None}


def summarise(results: dict) -> dict:
    """Mean ± std over seeds per run, gains over the BN-only control (unpaired and paired), share
    of the source-only → oracle gap closed, per-class means, and whether the paper's ordering
    holds beyond the seed spread, unpaired and paired."""
    by_name: dict[str, list[dict]] = {}
    by_seed: dict[str, dict[int, float]] = {}
    seeds = sorted({int(k.split("/")[0]) for k in results["runs"]})
    diverged = {k: r["diverged"] for k, r in sorted(results["runs"].items()) if "diverged" in r}  # no figures
    measured = {k: r for k, r in results["runs"].items() if "diverged" not in r}
    for key, r in measured.items():
        seed, name = key.split("/", 1)
        by_name.setdefault(name, []).append(r)
        by_seed.setdefault(name, {})[int(seed)] = r["miou"] * 100
    rows = {}
    for name, rs in by_name.items():
        m = np.array([r["miou"] for r in rs]) * 100
        iou = np.array([[np.nan if v is None else v for v in r["iou"]] for r in rs]) * 100
        frac = np.array([r["predicted_fractions"] for r in rs]) * 100
        mean, std = mean_std(m)
        rows[name] = {"n": len(rs), "mean": mean, "std": std,
                      "per_seed": m.tolist(), "iou": np.nanmean(iou, 0).tolist() if len(iou) else [],
                      "fractions": frac.mean(0).tolist()}
    label_frac = (np.array(next(iter(measured.values()))["label_fractions"]) * 100).tolist() if measured else []
    so, orc, bn = rows.get("source_only"), rows.get("target_only"), rows.get("bn_control")
    for name, row in rows.items():
        row["gain_vs_bn_control"] = row["mean"] - bn["mean"] if bn else None
        # the oracle trains from scratch, not from the seed's stage-1 checkpoint: nothing to pair;
        # the control against itself is no figure
        paired = (paired_differences(by_seed["bn_control"], by_seed[name])
                  if bn and name not in ("target_only", "bn_control") else [])
        row["paired_gain"] = (*mean_std(paired), len(paired)) if paired else None
        gap = (orc["mean"] - so["mean"]) if so and orc else None
        row["gap_closed"] = (row["mean"] - so["mean"]) / gap if gap else None
    steps = [step_comparison(a, b, rows, by_seed) for a, b in (*PAPER_STEPS, *EXTENSION_STEPS)
             if a in rows and b in rows]
    paper = [s for s in steps if (s["from"], s["to"]) in PAPER_STEPS]
    holds = holds_paired = None
    # a spread needs two seeds, and "on every seed" every run of the ordering on the same seeds
    if all(n in rows for n in PAPER_ORDER) and len({frozenset(by_seed[n]) for n in PAPER_ORDER}) == 1 \
            and len(by_seed[PAPER_ORDER[0]]) >= 2:
        holds = all(s["holds"] for s in paper)
        holds_paired = all(s["holds_paired"] for s in paper)
    return {"seeds": seeds, "rows": rows, "label_fractions": label_frac, "paper_order_holds": holds,
            "paper_order_holds_paired": holds_paired, "order_steps": steps, "probes": dict(results.get("probes", {})),
            "diverged": diverged}


def diverged_runs(summary: dict) -> str:
    """The runs whose loss turned non-finite, with why: 'seed/run (message); ...' (both report forms)."""
    return "; ".join(f"{key} ({why})" for key, why in summary["diverged"].items())


ROW_ORDER = ("source_only", "continue", "adabn", "bn_control", "adaptsegnet", "minent", "fada", "fgd_ent",
             "dacs", "fgd_ent_st", "fgd_ent_st_mic", "target_only")


def row_names(summary: dict) -> list[str]:
    """The ablation's rows in table order, then any probes."""
    rows = summary["rows"]
    return [n for n in ROW_ORDER if n in rows] + sorted(n for n in rows if n not in ROW_ORDER)


def row_label(name: str, summary: dict) -> str:
    probe = summary.get("probes", {}).get(name)
    return LABELS.get(name) or (f"probe {name}: {' '.join(probe)}" if probe else name)


SUMMARY_COLUMNS = ("run", "mIoU mean ± std", "per seed", "vs BN-only control", "paired vs BN-only control",
                   "share of the source-only → oracle gap")


def summary_cells(row: dict, missing: str = "") -> list[str]:
    """The summary table's cells after the run's name (see ``SUMMARY_COLUMNS``), as text."""
    gain = missing if row["gain_vs_bn_control"] is None else f"{row['gain_vs_bn_control']:+.1f}"
    paired = missing
    if row.get("paired_gain") is not None:
        mean, std, n = row["paired_gain"]
        paired = f"{mean:+.1f} ± {std:.1f}" + (f" (n={n})" if n < row["n"] else "")  # seeds the control lacks
    gap = missing if row["gap_closed"] is None else f"{round(100 * row['gap_closed']) or 0}%"  # no "-0%"
    return [f"{row['mean']:.1f} ± {row['std']:.1f}", " / ".join(f"{v:.1f}" for v in row["per_seed"]), gain, paired, gap]


def verdict(holds, unmeasured: str = "not measured yet (needs every run on the same ≥ 2 seeds)") -> str:
    return "yes" if holds else "no" if holds is not None else unmeasured


STEP_COLUMNS = ("step", "difference of means", "larger std", "beyond the spread", "paired per seed",
                "paired mean ± std", "beyond, paired")


def step_cells(st: dict) -> list[str]:
    """One step of the ordering (see :func:`step_comparison`) as the cells of ``STEP_COLUMNS``."""
    per_seed = " / ".join(f"{v:+.1f}" for v in st["paired"]) or "–"
    paired = f"{st['paired_mean']:+.1f} ± {st['paired_std']:.1f}" if st["paired"] else "–"
    one_seed = "– (one seed)"
    return [f"{LABELS.get(st['from'], st['from'])} → {LABELS.get(st['to'], st['to'])}", f"{st['diff']:+.1f}",
            f"{st['spread']:.1f}", verdict(st["holds"], one_seed), per_seed, paired, verdict(st["holds_paired"], one_seed)]


ORDER_RULES = ("unpaired: each step's difference of means exceeds both runs' std over seeds",
               "paired: on every seed the later run beats the earlier one from the same stage-1 checkpoint, "
               "and the mean of those differences exceeds their std")


def format_markdown(summary: dict) -> str:
    rows = summary["rows"]
    names = row_names(summary)
    out = [f"Seeds: {', '.join(map(str, summary['seeds']))}. Target val mIoU (19 classes, %, last checkpoints).", "",
           "| " + " | ".join(SUMMARY_COLUMNS) + " |", "|---" * len(SUMMARY_COLUMNS) + "|"]
    for n in names:
        out.append(f"| {row_label(n, summary)} | " + " | ".join(summary_cells(rows[n])) + " |")
    if summary.get("diverged"):
        out += ["", f"Diverged (non-finite loss; no figures, left out of every mean above): {diverged_runs(summary)}."]
    out += ["", "Paper ordering (source-only < AdaptSegNet < fine-grained D < fine-grained D + entropy) beyond "
            f"the seed spread — {ORDER_RULES[0]}: **{verdict(summary['paper_order_holds'])}**; "
            f"{ORDER_RULES[1]}: **{verdict(summary.get('paper_order_holds_paired'))}**.", "",
            "Paired: each seed's run minus that seed's BN-only control (both from the seed's stage-1 "
            "checkpoint), mean ± std over seeds — the stage-1 model's seed variance largely cancels (the adaptation "
            "stage's own remains).", ""]
    if summary.get("order_steps"):
        out += ["Step by step (mIoU points; paired: later run minus earlier run per seed, same stage-1 checkpoint).", "",
                "| " + " | ".join(STEP_COLUMNS) + " |", "|---" * len(STEP_COLUMNS) + "|"]
        out += ["| " + " | ".join(step_cells(st)) + " |" for st in summary["order_steps"]]
        out.append("")
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
