"""The paper's ablation on the embedded benchmark (see udaseg/ablation.py for what runs).

    python benchmarks/ablation.py                        # 3 seeds, demo configs (~75-90 min on 2 cores)
    python benchmarks/ablation.py --seeds 0 --out runs/ablation_quick train.iters=200
Writes <out>/ablation.json (per run) and <out>/ABLATION.md (tables); re-running resumes.
"""
import argparse
import sys

from udaseg.ablation import run_ablation


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    p.add_argument("overrides", nargs="*", help="config overrides for every run, e.g. train.iters=200")
    args = p.parse_args(argv)
    summary = run_ablation(args.data, args.out, [int(s) for s in args.seeds.split(",")], args.overrides, progress=sys.stderr.isatty())
    from udaseg.ablation import format_markdown

    print(format_markdown(summary))


if __name__ == "__main__":
    main()
