"""run_training's stages: a finished run is skipped on resume only if it is a run of this config."""
import pytest

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine.run_dir import RunDirError
from udaseg.engine.checkpoint import load_checkpoint
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


TWO_STAGES = ["method.name=fada", "train.iters=2", "train.pretrain_iters=2", "train.val_every=0",
              "train.checkpoint_every=1"]


def _unfinish(run):
    """Make stage 2 look killed after its first iteration (its last.pt at iteration 1)."""
    import torch

    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["iteration"] = 1
    torch.save(state, last)


def test_resume_takes_the_same_run_however_its_folder_is_written(bench, tmp_path, monkeypatch):
    """Stage 2's train.init_from is set by run_training from the run folder's path: a relative or
    absolute path, another working directory or a moved folder is still the same run."""
    import shutil

    cfg = tiny_config(bench, TWO_STAGES)
    monkeypatch.chdir(tmp_path)
    run_training(cfg, "runs/x", progress=False)  # relative, from tmp_path
    _unfinish(tmp_path / "runs" / "x")
    out = run_training(cfg, tmp_path / "runs" / "x", resume=True, progress=False)  # absolute
    assert out["source_only"]["skipped"] and out["main"]["iter"] == 2
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    _unfinish(tmp_path / "runs" / "x")
    assert run_training(cfg, "../runs/x", resume=True, progress=False)["main"]["iter"] == 2  # another cwd
    shutil.move(tmp_path / "runs" / "x", tmp_path / "moved")
    _unfinish(tmp_path / "moved")
    assert run_training(cfg, tmp_path / "moved", resume=True, progress=False)["main"]["iter"] == 2  # moved
    assert run_training(cfg, tmp_path / "moved", resume=True, progress=False)["main"]["skipped"]
    # a user's own init_from that really changed is still refused, naming the key
    other = tiny_config(bench, [*TWO_STAGES, f"train.init_from={tmp_path / 'moved' / 'checkpoints' / 'last.pt'}"])
    _unfinish(tmp_path / "moved")
    with pytest.raises(RunDirError, match=r"train.init_from"):
        run_training(other, tmp_path / "moved", resume=True, progress=False)


def test_a_missing_or_empty_target_split_stops_the_run_before_stage_1_trains(bench, tmp_path):
    from udaseg.data.io import DatasetError

    (tmp_path / "empty" / "leftImg8bit" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "gtFine" / "train").mkdir(parents=True)
    for root, message in ((tmp_path / "nowhere", "not found"), (tmp_path / "empty", "no .*_leftImg8bit.png files under")):
        cfg = tiny_config(bench, [*TWO_STAGES, f"data.target.root={root}"])
        with pytest.raises(DatasetError, match=message):
            run_training(cfg, tmp_path / "run", progress=False)
        assert not (tmp_path / "run" / "source_only" / "checkpoints").exists()
    # a run that validates needs its validation split before training too
    cfg = tiny_config(bench, [*TWO_STAGES, "train.val_every=1", f"data.val.root={tmp_path / 'nowhere'}"])
    with pytest.raises(DatasetError, match="not found"):
        run_training(cfg, tmp_path / "run", progress=False)
