"""Confidence of checkpoints on a labelled split: what entropy minimisation and self-training act on.

For each checkpoint: mIoU19 and pixel accuracy (the same single-scale forward as validation),
the mean normalised entropy of the predictions (ADVENT's eq. 4, the paper's entropy term), the
share of pixels whose top probability is ≥ τ (DACS/DAFormer's pseudo-label weight), the accuracy
of those confident pixels (the pseudo-labels' quality), and for chosen classes their predicted
share of pixels and the precision of their confident pixels. Diagnoses on ``dev`` (the rule:
investigate on dev, report on val).

    python benchmarks/confidence.py runs/dev_grid/source_only runs/dev_grid/fada/lambda_adv=0.1 --split dev
    python benchmarks/confidence.py RUN_OR_CHECKPOINT ... --json out.json --classes road,building,vegetation
"""
import argparse
import sys
from pathlib import Path

from udaseg.engine.checkpoint import atomic_write_json, load_checkpoint
from udaseg.engine.confidence import ConfidenceStats
from udaseg.engine.eval_checkpoints import evaluate_state, evaluation_config
from udaseg.engine.evaluation import class_labels, eval_class_map


def checkpoint_path(target: str) -> Path:
    p = Path(target)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise SystemExit(f"confidence: no checkpoint at {p} (give a run directory or a .pt file)")
    return p


def measure(path: Path, split: str, tau: float) -> dict:
    state = load_checkpoint(path)
    cfg = evaluation_config(state, path, split=split)
    k = cfg["model"]["num_classes"]
    if eval_class_map(cfg)[1] is not None:  # the stats compare the model's K classes with the labels'
        raise SystemExit(f"confidence: {path} is evaluated in {cfg['eval']['num_classes']} classes, not its "
                         f"model's {k}; measure it in its own classes (eval.num_classes={k})")
    stats = ConfidenceStats(k, tau=tau)
    # the evaluator's own single-scale forward (validation's), the probabilities handed to the stats
    result, _, _ = evaluate_state(state, cfg, path, flip=False, scales=[1.0], on_probs=stats.update)
    out = stats.summary(class_labels(k))
    out.update(checkpoint=str(path), split=split, iteration=int(state.get("iteration", -1)),
               miou=result.main_miou, pixel_accuracy=result.pixel_accuracy,
               label_share={n: float(v) for n, v in zip(class_labels(k), result.label_fractions)})
    return out


def format_markdown(rows: dict, classes: list[str]) -> str:
    head = ["run", "mIoU", "pixel acc.", "mean entropy", "confident (≥ τ)", "acc. of confident"]
    head += [f"{c}: predicted / GT share, confident precision" for c in classes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [name, f"{100 * r['miou']:.1f}", f"{100 * r['pixel_accuracy']:.1f}", f"{r['mean_entropy']:.3f}",
                 f"{100 * r['confident_share']:.1f}%", f"{100 * r['confident_accuracy']:.1f}%"]
        for c in classes:
            pc = r["per_class"][c]
            cells.append(f"{100 * pc['predicted_share']:.1f} / {100 * r['label_share'][c]:.1f}%, "
                         f"{100 * pc['confident_precision']:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n(τ = {next(iter(rows.values()))['tau']:g}; shares over labelled pixels)\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="+", help="run directories (their last.pt) or checkpoint files; NAME=PATH names a row")
    p.add_argument("--split", default="dev", choices=["dev", "val"])
    p.add_argument("--tau", type=float, default=0.968, help="confidence threshold (DACS/DAFormer's 0.968)")
    p.add_argument("--classes", default="road,building,vegetation,car", help="classes shown in the table")
    p.add_argument("--json", type=Path, help="also write every figure (all classes) here")
    args = p.parse_args(argv)
    classes = [c for c in args.classes.split(",") if c]
    targets = []
    for t in args.targets:  # every path checked before the first (slow) measurement
        name, _, path = t.partition("=") if "=" in t and not Path(t).exists() else ("", "", t)
        targets.append((name, checkpoint_path(path)))
    rows = {}
    for name, path in targets:
        rows[name or str(path.parent.parent)] = row = measure(path, args.split, args.tau)
        unknown = [c for c in classes if c not in row["per_class"]]
        if unknown:
            raise SystemExit(f"confidence: unknown class(es) {unknown} in --classes (classes: {', '.join(row['per_class'])})")
        print(f"measured {path}", file=sys.stderr)
    print(format_markdown(rows, classes))
    if args.json:
        atomic_write_json(args.json, rows)


if __name__ == "__main__":
    main()
