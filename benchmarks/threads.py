"""Training speed against torch's intra-op threads and the loader workers, on a quiet and a busy machine.

    python benchmarks/threads.py                      # demo source-only step, 40 iterations per setting
    python benchmarks/threads.py --iters 60 --busy 2 --settings 1x2,2x2,2x0

Each setting ``THREADSxWORKERS`` trains ``configs/demo/source_only.yaml`` in a fresh process
(``train.threads`` and ``data.workers`` set, no validation or checkpoints) and reports the median
of its logged s/iter after the first log interval (warm-up). "busy" runs the same with ``--busy``
processes spinning beside it, which is what a shared machine (or CI) looks like. The ratios
against the first setting, measured in the same run, are the meaningful part.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG = 1800  # a hang guard, not a time limit


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(threads: int, workers: int, iters: int, data: str, method: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        cmd = [sys.executable, "-m", "udaseg", "train", str(ROOT / "configs" / "demo" / f"{method}.yaml"),
               "--run-dir", tmp, f"train.threads={threads}", f"data.workers={workers}", f"train.iters={iters}",
               "train.pretrain_iters=0", "train.log_every=10", "train.val_every=0", "train.checkpoint_every=0",
               "train.image_every=0", f"data.source.root={data}/gta5", f"data.target.root={data}/cityscapes",
               f"data.val.root={data}/cityscapes"]
        subprocess.run(cmd, check=True, env=env, timeout=HANG, stdout=subprocess.DEVNULL)
        logs = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        secs = [r["sec_per_iter"] for r in logs if r.get("kind") == "train"][1:]
        return statistics.median(secs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/demo")
    p.add_argument("--method", default="source_only")
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--busy", type=int, default=2, help="spinning processes in the busy pass (0: skip it)")
    p.add_argument("--settings", default="1x2,2x2,1x1,2x1", help="THREADSxWORKERS, comma-separated")
    args = p.parse_args(argv)
    settings = [tuple(int(v) for v in s.split("x")) for s in args.settings.split(",")]
    print(f"{os.cpu_count()} cores; {args.method}, {args.iters} iterations per setting; s/iter (median)")
    print("| threads × workers | quiet s/iter | vs first | busy s/iter | vs first |")
    print("|---|---|---|---|---|")
    quiet = {s: measure(*s, args.iters, args.data, args.method) for s in settings}
    busy = {}
    if args.busy:
        procs = spinners(args.busy)
        try:
            busy = {s: measure(*s, args.iters, args.data, args.method) for s in settings}
        finally:
            for proc in procs:
                proc.kill()
    first = settings[0]
    for s in settings:
        b = f"{busy[s]:.3f} | {busy[s] / busy[first]:.2f}×" if busy else "– | –"
        print(f"| {s[0]} × {s[1]} | {quiet[s]:.3f} | {quiet[s] / quiet[first]:.2f}× | {b} |")


if __name__ == "__main__":
    main()
