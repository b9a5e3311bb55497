"""The ``udaseg`` command line.

    udaseg demo [--data DIR] [--configs SET]  the main job on the embedded benchmark
    udaseg train CONFIG [key=value ...]   train (both stages of the paper when configured)
    udaseg pretrain --out DIR [key=value ...]   the backbone as a classifier on the pretraining set
    udaseg evaluate CHECKPOINT|RUN_DIR …  evaluate checkpoints on their config's val split
    udaseg predict CHECKPOINT IMAGES… --out DIR   colour / overlay / entropy / labelId outputs
    udaseg report RUN_DIR… --out report.html      one self-contained HTML report
    udaseg data demo --out DIR [--seed N] write the embedded synthetic→real benchmark
    udaseg data summary DIR               print a written benchmark's summary
    udaseg data check ROOT [--kind K]     list every unreadable or inconsistent file of a dataset

Options and key=value config overrides mix in any order (``train CFG --resume train.iters=3``).
``python -m udaseg`` is the same command. Multi-GPU / multi-process:
``torchrun --nproc_per_node N -m udaseg train CONFIG ...``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path


def version_line() -> str:
    """``udaseg X.Y.Z (torch A.B.C)``: the installed package's version, else pyproject's."""
    import re
    from importlib import metadata

    try:
        version = metadata.version("udaseg")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
        version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
    import torch

    return f"udaseg {version} (torch {torch.__version__})"


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it imports torch)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print udaseg's and torch's versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def _cmd_data_demo(args) -> int:
    from udaseg.benchmark.writer import demo_is_complete, write_demo

    out = Path(args.out)
    if demo_is_complete(out, seed=args.seed) and not args.force:
        print(f"{out}: benchmark already written (seed {args.seed}); --force rewrites it")
        return 0
    t0 = time.time()
    write_demo(out, seed=args.seed, n_source=args.n_source, n_target_train=args.n_target_train,
               n_target_val=args.n_target_val, n_target_dev=args.n_target_dev,
               n_source_heldout=args.n_source_heldout, workers=args.workers)
    print(f"wrote the embedded benchmark to {out} in {time.time() - t0:.1f} s")
    return 0


def _cmd_data_summary(args) -> int:
    summary = Path(args.dir) / "DATA.md"
    if not summary.is_file():
        print(f"error: {summary} not found; write the benchmark with `udaseg data demo --out {args.dir}`", file=sys.stderr)
        return 2
    print(summary.read_text())
    return 0


def _cmd_data_check(args) -> int:
    """One line per problem (``path: reason``), then ``N files checked, M problems``; exit status 0
    when clean, 1 with problems, 2 for a bad ROOT (raised, and said in one line by :func:`main`)."""
    from udaseg.data.check import check_dataset

    result = check_dataset(args.root, kind=args.kind, split=args.split, workers=args.workers,
                           progress=sys.stderr.isatty())
    for note in result.notes:
        print(f"udaseg: note: {note}", file=sys.stderr)
    for problem in result.problems:
        print(problem)
    print(result.summary())
    return 1 if result.problems else 0


def _cmd_demo(args) -> int:
    """The main job: the embedded benchmark end to end."""
    from udaseg.apps.pipeline import run_demo

    data = Path(args.data)
    run_demo(data, args.runs, seed=args.seed, workers=args.workers, progress=sys.stderr.isatty(),
             data_kwargs=None, overrides=args.overrides, configs=args.configs)
    return 0


def _cmd_pretrain(args) -> int:
    from udaseg.apps.pretrain import parse_settings, pretrain

    pretrain(args.out, parse_settings(args.overrides), resume=args.resume, overwrite=args.overwrite)
    return 0


def _cmd_train(args) -> int:
    from udaseg.config import load_config
    from udaseg.engine.stages import run_training

    cfg = load_config(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else Path(cfg["output_dir"]) / cfg["name"]
    results = run_training(cfg, run_dir, resume=args.resume, overwrite=args.overwrite,
                           allow_config_change=args.allow_config_change)
    if int(os.environ.get("RANK", "0")) == 0:
        for stage, r in results.items():
            print(f"{stage}: last checkpoint {r['last']}" + (" (already finished)" if r.get("skipped") else ""))
        print(f"run directory: {run_dir}   TensorBoard: tensorboard --logdir {run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from udaseg.apps.cli_eval import IntermixedParser, add_commands, override_arg
    from udaseg.apps.pipeline import add_configs_argument

    p = argparse.ArgumentParser(prog="udaseg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_VersionAction, dest=argparse.SUPPRESS, default=argparse.SUPPRESS)
    # each sub-command takes its options and positionals in any order
    sub = p.add_subparsers(dest="command", required=True, parser_class=IntermixedParser)

    demo = sub.add_parser("demo", help="run the main job on the embedded benchmark")
    demo.add_argument("--data", default="data/demo", help="where the benchmark is (written if absent)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--runs", default="runs/demo", help="where the runs go")
    demo.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    add_configs_argument(demo)
    demo.add_argument("overrides", nargs="*", type=override_arg, metavar="key=value",
                      help="config overrides for every run, e.g. train.iters=400")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser("train", help="train from a YAML config with key=value overrides")
    tr.add_argument("config")
    tr.add_argument("overrides", nargs="*", type=override_arg, metavar="key=value",
                    help="dotted overrides, e.g. train.iters=2000 method.lambda_ent=2e-3 (before or after options)")
    tr.add_argument("--run-dir", help="default: <output_dir>/<name> from the config")
    tr.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    tr.add_argument("--overwrite", action="store_true",
                    help="delete a run already in the run directory and start again (default: refuse)")
    tr.add_argument("--allow-config-change", action="store_true",
                    help="with --resume: continue although the config differs from the checkpoint's "
                         "(the change is recorded in the run's history.jsonl)")
    tr.set_defaults(func=_cmd_train)

    pt = sub.add_parser("pretrain", help="train a ResNet or MiT classifier on the pretraining set (ImageNet's role)",
                        description="Train the backbone as a classifier on the embedded pretraining set and write "
                                    "its weights in the torchvision (ResNet) or NVlabs (MiT) layout "
                                    "(see udaseg/apps/pretrain.py).")
    pt.add_argument("--out", required=True, help="run folder (checkpoint, metrics, weights, summary)")
    pt.add_argument("overrides", nargs="*", type=override_arg, metavar="key=value",
                    help="recipe settings, e.g. iters=6000 arch=resnet50 or arch=mit_b0 (see udaseg.apps.pretrain.RECIPE)")
    pt.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    pt.add_argument("--overwrite", action="store_true", help="start again over a run in --out")
    pt.set_defaults(func=_cmd_pretrain)

    add_commands(sub)  # evaluate, predict, report

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    dd = data.add_parser("demo", help="write the embedded synthetic→real benchmark")
    dd.add_argument("--out", required=True)
    dd.add_argument("--seed", type=int, default=0)
    dd.add_argument("--n-source", type=int, default=2000)
    dd.add_argument("--n-target-train", type=int, default=500)
    dd.add_argument("--n-target-val", type=int, default=500)
    dd.add_argument("--n-target-dev", type=int, default=200,
                    help="labelled target images to choose hyper-parameters on (cityscapes/.../dev)")
    dd.add_argument("--n-source-heldout", type=int, default=200,
                    help="labelled source images never trained on (gta5/heldout.txt)")
    dd.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    dd.add_argument("--force", action="store_true", help="rewrite even if a complete benchmark is there")
    dd.set_defaults(func=_cmd_data_demo)
    ds = data.add_parser("summary", help="print a written benchmark's DATA.md")
    ds.add_argument("dir")
    ds.set_defaults(func=_cmd_data_summary)
    dc = data.add_parser(
        "check", help="list every unreadable or inconsistent file of a GTA5 / SYNTHIA / Cityscapes dataset",
        description="Decode every image and label (truncated or corrupt files), and list images without a "
                    "label, labels whose size differs from their image's, labels that are not id maps (a colour "
                    "PNG) or hold ids outside the format's range: one 'path: reason' line each, then "
                    "'N files checked, M problems'. Exit status 0 when clean, 1 with problems, 2 for a bad ROOT.")
    dc.add_argument("root", metavar="ROOT", help="the dataset's root folder")
    dc.add_argument("--kind", choices=("auto", "gta5", "synthia", "cityscapes"), default="auto",
                    help="layout (default auto: GTA5 images/ + labels/, SYNTHIA RGB/ + GT/LABELS/, "
                         "Cityscapes leftImg8bit/ + gtFine/)")
    dc.add_argument("--split", help="Cityscapes: split folder(s), comma-separated (default: every split under "
                                    "leftImg8bit/); GTA5 / SYNTHIA: a split list file of image names (default: all)")
    dc.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding threads")
    dc.set_defaults(func=_cmd_data_check)
    return p


def main(argv=None) -> int:
    from udaseg.config import ConfigError
    from udaseg.data.io import DatasetError
    from udaseg.engine.interrupt import TrainingInterrupted
    from udaseg.engine.run_lock import RunDirLockedError
    from udaseg.engine.trainer import NonFiniteLossError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TrainingInterrupted as exc:  # Ctrl-C / SIGTERM: saved; say how to go on, exit 128 + signal
        print(f"udaseg: {exc}", file=sys.stderr)
        print(f"udaseg: resume with: {resume_command(argv)}", file=sys.stderr)
        return exc.exit_code
    except (DatasetError, ConfigError, OSError, ValueError, NonFiniteLossError,
            RunDirLockedError) as exc:  # bad input: one clear line, no traceback
        print(f"udaseg: error: {error_message(exc)}", file=sys.stderr)
        return 2


def resume_command(argv: list[str]) -> str:
    """The command that continues an interrupted one: ``train`` and ``pretrain`` get ``--resume`` (and lose
    ``--overwrite``, which would delete what was saved); ``demo`` resumes by itself."""
    args = [a for a in argv if a != "--overwrite"]
    if args and args[0] in ("train", "pretrain") and "--resume" not in args:
        args.append("--resume")
    return "udaseg " + " ".join(shlex.quote(a) for a in args)


def error_message(exc: BaseException) -> str:
    """An error's message for the command line. An error raised in a DataLoader worker comes
    back re-raised with the worker's whole traceback inside its message ("Caught DatasetError in
    DataLoader worker process 0. Original Traceback ..."): keep only the original message."""
    text = str(exc)
    marker = "Original Traceback (most recent call last):"
    if marker in text:
        tail = text.split(marker, 1)[1]
        name = f"{type(exc).__name__}: "  # the traceback's last line: "[module.]Name: message"
        at = tail.rfind(name)
        if at >= 0:
            return tail[at + len(name):].strip() + " (in a DataLoader worker)"
    return text


if __name__ == "__main__":
    sys.exit(main())
