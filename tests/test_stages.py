"""run_training's stages: a finished run is skipped on resume only if it is a run of this config."""
import pytest

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine.run_dir import RunDirError
from udaseg.engine.stages import run_training


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


def test_a_finished_run_of_another_config_is_refused_not_reused(bench, tmp_path):
    cfg = tiny_config(bench, ["method.name=fada", "train.iters=2", "train.pretrain_iters=2", "train.val_every=0",
                              "train.checkpoint_every=0"])
    run_training(cfg, tmp_path, progress=False)
    assert run_training(cfg, tmp_path, resume=True, progress=False)["main"]["skipped"]  # the same config: skipped
    # e.g. `make demo` over the runs of an older recipe: the finished stage 1 is not this config's result
    other = tiny_config(bench, ["method.name=fada", "train.iters=2", "train.pretrain_iters=2", "train.val_every=0",
                                "train.checkpoint_every=0", "train.lr=0.02"])
    with pytest.raises(RunDirError, match=r"source_only holds a finished run of another config \(train.lr: 0.01 -> 0.02\)"):
        run_training(other, tmp_path, resume=True, progress=False)
    # keys that do not change the weights (logging, validation split, threads) do not count
    safe = tiny_config(bench, ["method.name=fada", "train.iters=2", "train.pretrain_iters=2", "train.val_every=0",
                               "train.checkpoint_every=0", "train.log_every=5", "train.threads=1"])
    assert run_training(safe, tmp_path, resume=True, progress=False)["main"]["skipped"]
    # asked for explicitly, the finished run is taken as it is
    assert run_training(other, tmp_path, resume=True, progress=False, allow_config_change=True)["main"]["skipped"]
