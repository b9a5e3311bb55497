"""The recipe study on the embedded benchmark (see udaseg/apps/recipe.py for what runs and why).

    python benchmarks/recipe.py --recipe demo                              # configs/demo as they are
    python benchmarks/recipe.py --recipe sgd=train.optimizer=sgd,train.lr=0.01 --seeds 0
    python benchmarks/recipe.py --recipe demo --runs target_only          # only the oracle
Writes <out>/recipe.json (per run) and <out>/RECIPE.md (mean ± std, targets met); re-running resumes.
--publish DIR also writes both there after each run (benchmarks/results/recipe_v2: commit as they come).
"""
import argparse
import sys

from udaseg.apps.recipe import RUNS, TARGETS_BY_VERSION, format_markdown, parse_recipe, run_recipes
from udaseg.apps.pipeline import add_configs_argument
from udaseg.engine.interrupt import study_exit_code


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--out", default="runs/recipe")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--recipe", action="append", required=True, metavar="NAME[=key=value,...]",
                   help="a recipe: config overrides of the config set (--configs, default demo) (repeatable)")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    p.add_argument("--publish", metavar="DIR", help="also write recipe.json + RECIPE.md here after each run")
    p.add_argument("--targets", choices=sorted(TARGETS_BY_VERSION), default="v3",
                   help="which benchmark version's targets to check (v2: from scratch, v3: fine-tuning)")
    add_configs_argument(p)
    args = p.parse_args(argv)
    try:
        recipes = [parse_recipe(t) for t in args.recipe]
    except ValueError as exc:
        p.error(str(exc))
    runs = tuple(args.runs.split(","))
    if not set(runs) <= set(RUNS):
        p.error(f"--runs: unknown {sorted(set(runs) - set(RUNS))}; choose from {', '.join(RUNS)}")
    summary = run_recipes(recipes, args.data, args.out, [int(s) for s in args.seeds.split(",")], runs,
                          progress=sys.stderr.isatty(), publish_dir=args.publish,
                          targets=TARGETS_BY_VERSION[args.targets], configs=args.configs)
    print(format_markdown(summary))


if __name__ == "__main__":
    sys.exit(study_exit_code(main))
