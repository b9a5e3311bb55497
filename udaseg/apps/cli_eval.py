"""The ``evaluate``, ``predict`` and ``report`` sub-commands of ``udaseg`` (wired in by
:mod:`udaseg.apps.cli` through :func:`add_commands`).

    udaseg evaluate CHECKPOINT|RUN_DIR ... [--data ROOT] [--split val] [--flip] [--scales 0.75,1,1.25]
                    [--sliding W,H] [--out DIR] [--official-check] [key=value ...]
    udaseg predict CHECKPOINT IMAGES... --out DIR [--overwrite] [--batch-size N] [--flip] [key=value ...]
    udaseg report RUN_DIR... --out report.html [--overwrite]
    udaseg report runs/ablation/ablation.json --out ablation.html [--overwrite]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class IntermixedParser(argparse.ArgumentParser):
    """A sub-command parser whose options and positionals mix in any order (``train CFG --resume
    train.iters=3`` as ``train CFG train.iters=3 --resume``, ``evaluate CKPT --flip
    eval.num_classes=16``): plain argparse fills all positionals at once, at the first run of
    them, and then rejects later ones as "unrecognized arguments".

    The ``parser_class`` of udaseg's sub-commands. A parser with sub-commands of its own (``udaseg
    data``) parses plainly: intermixed parsing cannot hand the rest to a sub-parser."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        nested = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._get_positional_actions())
        if self._inside or nested:  # parse_known_intermixed_args calls back here for each of its two passes
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def override_arg(text: str) -> str:
    """argparse ``type`` of a ``key=value`` config override: anything else is refused where the
    command line is read, naming the token."""
    key, eq, _ = text.partition("=")
    if not eq or not key or key.startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r} is neither an option nor a key=value config override")
    return text


def _split_targets(items: list[str], what: str = "checkpoint or run directory") -> tuple[list[str], list[str]]:
    """Positional arguments → (paths, key=value overrides). An argument is an override when it
    holds '=' and is not an existing path."""
    paths, overrides = [], []
    for it in items:
        (overrides if "=" in it and not Path(it).exists() else paths).append(it)
    if not paths:
        raise ValueError(f"no {what} given")
    return paths, overrides


def _progress() -> bool:
    return sys.stderr.isatty()


def _cmd_evaluate(args) -> int:
    from udaseg.engine.eval_checkpoints import evaluate_checkpoints, format_evaluations
    from udaseg.engine.inference import parse_pair, parse_scales

    targets, overrides = _split_targets(args.targets)
    if args.device:
        overrides.append(f"train.device={args.device}")
    evals = evaluate_checkpoints(
        targets, overrides=overrides, data_root=args.data, split=args.split, flip=True if args.flip else None,
        scales=parse_scales(args.scales), window=parse_pair(args.sliding, "--sliding"),
        stride=parse_pair(args.stride, "--stride"), out_dir=args.out, official_check=args.official_check,
        progress=_progress(), log=lambda line: print(line, file=sys.stderr), overwrite=args.overwrite)
    print(format_evaluations(evals))
    if any(e.official is not None and not e.official.agrees for e in evals):
        print("udaseg: the official Cityscapes script disagrees with our numbers (see above)", file=sys.stderr)
        return 1
    return 0


def _input_size(text: str):
    from udaseg.engine.inference import parse_pair

    return text if text in ("config", "native") else parse_pair(text, "--input-size")


def _cmd_predict(args) -> int:
    import warnings

    from udaseg.engine.inference import parse_pair, parse_scales
    from udaseg.apps.predict import NoImageReadError, predict_images

    images, overrides = _split_targets(args.images, "image or folder")
    if args.set:
        print("udaseg: warning: --set is deprecated; give overrides as key=value after the images, "
              "as for evaluate", file=sys.stderr)
        overrides = list(args.set) + overrides
    if args.device:
        overrides.append(f"train.device={args.device}")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # one plain line per skipped file with its reason, not Python's "file:line: UserWarning" form
        warnings.showwarning = lambda msg, *a, **k: print(f"udaseg: warning: {msg}", file=sys.stderr)
        try:
            written, skipped = predict_images(
                args.checkpoint, images, args.out, batch_size=args.batch_size, flip=True if args.flip else None,
                scales=parse_scales(args.scales), window=parse_pair(args.sliding, "--sliding"),
                stride=parse_pair(args.stride, "--stride"), input_size=_input_size(args.input_size),
                overrides=overrides, cmap=args.cmap, progress=_progress(), overwrite=args.overwrite)
        except NoImageReadError as exc:  # none is an image at all: the same outcome as none decoding
            written, skipped = [], exc.skipped
    if not written:  # nothing to show for the run: not a success, whichever way every input failed
        print(f"udaseg: error: no image could be read: all {len(skipped)} input file(s) were skipped (not images, "
              f"or they do not decode; named above); no prediction written", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} prediction(s) to {args.out} (colour, overlay, entropy, labelIds per image)"
          + (f"; skipped {len(skipped)} file(s) that are not images or do not decode (named above)" if skipped else ""))
    return 0


# files udaseg (and torch / YAML / JSON tools) write as data: never an HTML report
NOT_A_REPORT_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".json", ".jsonl", ".yaml",
                                   ".yml", ".csv", ".py", ".png", ".log"})


def check_report_out(out: str | Path, overwrite: bool) -> None:
    """Never overwrite a file the command did not write (``--out runs/x/checkpoints/last.pt`` once
    turned a checkpoint into a report): an existing ``--out`` is refused unless ``overwrite``, and
    a file that is clearly not a report (named like data or a checkpoint, or not an HTML page) is
    refused even then. Raised before anything is evaluated, so a refusal comes at once, and again
    just before the page is written (a file may appear there during the evaluation)."""
    out = Path(out)
    if out.is_symlink():  # writing would replace the link (or, dangling, create its target): neither is ours
        raise FileExistsError(f"--out {out} is a symbolic link: refusing to replace it; give a plain file path")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the report's file name, e.g. {out / 'report.html'}")
    if not out.exists():
        return
    # checked first, so that the message never suggests an --overwrite that would be refused too
    if out.suffix.lower() in NOT_A_REPORT_SUFFIXES:
        raise FileExistsError(f"--out {out} exists and is a {out.suffix} file, not a report: refusing to replace "
                              f"it, even with --overwrite; choose another --out")
    with open(out, "rb") as f:
        head = f.read(512).lstrip().lower()
    if not head.startswith((b"<!doctype html", b"<html")):
        raise FileExistsError(f"--out {out} exists and is not an HTML page (a checkpoint, data, or someone's file): "
                              f"refusing to replace it, even with --overwrite; choose another --out")
    if not overwrite:
        raise FileExistsError(f"--out {out} exists: refusing to replace it (--overwrite replaces an earlier report)")


def _cmd_report(args) -> int:
    from udaseg.apps.report_runs import write_report
    from udaseg.reporting.report_ablation import is_ablation_results, write_ablation_report

    check_report_out(args.out, args.overwrite)
    for d in args.run_dirs:
        if Path(d).suffix == ".json" and not Path(d).exists():
            raise FileNotFoundError(f"ablation results file {d} not found")
    ablation = [d for d in args.run_dirs if is_ablation_results(d)]
    if ablation:
        if len(args.run_dirs) > 1:
            raise SystemExit(f"udaseg report: {ablation[0]} is an ablation results file; render it on its own "
                             "(one page per file), not together with run directories")
        out = write_ablation_report(ablation[0], args.out, title=args.title)
        print(f"report: {out.resolve()}")
        return 0
    out = write_report(args.run_dirs, args.out, data_root=args.data, num_images=args.num_images,
                       checkpoint=args.checkpoint, device=args.device, title=args.title,
                       log=lambda line: print(line, file=sys.stderr),
                       check_out=lambda out: check_report_out(out, args.overwrite))
    print(f"report: {out.resolve()}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``evaluate``, ``predict`` and ``report`` on an argparse sub-parser set (made with
    ``parser_class=IntermixedParser``, so their options and positionals mix in any order)."""
    ev = subparsers.add_parser(
        "evaluate", help="per-class IoU of checkpoints (or all checkpoints of runs) on a labelled val split",
        description="Evaluate checkpoints at label resolution; prints the paper-layout table with every mIoU "
                    "protocol the class set allows, and writes eval_<split>*.csv / .json into the run "
                    "directory (or --out).")
    ev.add_argument("targets", nargs="+", metavar="CHECKPOINT|RUN_DIR|key=value",
                    help="checkpoint files and/or run directories (all their checkpoints), then optional "
                         "config overrides, e.g. eval.num_classes=16 train.device=cpu")
    ev.add_argument("--data", help="root of the evaluated dataset (default: the checkpoint config's data.val.root, "
                                   "or data.dev.root with --split dev)")
    ev.add_argument("--split", help="split to evaluate (default: the config's data.val.split, normally val); "
                                    "dev: the config's data.dev section, the split to choose hyper-parameters on")
    ev.add_argument("--flip", action="store_true", help="average softmax with the horizontally flipped image")
    ev.add_argument("--scales", help="multi-scale test: comma-separated input scales, e.g. 0.75,1.0,1.25")
    ev.add_argument("--sliding", metavar="W,H", help="sliding-window inference with windows of W×H network-input pixels "
                                                     "(default: the config's eval.window, e.g. HRDA's 1024,1024; "
                                                     "eval.window=null for none)")
    ev.add_argument("--stride", metavar="W,H", help="sliding-window stride (default 2/3 of the window)")
    ev.add_argument("--out", help="where to write the CSV / JSON (default: each checkpoint's run directory)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace eval_*.csv / .json files that udaseg evaluate did not write (its own are replaced "
                         "anyway, and said so)")
    ev.add_argument("--official-check", action="store_true",
                    help="also write labelId PNGs and score them with the Cityscapes official script "
                         "(cityscapesscripts); exit status 1 if it disagrees with ours beyond 1e-6")
    ev.add_argument("--device", help="cpu, cuda, ... (default: the config's train.device)")
    ev.set_defaults(func=_cmd_evaluate)

    pr = subparsers.add_parser(
        "predict", help="colour prediction, overlay, entropy map and labelId PNG for images",
        description="Predict image files and folders (searched recursively; non-images and images that do not "
                    "decode are skipped, each named with its reason). --out must be a new or empty folder, or "
                    "one an earlier predict wrote (with --overwrite); a file predict did not write is never "
                    "replaced. Cityscapes inputs get <city>_<seq>_<frame>_pred_labelIds.png, never the ground "
                    "truth's *_gtFine_labelIds.png name.")
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="+", metavar="IMAGE|FOLDER|key=value",
                    help="image files and/or folders, then optional config overrides (as for evaluate), "
                         "e.g. eval.flip=true train.device=cpu")
    pr.add_argument("--out", required=True, help="output folder (new or empty, unless --overwrite)")
    pr.add_argument("--overwrite", action="store_true",
                    help="predict into a non-empty --out, replacing only the files an earlier predict wrote there "
                         "(listed in its .udaseg-predict.json); any other existing file, and ground truth, is "
                         "still refused")
    pr.add_argument("--batch-size", type=int, default=4)
    pr.add_argument("--flip", action="store_true", help="average softmax with the horizontally flipped image")
    pr.add_argument("--scales", help="multi-scale test: comma-separated input scales")
    pr.add_argument("--sliding", metavar="W,H", help="sliding-window inference window (network-input pixels; "
                                                     "default: the config's eval.window)")
    pr.add_argument("--stride", metavar="W,H", help="sliding-window stride (default 2/3 of the window)")
    pr.add_argument("--input-size", default="config",
                    help="what the network sees: 'config' (the val input width of the checkpoint's config, "
                         "aspect kept), 'native' (the image as is) or W,H")
    pr.add_argument("--cmap", default="magma", help="matplotlib colormap of the entropy map (default magma)")
    pr.add_argument("--device", help="cpu, cuda, ... (default: the config's train.device)")
    pr.add_argument("--set", action="append", metavar="key=value", type=override_arg,
                    help="deprecated: give overrides positionally, key=value after the images (as for "
                         "evaluate); --set key=value still works (repeatable)")
    pr.set_defaults(func=_cmd_predict)

    rp = subparsers.add_parser(
        "report", help="one self-contained HTML page comparing runs",
        description="Per-class IoU tables and differences to the first run (put source-only first), a bar "
                    "chart, predicted class fractions, training curves and a qualitative grid with entropy maps. "
                    "Given an ablation results file (benchmarks/ablation.py's ablation.json, or its folder), "
                    "renders the ablation's tables instead.")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR|ABLATION_JSON")
    rp.add_argument("--out", default="report.html", help="the HTML file (an existing one only with --overwrite)")
    rp.add_argument("--overwrite", action="store_true", help="replace an existing HTML report at --out")
    rp.add_argument("--data", help="root of the target val dataset (default: each run's config)")
    rp.add_argument("--num-images", type=int, default=4, help="rows of the qualitative grid (default 4)")
    rp.add_argument("--checkpoint", choices=("last", "best"), default="last",
                    help="which checkpoint of each run (best was picked on val labels: optimistic)")
    rp.add_argument("--device", help="cpu, cuda, ... (default: each run's train.device)")
    rp.add_argument("--title")
    rp.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """A parser with only these three commands (for tests and for running this module alone)."""
    p = argparse.ArgumentParser(prog="udaseg")
    add_commands(p.add_subparsers(dest="command", required=True, parser_class=IntermixedParser))
    return p
