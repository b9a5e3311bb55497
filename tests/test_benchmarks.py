"""Smoke tests: each benchmark script runs end to end on a tiny setting."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from udaseg.data.demo import write_demo
from udaseg.models.deeplabv2 import sha256sum

REPO = Path(__file__).resolve().parents[1]
# Subprocess timeouts only guard against a hang: on a loaded CI machine the suite once took 24 min
# instead of ~4, and the tiny ablation ran past a 600 s limit.
HANG = 1800


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    write_demo(root, seed=0, n_source=6, n_target_train=4, n_target_val=2, workers=1, progress=False, n_synthia=2,
               n_target_dev=2, n_source_heldout=2)  # explicit: the defaults add 400 images
    return root


def test_ablation_script_tiny(tiny_demo, tmp_path):
    tiny = ["train.iters=2", "train.val_every=0", "train.checkpoint_every=0", "train.log_every=1",
            "train.image_every=0", "data.workers=0", "data.batch_size=1", "train.amp=none", "train.channels_last=false"]
    cmd = [sys.executable, "benchmarks/ablation.py", "--data", str(tiny_demo), "--out", str(tmp_path), "--seeds", "0,1", *tiny]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "ablation.json").read_text())
    names = {k.split("/")[1] for k in results["runs"]}
    assert names == {"source_only", "target_only", "continue", "bn_control", "adaptsegnet", "minent", "fada",
                     "fgd_ent", "adabn", "dacs", "fgd_ent_st", "fgd_ent_st_mic"}
    assert len(results["runs"]) == 24
    md = (tmp_path / "ABLATION.md").read_text()
    assert "BN-only control" in md and "Paper ordering" in md and "| ground truth |" in md
    # re-running skips everything already evaluated
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert again.returncode == 0 and "seed 0:" not in again.stdout
    # a probe adds one run per seed from the same stage-1 checkpoint, and nothing else
    probe = subprocess.run([*cmd, "--probe", "ent_low=fgd_ent,method.lambda_ent=0.001"], cwd=REPO,
                           capture_output=True, text=True, timeout=HANG)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert [line for line in probe.stdout.splitlines() if line.startswith("seed ")] == [
        "seed 0: ent_low (2 iterations)", "seed 1: ent_low (2 iterations)"]
    cfg = yaml.safe_load((tmp_path / "seed1" / "ent_low" / "config.yaml").read_text())
    assert cfg["method"]["lambda_ent"] == 0.001 and cfg["train"]["init_from"].endswith("seed1/source_only/checkpoints/last.pt")
    assert "| probe ent_low: fgd_ent method.lambda_ent=0.001 |" in (tmp_path / "ABLATION.md").read_text()
    bad = subprocess.run([*cmd, "--probe", "fada=fgd_ent"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert bad.returncode == 2 and "probe 'fada=fgd_ent': expected NAME=METHOD" in bad.stderr


def test_aspp_benchmark_prints_both_forms():
    out = subprocess.run([sys.executable, "benchmarks/train_step.py", "--aspp", "--settings", "demo"],
                         cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dilated_conv" in out.stdout and "ASPP speed-up taps / dilated convolutions:" in out.stdout


def test_train_step_benchmark_prints_ratio_and_flops():
    out = subprocess.run([sys.executable, "benchmarks/train_step.py", "--settings", "demo", "--steps", "1", "--warmup", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "speed-up udaseg / reference:" in out.stdout and "GFLOP/s achieved" in out.stdout
    assert "peak RSS" in out.stdout


def test_gpu_check_runs_as_a_cpu_smoke(tmp_path):
    # the real Trainer on synthetic GTA5 / Cityscapes files: adaptation (1 warm-up + 1 timed
    # iteration), a source-only stage (the same), one validation, the projection
    out = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--arch", "deeplabv2_resnet18",
                          "--source", "64x32", "--target", "64x32", "--iters", "2", "--warmup", "1", "--log-every", "1",
                          "--source-only-iters", "2", "--workers", "0", "--val", "--data", str(tmp_path / "data"),
                          "--run-dir", str(tmp_path / "runs")],
                         cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for key in ("s/iter: ", "images/s: ", "source-only s/iter: ", "projected time of the paper's schedule: "):
        assert any(line.startswith(key) for line in lines), (key, out.stdout)
    assert "resolved: " in out.stdout and "amp none" in out.stdout
    assert "20000 source-only" in out.stdout and "40000 fgd_ent" in out.stdout  # the config file's schedule
    run = tmp_path / "runs"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["kind"] == "train"] == [1, 2]  # train() continued after the warm-up
    assert [r["kind"] for r in records].count("val") == 1
    meta = json.loads((run / "meta.json").read_text())
    assert meta["method"] == "fgd_ent" and meta["bn_mode"] == "frozen" and meta["resolved"]["amp"] == "none"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "source_only" / "checkpoints" / "last.pt").is_file()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["pretrained"] is None and cfg["train"]["pretrain_iters"] == 0
    assert cfg["data"]["source"]["transforms"]["resize"] == [64, 32]
    assert (tmp_path / "data" / "gta5" / "images" / "00001.png").is_file()


def test_gpu_check_measures_a_transformer_config(tmp_path):
    # --config: the step of the paper's terms on DAFormer's recipe (MiT-B0 here), its 512×512 crops
    # cut to the tiny training size; the projection is that config's own schedule (40k, no source-only)
    out = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--config",
                          "configs/gta5_cityscapes/fgd_ent_daformer.yaml", "--device", "cpu", "--arch", "daformer_mitb0",
                          "--source", "64x64", "--target", "64x64", "--iters", "2", "--warmup", "1", "--log-every", "1",
                          "--source-only-iters", "0", "--workers", "0", "--run-dir", str(tmp_path / "runs"),
                          "--data", str(tmp_path / "data")],
                         cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("run: fgd_ent_daformer.yaml, fgd_ent + self_training + feature_distance + rcs, model.feature_stage 4, "
            "daformer_mitb0, bn_mode trainable") in out.stdout
    assert "0 source-only" in out.stdout and "40000 fgd_ent" in out.stdout
    run = tmp_path / "runs"
    train = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["kind"] == "train"]
    assert [r["iter"] for r in train] == [1, 2]
    assert all({"seg", "adv_fine", "ent", "d_fine_src", "st_mix", "feat_dist"} <= set(r) for r in train)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["source"]["transforms"]["crop"] == [64, 64] == cfg["data"]["target"]["transforms"]["crop"]
    assert cfg["train"]["optimizer"] == "adamw" and cfg["model"]["arch"] == "daformer_mitb0"


def test_data_pipeline_benchmark_tiny(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/data_pipeline.py", "--images", "1", "--passes", "1",
                          "--dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio udaseg / reference:" in out.stdout


def test_eval_throughput_benchmark_tiny():
    out = subprocess.run([sys.executable, "benchmarks/eval_throughput.py", "--arch", "deeplabv2_resnet18", "--images", "1",
                          "--input", "64x32", "--label", "128x64"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "images/s" in out.stdout and "ASPP taps" in out.stdout and "ASPP dilated_conv" in out.stdout


def test_transformer_step_benchmark_prints_every_variant_against_fp32():
    out = subprocess.run([sys.executable, "benchmarks/transformer_step.py", "--arch", "daformer_mitb0", "--size", "64",
                          "--steps", "1", "--rounds", "1"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "daformer_mitb0, 1×64², train step" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| fp32 |") or line.startswith("| bf16")]
    assert [r.split(" |")[0] for r in rows] == ["| fp32", "| bf16", "| bf16_cl"]
    assert rows[0].endswith("| 1.00× |")  # the baseline against itself


def test_saved_activations_benchmark_tiny():
    out = subprocess.run([sys.executable, "benchmarks/saved_activations.py", "--arch", "deeplabv2_resnet18",
                          "--meta", "gta5=128x64:19", "--cpu", "64x32"], cwd=REPO, capture_output=True, text=True,
                         timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| gta5 | 128×64 | 19 | meta | fp32 |" in out.stdout and "bf16 autocast" in out.stdout
    import re  # the new layer's count on meta equals the real-tensor count exactly
    assert "new/old" in out.stdout and re.search(r"; new [\d,]+ vs [\d,]+ \(Δ \+0\)", out.stdout), out.stdout


def test_gpu_check_without_cuda_exits_2_with_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, capture_output=True, text=True,
                         timeout=HANG)
    assert out.returncode == 2
    assert "CUDA" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_self_training_cost_benchmark_tiny(tiny_demo):
    out = subprocess.run([sys.executable, "benchmarks/self_training_cost.py", "--data", str(tiny_demo), "--steps", "1",
                          "--warmup", "0"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    for method in ("fgd_ent", "dacs", "fgd_ent_st", "fgd_ent_st_mic"):
        assert f"| {method} |" in out.stdout


TINY = ["train.val_every=0", "train.checkpoint_every=0", "train.log_every=1", "train.image_every=0",
        "data.workers=0", "data.batch_size=1", "train.amp=none", "train.channels_last=false", "eval.batch_size=1"]


def test_ablation_quick_runs_every_row_ten_times_shorter_and_publishes(tiny_demo, tmp_path):
    pub = tmp_path / "published"
    cmd = [sys.executable, "benchmarks/ablation.py", "--data", str(tiny_demo), "--out", str(tmp_path / "q"),
           "--seeds", "0", "--quick", "--publish", str(pub), "train.iters=20", *TINY]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((pub / "ablation.json").read_text())
    assert results["quick"] is True and len(results["runs"]) == 12
    assert "seed 0: fgd_ent (2 iterations)" in out.stdout and "seed 0: source_only (2 iterations)" in out.stdout
    assert (pub / "ABLATION.md").read_text() == (tmp_path / "q" / "ABLATION.md").read_text()
    # a full ablation into the quick one's folder is refused, not mixed
    full = subprocess.run([c for c in cmd if c != "--quick"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert full.returncode != 0 and "holds a quick ablation" in full.stderr


def test_dev_grid_script_chooses_on_dev_and_children_inherit(tiny_demo, tmp_path):
    cmd = [sys.executable, "benchmarks/dev_grid.py", "--data", str(tiny_demo), "--out", str(tmp_path),
           "--methods", "fada,fgd_ent", "--probe", "softmax_d=fada,method.d_input=softmax", "train.iters=2", *TINY]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    grid = json.loads((tmp_path / "grid.json").read_text())
    probe = grid["probes"]["softmax_d"]  # a dev probe: its own run from the grid's stage 1, scored on dev
    assert probe["method"] == "fada" and probe["overrides"] == ["method.d_input=softmax"] and 0 <= probe["dev_miou"] <= 1
    probe_cfg = yaml.safe_load((tmp_path / "probes" / "softmax_d" / "config.yaml").read_text())
    assert probe_cfg["method"]["d_input"] == "softmax" and probe_cfg["train"]["iters"] == 2
    assert probe_cfg["train"]["init_from"] == str(tmp_path / "source_only" / "checkpoints" / "last.pt")
    assert "| softmax_d | fada | method.d_input=softmax |" in (tmp_path / "GRID.md").read_text()
    assert grid["stage1"]["checkpoint"] == str(tmp_path / "source_only" / "checkpoints" / "last.pt")
    assert 0 <= grid["stage1"]["dev_miou"] <= 1 and "The stage-1 (source-only) checkpoint itself" in \
        (tmp_path / "GRID.md").read_text()
    assert sorted(grid["runs"]) == ["fada/lambda_adv=0.001", "fada/lambda_adv=0.01", "fada/lambda_adv=0.1",
                                    "fgd_ent/lambda_ent=0.001", "fgd_ent/lambda_ent=0.01", "fgd_ent/lambda_ent=0.1"]
    best_fada = max((r for k, r in grid["runs"].items() if k.startswith("fada/")), key=lambda r: r["dev_miou"])
    for key, run in grid["runs"].items():
        cfg = yaml.safe_load((tmp_path / key / "config.yaml").read_text())
        assert cfg["train"]["init_from"].endswith("source_only/checkpoints/last.pt")
        if key.startswith("fgd_ent/"):  # the paper's method adds its entropy weight to FADA's chosen D weight
            assert run["overrides"][0] == best_fada["overrides"][0]
            assert cfg["method"]["lambda_ent_aux"] == pytest.approx(0.2 * cfg["method"]["lambda_ent"])
    assert "**" in (tmp_path / "GRID.md").read_text()
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert again.returncode == 0 and "dev grid:" not in again.stdout  # resumed: nothing left to run
    assert "dev probe:" not in again.stdout
    # a stage 1 retrained at the same path (a fresh clone, another machine) is refused, not mixed in:
    # known by its SHA-256, or, in a record from before it was kept, by its dev figure
    assert grid["stage1"]["sha256"] == sha256sum(grid["stage1"]["checkpoint"])
    for stage1, refused in [({"sha256": "0" * 64}, "SHA-256"), ({"sha256": None, "dev_miou": 0.5}, "recorded 50.00"),
                            ({"sha256": None}, None)]:
        record = {k: v for k, v in {**grid["stage1"], **stage1}.items() if v is not None}
        (tmp_path / "grid.json").write_text(json.dumps({**grid, "stage1": record}))
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
        if refused:
            assert out.returncode != 0 and "another stage-1 checkpoint" in out.stderr and refused in out.stderr
        else:  # the same checkpoint: its digest is recorded now
            assert out.returncode == 0, out.stderr[-2000:]
            rerecorded = json.loads((tmp_path / "grid.json").read_text())["stage1"]
            assert rerecorded["sha256"] == grid["stage1"]["sha256"]
            assert rerecorded["dev_miou"] == pytest.approx(grid["stage1"]["dev_miou"], abs=1e-3)  # the check's own bound


def test_recipe_script_reports_the_method_independent_figures(tiny_demo, tmp_path):
    recipe = "tiny=" + ",".join(["train.iters=2", "data.target.transforms.resize=[128,64]", *TINY])
    cmd = [sys.executable, "benchmarks/recipe.py", "--data", str(tiny_demo), "--out", str(tmp_path), "--seeds", "0",
           "--recipe", recipe, "--publish", str(tmp_path / "pub")]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads((tmp_path / "recipe.json").read_text())
    assert sorted(rec["runs"]) == ["tiny/0/source_only", "tiny/0/source_only_per_image", "tiny/0/target_only"]
    assert {"val", "heldout_source", "adabn"} <= set(rec["runs"]["tiny/0/source_only"])
    cfg = yaml.safe_load((tmp_path / "tiny" / "seed0" / "source_only_per_image" / "config.yaml").read_text())
    assert cfg["model"]["input_norm"] == "per_image" and cfg["data"]["target"]["transforms"]["resize"] == [128, 64]
    assert cfg["data"]["target"]["transforms"]["hflip"] == 0.5  # a key below transforms merges, never replaces
    assert "| tiny |" in (tmp_path / "RECIPE.md").read_text()
    assert (tmp_path / "pub" / "RECIPE.md").read_text() == (tmp_path / "RECIPE.md").read_text()
    assert json.loads((tmp_path / "pub" / "recipe.json").read_text()) == rec
    # a fresh clone continues the committed (published) study: its runs stay, only the new one trains
    shutil.rmtree(tmp_path / "tiny")
    (tmp_path / "recipe.json").unlink()
    more = subprocess.run([*cmd[:-4], "--recipe", recipe.replace("tiny=", "tiny2=", 1), "--runs", "target_only",
                           "--publish", str(tmp_path / "pub")], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert more.returncode == 0, more.stderr[-2000:]
    assert "continuing the published results" in more.stdout
    assert "tiny/0/" not in more.stdout and "tiny2/0/target_only: 2 iterations" in more.stdout
    published = json.loads((tmp_path / "pub" / "recipe.json").read_text())
    assert sorted(published["runs"]) == [*sorted(rec["runs"]), "tiny2/0/target_only"]
    assert all(published["runs"][k] == v for k, v in rec["runs"].items())


def test_demo_job_runs_its_short_schedule_end_to_end(tiny_demo, tmp_path):
    from udaseg.apps import pipeline

    lines = []
    out = pipeline.run_demo(tiny_demo, tmp_path, overrides=["train.iters=2", *TINY], report=False, progress=False,
                            log=lines.append)
    assert set(out["results"]) == {"source_only", "bn_control", "fgd_ent"}
    n1, n2 = pipeline.DEMO_ITERS
    assert any(f"the demo schedule: {n1} + {n2} iterations" in line for line in lines)
    assert any(line.startswith("fgd_ent over the BN-only control") for line in lines)
    cfg = yaml.safe_load((tmp_path / "fgd_ent" / "config.yaml").read_text())
    assert cfg["train"]["iters"] == 2 and cfg["train"]["init_from"].endswith("source_only/checkpoints/last.pt")


def test_ddp_noise_benchmark_tiny():
    """One method, float64, 1 iteration: both LR modes print a row; 1 and 2 processes agree to
    float64 rounding at the first iteration (the same weights: no compounding yet)."""
    out = subprocess.run([sys.executable, "benchmarks/ddp_noise.py", "--methods", "source_only", "--dtypes", "float64",
                          "--iters", "1"], cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| source_only | float64 |")]
    assert len(rows) == 2, out.stdout
    for row in rows:
        assert float(row.split("|")[4]) < 1e-12, row


def test_the_transformer_smoke_row_config_trains_and_evaluates_on_the_embedded_benchmark(tiny_demo, tmp_path):
    """configs/demo/daformer.yaml (BENCHMARKS.md: the transformer path's smoke row): MiT-B0 + DAFormer
    head with self-training and rare-class sampling, through the demo's loaders, trainer and evaluator."""
    from udaseg.apps.ablation import evaluate_checkpoint
    from udaseg.apps.pipeline import demo_config
    from udaseg.engine.stages import run_training

    cfg = demo_config("daformer", tiny_demo, 0, ["train.iters=2", "train.warmup_iters=1", "data.source.rcs.min_pixels=1",
                                                *TINY])  # min_pixels: the tiny images have few pixels of any class
    assert (cfg["model"]["arch"], cfg["self_training"]["enabled"], cfg["data"]["source"]["rcs"]["enabled"]) == (
        "daformer_mitb0", True, True)
    last = run_training(cfg, tmp_path / "run", progress=False)["main"]["last"]
    result = evaluate_checkpoint(last, cfg)
    assert len(result["iou"]) == 19 and 0.0 <= result["miou"] <= 1.0
    assert sum(result["predicted_fractions"]) == pytest.approx(1.0)


def test_backbone_drift_separates_a_shrink_from_learning(tmp_path):
    """Hand-computed: a pure shrink by 0.8 has cosine 1 and relative change 0.2; a weight turned by
    90° at equal norm has cosine 0 and relative change √2; a checkpoint's backbone.* is read."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("backbone_drift", REPO / "benchmarks" / "backbone_drift.py")
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    init = {"conv1.weight": torch.tensor([3.0, 4.0]).view(2, 1, 1, 1),
            "layer1.0.conv1.weight": torch.tensor([1.0, 0.0]).view(2, 1, 1, 1),
            "layer1.0.bn1.weight": torch.ones(2)}  # not a convolution: left out
    tuned = {"conv1.weight": 0.8 * init["conv1.weight"],
             "layer1.0.conv1.weight": torch.tensor([0.0, 1.0]).view(2, 1, 1, 1),
             "layer1.0.bn1.weight": torch.full((2,), 5.0)}
    torch.save({"segmentor": {f"backbone.{k}": v for k, v in tuned.items()} | {"classifier.w": torch.ones(1)}},
               tmp_path / "last.pt")
    read = drift.backbone_weights(tmp_path / "last.pt")
    assert set(read) == set(tuned)
    assert drift.stage_drift(init, read, "conv1") == pytest.approx((0.2, 0.8, 1.0))
    assert drift.stage_drift(init, read, "layer1") == pytest.approx((2 ** 0.5, 1.0, 0.0), abs=1e-12)
    with pytest.raises(KeyError, match="stage 'layer2': no convolution weights"):
        drift.stage_drift(init, read, "layer2")


def test_backbone_of_writes_a_checkpoints_backbone_as_an_init(tmp_path, monkeypatch):
    """The file written holds exactly the checkpoint's backbone.* tensors, prefix dropped, and
    loads into the torchvision-layout ResNet-18 of deeplabv2_resnet18_tv; a checkpoint without
    a ResNet backbone is refused, naming it, and nothing is written."""
    import importlib.util
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("backbone_of", REPO / "benchmarks" / "backbone_of.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from udaseg.models import build_segmentor
    from udaseg.models.deeplabv2 import load_pretrained
    model = build_segmentor("deeplabv2_resnet18_tv", 19)
    seg = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"segmentor": seg}, tmp_path / "last.pt")
    n = tool.write_backbone(tmp_path / "last.pt", tmp_path / "out" / "bb.pth")
    written = torch.load(tmp_path / "out" / "bb.pth", weights_only=True)
    expected = {k[len("backbone."):]: v for k, v in seg.items() if k.startswith("backbone.")}
    assert n == len(written) == len(expected) and set(written) == set(expected)
    assert all(torch.equal(written[k], expected[k]) for k in expected)
    fresh = build_segmentor("deeplabv2_resnet18_tv", 19)
    load_pretrained(fresh, tmp_path / "out" / "bb.pth", layout="torchvision")
    assert all(torch.equal(v, seg[k]) for k, v in fresh.state_dict().items() if k.startswith("backbone."))
    torch.save({"segmentor": {"classifier.w": torch.ones(1)}}, tmp_path / "heads.pt")
    with pytest.raises(KeyError, match="heads.pt: no ResNet backbone"):
        tool.write_backbone(tmp_path / "heads.pt", tmp_path / "none.pth")
    assert not (tmp_path / "none.pth").exists()
