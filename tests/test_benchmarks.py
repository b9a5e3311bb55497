"""Smoke tests: each benchmark script runs end to end on a tiny setting."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from udaseg.data.demo import write_demo

REPO = Path(__file__).resolve().parents[1]
# Subprocess timeouts only guard against a hang: on a loaded CI machine the suite once took 24 min
# instead of ~4, and the tiny ablation ran past a 600 s limit.
HANG = 1800


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    write_demo(root, seed=0, n_source=6, n_target_train=4, n_target_val=2, workers=1, progress=False, n_synthia=2)
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
                     "fgd_ent", "adabn"}
    assert len(results["runs"]) == 18
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


def test_gpu_check_runs_as_a_cpu_smoke():
    out = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--arch", "deeplabv2_resnet18",
                          "--source", "32x64", "--target", "32x64", "--iters", "1", "--warmup", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "images/s" in out.stdout


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


def test_saved_activations_benchmark_tiny():
    out = subprocess.run([sys.executable, "benchmarks/saved_activations.py", "--arch", "deeplabv2_resnet18",
                          "--meta", "gta5=128x64:19", "--cpu", "64x32"], cwd=REPO, capture_output=True, text=True,
                         timeout=HANG)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| gta5 | 128×64 | 19 | meta | fp32 |" in out.stdout and "bf16 autocast" in out.stdout
    import re  # the new layer's count on meta equals the real-tensor count exactly
    assert "new/old" in out.stdout and re.search(r"; new [\d,]+ vs [\d,]+ \(Δ \+0\)", out.stdout), out.stdout
