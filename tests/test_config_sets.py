"""Config sets: the main job and the studies run the recipe of one folder of configs
(``--configs demo``, another folder of ``configs/`` or a path), every run from that one folder."""
import json
import shutil
from pathlib import Path

import pytest

from fixtures import fake_last_checkpoint
from udaseg.apps import pipeline


@pytest.fixture
def other_set(tmp_path) -> Path:
    """A copy of configs/demo whose base recipe has another LR (3e-4 for the demo's 2e-2)."""
    folder = tmp_path / "my_set"
    shutil.copytree(pipeline.CONFIG_DIR / "demo", folder)
    base = folder / "_base_.yaml"
    text = base.read_text()
    lr_lines = [line for line in text.splitlines(keepends=True) if line.startswith("  lr: ")]
    assert len(lr_lines) == 1 and lr_lines[0].startswith("  lr: 2.0e-2 ")
    base.write_text(text.replace(lr_lines[0], "  lr: 3.0e-4\n"))
    return folder


def test_a_name_is_a_folder_of_configs_and_a_path_is_itself(other_set):
    assert pipeline.config_folder("demo") == pipeline.CONFIG_DIR / "demo"
    assert pipeline.config_folder(str(other_set)) == other_set
    assert pipeline.demo_config("source_only", Path("d"), 0)["train"]["lr"] == 2e-2
    assert pipeline.demo_config("source_only", Path("d"), 0, configs="demo_scratch")["train"]["lr"] == 1e-3
    cfg = pipeline.demo_config("source_only", Path("d"), 3, configs=other_set)
    assert cfg["train"]["lr"] == 3e-4 and cfg["seed"] == 3
    assert cfg["data"]["target"]["root"] == str(Path("d") / "cityscapes")


def test_a_missing_set_or_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config set 'nope': no folder .*configs/nope .*sets: demo, "):
        pipeline.demo_config("fgd_ent", tmp_path, 0, configs="nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/fgd_ent.yaml not found: config set .* has no config for 'fgd_ent'"):
        pipeline.demo_config("fgd_ent", tmp_path, 0, configs=tmp_path / "empty")


def test_the_demo_command_refuses_an_unknown_set_before_anything_runs(capsys, tmp_path):
    from udaseg.apps.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", "--data", str(tmp_path / "d"), "--configs", "nope"])
    assert exc.value.code == 2
    assert "argument --configs: config set 'nope'" in capsys.readouterr().err
    assert build_parser().parse_args(["demo", "--configs", "demo"]).configs == "demo"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def fake_training(monkeypatch):
    """Training and evaluation replaced by recorders: which config each run got."""
    import udaseg.apps.ablation
    import udaseg.benchmark.writer
    import udaseg.engine.stages

    trained = []

    def fake_run_training(cfg, run_dir, resume=False, progress=False):
        trained.append((Path(run_dir).name, cfg))
        return {"main": {"last": fake_last_checkpoint(run_dir)}}

    monkeypatch.setattr(udaseg.engine.stages, "run_training", fake_run_training)
    figures = {"miou": 0.5, "iou": [0.5] * 19, "predicted_fractions": [1 / 19] * 19, "label_fractions": [1 / 19] * 19}
    monkeypatch.setattr(udaseg.apps.ablation, "evaluate_checkpoint", lambda ckpt, cfg, adabn=False: dict(figures))
    monkeypatch.setattr(udaseg.benchmark.writer, "demo_is_complete", lambda d, seed=None: True)
    return trained


def test_the_ablation_trains_every_row_from_the_given_set(fake_training, other_set, tmp_path):
    from udaseg.apps.ablation import ADAPTATION, run_ablation

    run_ablation(tmp_path / "d", tmp_path / "out", seeds=(0,), configs=other_set, log=lambda s: None,
                 probes=[("p", "fgd_ent", ["method.lambda_ent=0.02"])])
    names = [name for name, _ in fake_training]
    assert names == ["source_only", "target_only", *ADAPTATION, "p"]
    assert {cfg["train"]["lr"] for _, cfg in fake_training} == {3e-4}  # none from configs/demo (2e-2)
    assert json.loads((tmp_path / "out" / "ablation.json").read_text())["configs"] == str(other_set)


def test_the_recipe_study_overrides_the_given_set(fake_training, other_set, tmp_path):
    from udaseg.apps.recipe import run_recipes

    run_recipes([("r", ["train.iters=7"])], tmp_path / "d", tmp_path / "out", seeds=(0,), runs=("target_only",),
                configs=other_set, log=lambda s: None)
    assert [(name, cfg["train"]["lr"], cfg["train"]["iters"]) for name, cfg in fake_training] == [("target_only", 3e-4, 7)]


def test_the_dev_grid_runs_the_given_set(fake_training, other_set, tmp_path):
    from udaseg.apps.dev_grid import run_grid

    run_grid(tmp_path / "d", tmp_path / "out", methods=(), configs=other_set, log=lambda s: None,
             probes=[("p", "fada", [])])
    assert [(name, cfg["train"]["lr"]) for name, cfg in fake_training] == [("source_only", 3e-4), ("p", 3e-4)]
    with pytest.raises(ValueError, match=r"probe q: no demo config for method 'fgd_entt': .*my_set/fgd_entt.yaml"):
        run_grid(tmp_path / "d", tmp_path / "out2", methods=(), configs=other_set, probes=[("q", "fgd_entt", [])])


def test_the_demo_job_runs_the_given_set(fake_training, other_set, tmp_path, monkeypatch):
    import numpy as np

    from udaseg.engine.evaluation import EvalResult

    same = EvalResult(19, np.full(19, 0.5), np.full(19, 1 / 19), np.full(19, 1 / 19), 0.9, {"mIoU19": 0.5}, 4)
    monkeypatch.setattr(pipeline, "_evaluate_checkpoint", lambda ckpt, cfg: same)
    lines = []
    pipeline.run_demo(tmp_path / "d", tmp_path / "runs", configs=other_set, report=False, progress=False,
                      log=lines.append)
    assert [(name, cfg["train"]["lr"]) for name, cfg in fake_training] == [
        ("source_only", 3e-4), ("bn_control", 3e-4), ("fgd_ent", 3e-4)]
    assert any(f"configs: {other_set}" in line for line in lines)
    # v3's BN is frozen: the control is named for what it then is (source-only trained as long)
    assert any(line.startswith("fgd_ent over the BN-only control (same schedule, no target loss; BN frozen, so: "
                               "source-only trained as long): +0.0") for line in lines)
    fake_training.clear()
    lines.clear()
    pipeline.run_demo(tmp_path / "d", tmp_path / "runs2", configs="demo_scratch", report=False, progress=False,
                      log=lines.append)
    assert {cfg["model"]["bn_mode"] for _, cfg in fake_training} == {"trainable"}
    assert any("(same schedule, target images through train-mode BN, no target loss): +0.0" in line for line in lines)


def _flat(tree: dict, prefix="") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_demo_set_is_v3_the_papers_recipe_on_the_shipped_weights():
    """configs/demo (benchmark v3): the shipped pretrained R18 fine-tuned with the paper's recipe."""
    cfg = pipeline.demo_config("source_only", Path("d"), 0)
    model, train = cfg["model"], cfg["train"]
    assert (model["arch"], model["bn_mode"], model["pretrained"], model["input_norm"]) == (
        "deeplabv2_resnet18_tv", "frozen", "demo_resnet18_world", "imagenet")
    assert (train["optimizer"], train["momentum"], train["weight_decay"], train["head_lr_mult"], train["poly_power"]) == (
        "sgd", 0.9, 5e-4, 10.0, 0.9)
    assert (train["lr"], train["warmup_iters"], train["iters"], cfg["data"]["batch_size"]) == (2e-2, 200, 3000, 2)
    for method in ("dacs", "fgd_ent_st", "fgd_ent_st_mic"):  # frozen BN: the teacher's statistics are the init's
        assert pipeline.demo_config(method, Path("d"), 0)["self_training"]["teacher_bn"] == "auto"


# What a config set's recipe may change; everything else (data, sizes, schedule, evaluation,
# self-training settings) is the benchmark's and the same in v2 and v3, so their results compare.
RECIPE_KEYS = {"model.arch", "model.bn_mode", "model.pretrained", "train.optimizer", "train.lr", "train.head_lr_mult",
               "train.momentum", "train.weight_decay", "train.betas", "train.warmup_iters", "self_training.teacher_bn"}


@pytest.mark.parametrize("method", sorted(p.stem for p in (pipeline.CONFIG_DIR / "demo").glob("*.yaml")
                                          if not p.stem.startswith("_") and p.stem != "daformer"))
def test_v3_and_the_from_scratch_set_differ_only_in_the_recipe_and_the_loss_weights(method):
    v3 = _flat(pipeline.demo_config(method, Path("d"), 0))
    v2 = _flat(pipeline.demo_config(method, Path("d"), 0, configs="demo_scratch"))
    assert set(v3) == set(v2)
    from udaseg.apps.dev_grid import GRID

    loss_weights = {spec["vary"][0] for spec in GRID.values()}  # what each set's dev grid chooses
    differ = {k for k in v3 if v3[k] != v2[k]}
    assert differ - RECIPE_KEYS <= {k for k in differ if k.startswith("method.") or k in loss_weights}, method
    assert {"model.arch", "model.bn_mode", "train.optimizer"} <= differ


def _diverging_in(run_name: str, message: str, ran: list):
    """A run_training whose run ``run_name`` stops with a non-finite loss; ``ran`` records every run."""
    from udaseg.engine.step import NonFiniteLossError

    def fake_run_training(cfg, run_dir, resume=False, progress=False):
        ran.append(Path(run_dir).name)
        if Path(run_dir).name == run_name:
            raise NonFiniteLossError(message)
        return {"main": {"last": Path(run_dir) / "checkpoints" / "last.pt"}}

    return fake_run_training


def test_the_ablation_records_a_diverged_row_and_goes_on(fake_training, monkeypatch, tmp_path):
    """A row whose loss turns non-finite is a result (kept, in no mean), not the end of a 3-seed study."""
    import udaseg.engine.stages
    from udaseg.apps.ablation import ADAPTATION, run_ablation

    ran = []
    monkeypatch.setattr(udaseg.engine.stages, "run_training",
                        _diverging_in("dacs", "iteration 209: non-finite loss (seg = nan)", ran))
    lines = []
    summary = run_ablation(tmp_path / "d", tmp_path / "out", seeds=(0,), log=lines.append)
    assert ran == ["source_only", "target_only", *ADAPTATION]  # every row after dacs still ran
    stored = json.loads((tmp_path / "out" / "ablation.json").read_text())["runs"]
    assert stored["0/dacs"]["diverged"] == "iteration 209: non-finite loss (seg = nan)" and "miou" not in stored["0/dacs"]
    assert "0/adabn" in stored and "dacs" not in summary["rows"] and "fgd_ent_st" in summary["rows"]
    assert "  diverged: iteration 209: non-finite loss (seg = nan)" in lines
    ran.clear()
    run_ablation(tmp_path / "d", tmp_path / "out", seeds=(0,), log=lines.append)
    assert ran == []  # the diverged row counts as measured: a rerun does not train it again


def test_a_diverged_stage_one_skips_that_seeds_adaptation_rows(fake_training, monkeypatch, tmp_path):
    import udaseg.engine.stages
    from udaseg.apps.ablation import run_ablation

    ran = []
    monkeypatch.setattr(udaseg.engine.stages, "run_training", _diverging_in("source_only", "iteration 9", ran))
    lines = []
    run_ablation(tmp_path / "d", tmp_path / "out", seeds=(0,), log=lines.append)
    assert ran == ["source_only", "target_only"]
    assert "seed 0: the source-only stage diverged; no adaptation rows, no AdaBN" in lines
    assert sorted(json.loads((tmp_path / "out" / "ablation.json").read_text())["runs"]) == ["0/source_only", "0/target_only"]
