"""Step time and peak memory of the self-training methods against the paper's method, in one run.

Each method's demo config (``configs/demo/<method>.yaml``: R18, 2 + 2 images at the demo's
size, bf16, channels_last) trains ``--steps`` iterations of its adaptation stage through the
real ``Trainer`` (loaders, teacher, ClassMix, MIC, rare-class sampling) on the embedded benchmark,
each in its own process, so its peak RSS is its own; the first ``--warmup`` iterations are not
timed. Prints s/iter, peak RSS and both ratios to ``fgd_ent``.

    python benchmarks/self_training_cost.py                         # data/demo (written if absent)
    python benchmarks/self_training_cost.py --steps 3 --warmup 1 --data /tmp/demo
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("fgd_ent", "dacs", "fgd_ent_st", "fgd_ent_st_mic")


def _measure(method: str, data: Path, steps: int, warmup: int) -> dict:
    from udaseg.apps.pipeline import demo_config
    from udaseg.engine.trainer import Trainer

    overrides = ["train.pretrain_iters=0", f"train.iters={warmup + steps}", "train.val_every=0",
                 "train.checkpoint_every=0", "train.image_every=0", f"train.log_every={warmup + steps}"]
    cfg = demo_config(method, data, 0, overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        t = Trainer(cfg, run_dir, progress=False)
        for it in range(warmup):
            t.step(it, t._next_batches())
        start = time.perf_counter()
        for it in range(warmup, warmup + steps):
            t.step(it, t._next_batches())
        sec = (time.perf_counter() - start) / steps
    return {"method": method, "sec_per_iter": sec, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo", help="the embedded benchmark (written if absent)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one method in this process
    args = p.parse_args(argv)
    data = Path(args.data)
    if args.one:
        print(json.dumps(_measure(args.one, data, args.steps, args.warmup)))
        return 0
    from udaseg.benchmark.writer import demo_is_complete, write_demo

    if not demo_is_complete(data):
        write_demo(data, seed=0, progress=False)
    rows = []
    for method in METHODS:
        out = subprocess.run([sys.executable, __file__, "--one", method, "--data", str(data), "--steps",
                              str(args.steps), "--warmup", str(args.warmup)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"demo configs, {args.steps} timed iterations after {args.warmup} (adaptation stage)")
    print("| method | s/iter | × fgd_ent | peak RSS MB | × fgd_ent |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['sec_per_iter']:.3f} | {r['sec_per_iter'] / base['sec_per_iter']:.2f} "
              f"| {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
