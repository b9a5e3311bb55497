"""Tiny trained runs shared by the evaluation, predict and report tests (trained once a session).

Training is most of these tests' time, so the runs are made once, under pytest's session
temporary folder, and reused read-mostly (tests write their outputs elsewhere, except the
evaluation CSV / JSON, which belong in a run directory).
"""
from fixtures import tiny_benchmark, tiny_config
from udaseg.engine.stages import run_training
from udaseg.engine.trainer import Trainer

_RUNS = {}


def tiny_runs(tmp_path_factory) -> dict:
    """{"bench", "source_only", "fgd_ent", "oracle"}: a two-stage fgd_ent run (source-only stage
    of 2 iterations in fgd_ent/source_only, then 2 adaptation iterations) and a 1-iteration
    target-only oracle; validated every iteration, so metrics.jsonl has val records and best.pt
    exists."""
    if not _RUNS:
        tmp = tmp_path_factory.mktemp("shared_runs")
        bench = tiny_benchmark(tmp / "bench")
        common = ["train.val_every=1", "train.checkpoint_every=0", "train.image_every=0"]
        run_training(tiny_config(bench, ["method.name=fgd_ent", "train.iters=2", "train.pretrain_iters=2", *common]),
                     tmp / "fgd_ent", progress=False)
        Trainer(tiny_config(bench, ["method.name=target_only", "train.iters=1", *common]), tmp / "oracle",
                progress=False).train()
        _RUNS.update(bench=bench, source_only=tmp / "fgd_ent" / "source_only", fgd_ent=tmp / "fgd_ent",
                     oracle=tmp / "oracle")
    return dict(_RUNS)
