"""The paper's ablation on the embedded benchmark (see udaseg/apps/ablation.py for what runs).

    python benchmarks/ablation.py --publish benchmarks/results/ablation   # 3 seeds, demo configs
    python benchmarks/ablation.py --quick --seeds 0      # every schedule 10x shorter: a check, not a result
    python benchmarks/ablation.py --probe ent0.001=fgd_ent,method.lambda_ent=0.001   # one more row
Writes <out>/ablation.json (per run) and <out>/ABLATION.md (tables); re-running resumes where it
stopped. --publish DIR also writes both to DIR after each finished seed (commit them as they come).
"""
import argparse
import sys

from udaseg.apps.ablation import parse_probe, run_ablation
from udaseg.apps.pipeline import add_configs_argument
from udaseg.engine.interrupt import study_exit_code


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--out", help="run folder (default runs/ablation, or runs/ablation_quick with --quick)")
    p.add_argument("--quick", action="store_true", help="every schedule 10x shorter: checks that all rows run")
    p.add_argument("--publish", metavar="DIR", help="also write ablation.json + ABLATION.md here after each seed")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--probe", action="append", default=[], metavar="NAME=METHOD[,key=value,...]",
                   help="an extra adaptation run per seed from the same stage-1 checkpoint (repeatable)")
    p.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. train.iters=200")
    add_configs_argument(p)
    args = p.parse_args(argv)
    try:
        probes = [parse_probe(t) for t in args.probe]
    except ValueError as exc:
        p.error(str(exc))
    out = args.out or ("runs/ablation_quick" if args.quick else "runs/ablation")
    try:
        summary = run_ablation(args.data, out, [int(s) for s in args.seeds.split(",")], args.overrides,
                               progress=sys.stderr.isatty(), probes=probes, quick=args.quick, publish_dir=args.publish,
                               configs=args.configs)
    except ValueError as exc:
        p.error(str(exc))
    from udaseg.apps.ablation import format_markdown

    print(format_markdown(summary))


if __name__ == "__main__":
    sys.exit(study_exit_code(main))
