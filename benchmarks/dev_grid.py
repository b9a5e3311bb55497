"""Choose each demo method's loss weight on the labelled target dev split (udaseg/apps/dev_grid.py).

    python benchmarks/dev_grid.py --publish benchmarks/results/dev_grid    # seed 3, its own stage-1 run
    python benchmarks/dev_grid.py --out runs/grid_check --methods adaptsegnet,minent train.iters=50   # a check
    python benchmarks/dev_grid.py --probe softmax_d=fgd_ent,method.d_input=softmax   # investigate on dev
Writes <out>/grid.json (per run) and <out>/GRID.md (the table, chosen values in bold); re-running
resumes. A method that inherits another's weights (fgd_ent from fada, ...) runs once they are chosen.
"""
import argparse
import sys

from udaseg.apps.ablation import parse_probe
from udaseg.apps.dev_grid import GRID, GRID_SEED, format_markdown, run_grid
from udaseg.apps.pipeline import add_configs_argument
from udaseg.engine.interrupt import study_exit_code


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--out", default="runs/dev_grid")
    p.add_argument("--seed", type=int, default=GRID_SEED, help="default %(default)s: not one of the ablation's seeds")
    p.add_argument("--methods", default=",".join(GRID), help="comma-separated subset ('' for probes only)")
    p.add_argument("--stage1", help="source-only checkpoint to adapt from (default: trained into <out>/source_only)")
    p.add_argument("--publish", metavar="DIR", help="also write grid.json + GRID.md here after each run")
    p.add_argument("--probe", action="append", default=[], metavar="NAME=METHOD[,key=value,...]",
                   help="one more run from the grid's stage 1, evaluated on dev (repeatable)")
    p.add_argument("overrides", nargs="*", help="config overrides for every run")
    add_configs_argument(p)
    args = p.parse_args(argv)
    try:
        probes = [parse_probe(t) for t in args.probe]
        methods = tuple(m for m in args.methods.split(",") if m)
        results = run_grid(args.data, args.out, methods, args.seed, args.overrides, stage1=args.stage1,
                           progress=sys.stderr.isatty(), publish_dir=args.publish, probes=probes, configs=args.configs)
    except ValueError as exc:
        p.error(str(exc))
    print(format_markdown(results))


if __name__ == "__main__":
    sys.exit(study_exit_code(main))
