"""The paper's ablation on the embedded benchmark (see udaseg/apps/ablation.py for what runs).

    python benchmarks/ablation.py                        # 3 seeds, demo configs (~75-90 min on 2 cores)
    python benchmarks/ablation.py --seeds 0 --out runs/ablation_quick train.iters=200
    python benchmarks/ablation.py --probe ent0.001=fgd_ent,method.lambda_ent=0.001   # one more row
Writes <out>/ablation.json (per run) and <out>/ABLATION.md (tables); re-running resumes.
"""
import argparse
import sys

from udaseg.apps.ablation import parse_probe, run_ablation


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--probe", action="append", default=[], metavar="NAME=METHOD[,key=value,...]",
                   help="an extra adaptation run per seed from the same stage-1 checkpoint (repeatable)")
    p.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. train.iters=200")
    args = p.parse_args(argv)
    try:
        probes = [parse_probe(t) for t in args.probe]
    except ValueError as exc:
        p.error(str(exc))
    summary = run_ablation(args.data, args.out, [int(s) for s in args.seeds.split(",")], args.overrides,
                           progress=sys.stderr.isatty(), probes=probes)
    from udaseg.apps.ablation import format_markdown

    print(format_markdown(summary))


if __name__ == "__main__":
    main()
