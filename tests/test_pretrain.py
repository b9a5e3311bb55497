"""``udaseg pretrain`` and the shipped ``demo_resnet18`` weights."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from udaseg.apps.cli import main
from udaseg.apps.pretrain import RECIPE, build_classifier, lr_at, make_optimizer, parse_settings, pretrain
from udaseg.models import build_segmentor, load_pretrained, resolve_pretrained
from udaseg.models import weights as W
from udaseg.models.deeplabv2 import sha256sum

TINY = ["arch=resnet18", "iters=4", "batch_size=8", "size=32", "warmup_iters=1", "heldout_images=16", "amp=none",
        "workers=0", "checkpoint_every=2", "log_every=1", "eval_every=1000"]


def torchvision_resnet18_keys() -> set[str]:
    """torchvision.models.resnet18().state_dict() keys, written out from its definition."""
    def bn(prefix):
        return {f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}

    keys = {"conv1.weight", "fc.weight", "fc.bias"} | bn("bn1")
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            keys |= {f"{p}.conv1.weight", f"{p}.conv2.weight"} | bn(f"{p}.bn1") | bn(f"{p}.bn2")
        if layer > 1:
            keys |= {f"layer{layer}.0.downsample.0.weight"} | bn(f"layer{layer}.0.downsample.1")
    return keys


def test_lr_warms_up_linearly_then_decays_by_cosine_to_zero():
    s = {**RECIPE, "lr": 0.1, "warmup_iters": 10, "iters": 110}
    assert lr_at(0, s) == pytest.approx(0.01)
    assert lr_at(9, s) == pytest.approx(0.1)
    assert lr_at(10, s) == pytest.approx(0.1)
    assert lr_at(60, s) == pytest.approx(0.05)  # half-way through the cosine
    assert lr_at(109, s) == pytest.approx(0.05 * (1 + math.cos(math.pi * 99 / 100)))


def test_settings_are_checked_by_name_type_and_range():
    assert parse_settings(["iters=700", "lr=0.5"])["iters"] == 700
    with pytest.raises(ValueError, match="unknown pretrain setting 'itres'"):
        parse_settings(["itres=7"])
    with pytest.raises(ValueError, match="iters='x' is not a valid int"):
        parse_settings(["iters=x"])
    with pytest.raises(ValueError, match="warmup_iters=9 must lie in"):
        parse_settings(["iters=5", "warmup_iters=9"])
    with pytest.raises(ValueError, match="arch='resnet33': expected one of resnet18, resnet50, resnet101, mit_b0"):
        parse_settings(["arch=resnet33"])
    with pytest.raises(ValueError, match=r"unknown pretrain setting 'depth' \(depth=50 is now arch=resnet50\)"):
        parse_settings(["depth=50"])
    with pytest.raises(ValueError, match="optimizer='adam': expected 'sgd' or 'adamw'"):
        parse_settings(["optimizer=adam"])
    with pytest.raises(ValueError, match=r"min_object_scale=0.0: the smallest object's share .* in \(0, 1\]"):
        parse_settings(["min_object_scale=0"])
    assert parse_settings(["min_object_scale=0.15"])["min_object_scale"] == 0.15
    with pytest.raises(ValueError, match="street_objects='photos': expected one of drawn, world"):
        parse_settings(["street_objects=photos"])
    assert parse_settings([])["street_objects"] == "drawn"


def test_a_mit_run_starts_from_deits_recipe_and_keeps_what_is_given():
    s = parse_settings(["arch=mit_b0"])
    assert (s["optimizer"], s["lr"], s["weight_decay"]) == ("adamw", 1.25e-4, 0.05)  # 5e-4 per 512 images, at 128
    assert parse_settings(["lr=3e-4", "arch=mit_b1"])["lr"] == 3e-4
    assert parse_settings([])["optimizer"] == "sgd"


def test_adamw_leaves_biases_and_norms_undecayed():
    model = build_classifier("mit_b0", 128)
    decay, no_decay = make_optimizer(model, parse_settings(["arch=mit_b0"])).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    named = dict(model.named_parameters())
    undecayed = {n for n, p in named.items() if any(p is q for q in no_decay["params"])}
    assert "backbone.norm4.weight" in undecayed and "head.bias" in undecayed
    assert "backbone.block1.0.attn.q.weight" not in undecayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(named)


class _Kill(Exception):
    pass


def _killer(at_iter: int):
    def log(line: str) -> None:
        if line.startswith("{") and json.loads(line)["iter"] == at_iter:
            raise _Kill  # after iteration 3's step, before its checkpoint: the last one is iteration 2's
    return log


def test_a_killed_pretraining_resumes_exactly(tmp_path):
    s = parse_settings(TINY)
    straight = pretrain(tmp_path / "a", s, log=lambda line: None)
    with pytest.raises(_Kill):
        pretrain(tmp_path / "b", s, log=_killer(3))
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["iteration"] == 2
    with pytest.raises(ValueError, match="already holds a pretraining run"):
        pretrain(tmp_path / "b", s, log=lambda line: None)
    with pytest.raises(ValueError, match=r"different recipe \(lr: 0.1 -> 0.2\)"):
        pretrain(tmp_path / "b", {**s, "lr": 0.2}, resume=True, log=lambda line: None)
    resumed = pretrain(tmp_path / "b", s, resume=True, log=lambda line: None)
    a = torch.load(tmp_path / "a" / "resnet18.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "resnet18.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["heldout"] == straight["heldout"]

    def losses(run):
        return [(r["iter"], r["loss"]) for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())]
    assert losses("a") == losses("b") and [i for i, _ in losses("b")] == [1, 2, 3, 4]


def test_the_weights_are_torchvision_resnet18_and_initialise_the_segmentor(tmp_path):
    summary = pretrain(tmp_path, parse_settings(TINY), log=lambda line: None)
    full = torch.load(tmp_path / "resnet18.pth", weights_only=True)
    assert set(full) == torchvision_resnet18_keys() and full["fc.weight"].shape == (128, 512)
    assert summary["files"]["resnet18_fp16.pth"] == sha256sum(tmp_path / "resnet18_fp16.pth")
    assert 0 <= summary["heldout"]["top1"] <= summary["heldout"]["top5"] <= 100

    model = build_segmentor("deeplabv2_resnet18_tv", 19, pretrained=tmp_path / "resnet18_fp16.pth")
    report = model.init_report
    assert report.layout == "torchvision" and sorted(report.skipped) == ["fc.bias", "fc.weight"]
    assert not report.unexpected and all(k.startswith(("classifier.", "aux_classifier.")) for k in report.missing)
    own = model.state_dict()
    for key, value in full.items():  # the float16 copy is the float32 weights rounded to float16
        if not key.startswith("fc."):
            assert torch.equal(own["backbone." + key], value.half().to(value.dtype) if value.is_floating_point() else value)


def test_weights_of_another_depth_are_refused_naming_the_first_mismatching_key(tmp_path):
    pretrain(tmp_path, parse_settings(TINY), log=lambda line: None)
    with pytest.raises(ValueError) as err:
        load_pretrained(build_segmentor("deeplabv2_resnet50_tv", 19), tmp_path / "resnet18.pth")
    message = str(err.value)
    assert str(tmp_path / "resnet18.pth") in message
    # conv1 and bn1 have the same shapes in R18 and R50; the first block's first conv is listed first
    assert "23 tensors: layer1.0.conv1.weight: file (64, 64, 3, 3) vs model (64, 64, 1, 1);" in message


def test_a_run_file_written_before_mit_resumes(tmp_path):
    """Runs started before the arch / optimizer / min_object_scale / street_objects keys recorded
    depth=18, no optimizer (SGD), no object scale (0.45) and no street objects (drawn)."""
    s = parse_settings(TINY)
    with pytest.raises(_Kill):
        pretrain(tmp_path, s, log=_killer(3))
    old = json.loads((tmp_path / "pretrain.json").read_text())
    del old["arch"], old["optimizer"], old["min_object_scale"], old["street_objects"]
    (tmp_path / "pretrain.json").write_text(json.dumps({**old, "depth": 18}))
    pretrain(tmp_path, s, resume=True, log=lambda line: None)
    assert json.loads((tmp_path / "pretrain.json").read_text())["arch"] == "resnet18"
    assert (tmp_path / "resnet18.pth").is_file()


def test_a_mit_pretraining_writes_the_nvlabs_layout_that_loads_strictly_into_daformer(tmp_path):
    tiny = [t for t in TINY if not t.startswith("arch=")] + ["arch=mit_b0"]
    summary = pretrain(tmp_path, parse_settings(tiny), log=lambda line: None)
    assert set(summary["files"]) == {"mit_b0.pth", "mit_b0_fp16.pth"}
    full = torch.load(tmp_path / "mit_b0.pth", weights_only=True)
    assert full["head.weight"].shape == (128, 256) and full["patch_embed1.proj.weight"].shape == (32, 3, 7, 7)
    model = build_segmentor("daformer_mitb0", 19, pretrained=tmp_path / "mit_b0_fp16.pth")
    report = model.init_report
    assert report.layout == "mit" and report.skipped == ["head.bias", "head.weight"]
    own = model.state_dict()
    assert len(report.loaded) == len(full) - 2
    for key, value in full.items():
        if not key.startswith("head."):
            assert torch.equal(own["backbone." + key], value.half().to(value.dtype))


@pytest.mark.parametrize("name, sha256", [("demo_resnet18", W.DEMO_RESNET18_SHA256),
                                          ("demo_resnet18_world", W.DEMO_RESNET18_WORLD_SHA256)])
def test_the_shipped_weights_verify_and_load(name, sha256):
    path = resolve_pretrained(name, "deeplabv2_resnet18_tv", input_norm="imagenet")
    assert path.is_file() and path.name == f"{name}.pth" and sha256sum(path) == sha256
    sd = torch.load(path, weights_only=True)
    assert set(sd) == torchvision_resnet18_keys() and sd["conv1.weight"].dtype == torch.float16
    assert sd["fc.weight"].shape == (128, 512)  # the pretraining set's 128 categories
    model = build_segmentor("deeplabv2_resnet18_tv", 19, pretrained=name, input_norm="imagenet")
    assert len(model.init_report.loaded) == len(sd) - 2  # everything but fc.*
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], sd["layer4.1.conv2.weight"].float())
    with pytest.raises(ValueError, match="fit arch deeplabv2_resnet18_tv, not 'deeplabv2_resnet18'"):
        build_segmentor("deeplabv2_resnet18", 19, pretrained=name)


def test_the_two_shipped_weights_differ():
    """demo_resnet18_world is another pretraining (street_objects=world), not a copy."""
    a, b = (torch.load(resolve_pretrained(n, "deeplabv2_resnet18_tv"), weights_only=True)
            for n in ("demo_resnet18", "demo_resnet18_world"))
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])


def test_missing_or_altered_packaged_weights_say_how_to_rebuild(monkeypatch):
    spec = W.PRETRAINED_WEIGHTS["demo_resnet18"]
    monkeypatch.setitem(W.PRETRAINED_WEIGHTS, "demo_resnet18", W.PretrainedWeights(
        **{**spec.__dict__, "packaged": "models/pretrained/no_such_file.pth"}))
    with pytest.raises(FileNotFoundError, match=r"missing from this installation .*rebuild them with: udaseg pretrain --out"):
        resolve_pretrained("demo_resnet18", "deeplabv2_resnet18_tv")
    monkeypatch.setitem(W.PRETRAINED_WEIGHTS, "demo_resnet18", spec)
    with pytest.raises(W.WeightsChecksumError, match="rebuild the file with: udaseg pretrain"):
        resolve_pretrained("demo_resnet18", "deeplabv2_resnet18_tv", sha256="ab" * 32)


def test_the_command_line_refuses_a_bad_setting_in_one_line(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "x"), "lr=-1"]) == 2
    assert "pretrain setting lr=-1.0 must be a finite number >= 0" in capsys.readouterr().err


def test_sigterm_to_the_whole_job_saves_and_says_how_to_resume(tmp_path):
    """As a scheduler stops a job: SIGTERM to the command and its loader worker. The worker used to
    die of it and torch aborted the run with a traceback before anything was saved."""
    out = tmp_path / "run"
    argv = ["pretrain", "--out", str(out), "iters=2000", "batch_size=8", "size=32", "heldout_images=16",
            "amp=none", "workers=1", "log_every=1", "checkpoint_every=1000"]
    proc = subprocess.Popen([sys.executable, "-m", "udaseg", *argv], cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # the process group: the command and its loader worker
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    it = torch.load(out / "checkpoint.pt", weights_only=True)["iteration"]
    assert 2 <= it < 2000
    assert f"interrupted by SIGTERM after iteration {it}" in err and "--resume" in err
    assert "Traceback" not in err


def test_a_world_pretraining_reports_the_world_objects_as_their_own_kind(tmp_path):
    """street_objects=world trains on the world-painted street categories; held-out accuracy is
    reported for them under their own kind (16 held-out images: labels 0–15, all world objects)."""
    summary = pretrain(tmp_path, parse_settings(TINY + ["street_objects=world"]), log=lambda line: None)
    assert summary["categories"] == 128 and summary["recipe"]["street_objects"] == "world"
    assert set(summary["heldout"]["top1_by_kind"]) == {"world"}
    assert json.loads((tmp_path / "pretrain.json").read_text())["street_objects"] == "world"
