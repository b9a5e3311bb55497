"""Confidence statistics (entropy, confident share and precision) and the script that reports them."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from shared_runs import tiny_runs
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.confidence import ConfidenceStats
from udaseg.engine.eval_checkpoints import evaluate_state, evaluation_config

REPO = Path(__file__).resolve().parents[1]


def _probs(pairs):
    """(1, 2, 1, P) probabilities from P values of class 0."""
    p0 = torch.tensor(pairs, dtype=torch.float32)
    return torch.stack([p0, 1 - p0]).view(1, 2, 1, -1)


def _h2(p):  # normalised binary entropy, written out independently of udaseg.losses
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)


def test_hand_computed_pixels():
    # A: (0.95, 0.05) label 0 -> class 0, confident, right; B: (0.6, 0.4) label 1 -> class 0, wrong;
    # C: (0.2, 0.8) label 1 -> class 1, right but not confident; D: ignored.
    s = ConfidenceStats(2, tau=0.9)
    s.update(_probs([0.95, 0.6, 0.2, 0.99]), torch.tensor([[[0, 1, 1, 255]]]))
    r = s.summary(["a", "b"])
    assert r["pixels"] == 3
    assert r["mean_entropy"] == pytest.approx((_h2(0.95) + _h2(0.6) + _h2(0.2)) / 3, abs=1e-6)
    assert r["confident_share"] == pytest.approx(1 / 3) and r["accuracy"] == pytest.approx(2 / 3)
    assert r["confident_accuracy"] == 1.0
    a, b = r["per_class"]["a"], r["per_class"]["b"]
    assert (a["predicted_share"], a["confident_share"], a["precision"], a["confident_precision"]) == \
        pytest.approx((2 / 3, 1 / 2, 1 / 2, 1.0))
    assert (b["predicted_share"], b["confident_share"], b["precision"]) == pytest.approx((1 / 3, 0.0, 1.0))
    assert math.isnan(b["confident_precision"])  # no confident pixel of class b
    # τ is inclusive (the references' max_probs.ge(τ)): a top probability of exactly τ counts
    t = ConfidenceStats(2, tau=0.75)
    t.update(_probs([0.75]), torch.tensor([[[0]]]))
    assert t.summary()["confident_share"] == 1.0


def test_batches_accumulate_like_one_batch():
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(4, 5, 6, 7, generator=g).softmax(1)
    labels = torch.randint(0, 5, (4, 6, 7), generator=g)
    labels[0, :2] = 255
    whole, parts = ConfidenceStats(5, tau=0.5), ConfidenceStats(5, tau=0.5)
    whole.update(probs, labels)
    for i in range(4):
        parts.update(probs[i:i + 1], labels[i:i + 1])
    assert torch.equal(whole.counts, parts.counts)
    assert parts.summary()["mean_entropy"] == pytest.approx(whole.summary()["mean_entropy"], rel=1e-12)
    shares = [c["predicted_share"] for c in whole.summary()["per_class"].values()]
    assert sum(shares) == pytest.approx(1.0) and whole.summary()["pixels"] == 4 * 6 * 7 - 14


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="tau must be in"):
        ConfidenceStats(3, tau=0)
    s = ConfidenceStats(3)
    with pytest.raises(ValueError, match=r"probs must be \(N, 3, H, W\)"):
        s.update(torch.rand(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="differ in size"):
        s.update(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="no labelled pixels"):
        s.summary()


def test_script_agrees_with_the_evaluator(tmp_path_factory, tmp_path):
    spec = importlib.util.spec_from_file_location("confidence_script", REPO / "benchmarks" / "confidence.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run = tiny_runs(tmp_path_factory)["fgd_ent"]
    ckpt = run / "checkpoints" / "last.pt"
    out = tmp_path / "conf.json"
    script.main([f"paper={run}", "--split", "val", "--tau", "0.5", "--json", str(out), "--classes", "road,car"])
    row = json.loads(out.read_text())["paper"]
    state = load_checkpoint(ckpt)
    result, _, _ = evaluate_state(state, evaluation_config(state, ckpt), ckpt, flip=False, scales=[1.0])
    assert row["miou"] == pytest.approx(result.miou["mIoU19"], nan_ok=True)
    assert row["pixel_accuracy"] == pytest.approx(result.pixel_accuracy)
    assert [row["per_class"][c]["predicted_share"] for c in ("road", "car")] == \
        pytest.approx([result.predicted_fractions[0], result.predicted_fractions[13]])
    assert row["tau"] == 0.5 and 0 <= row["mean_entropy"] <= 1
    with pytest.raises(SystemExit, match="unknown class"):
        script.main([str(run), "--split", "val", "--classes", "roads"])
    with pytest.raises(SystemExit, match="no checkpoint at"):
        script.main([str(tmp_path / "nowhere")])
    # a 19-class model scored in 16 classes: the stats (model classes) and labels (16) would not match
    state["config"].setdefault("eval", {})["num_classes"] = 16
    mapped = tmp_path / "mapped.pt"
    torch.save(state, mapped)
    with pytest.raises(SystemExit, match="evaluated in 16 classes, not its model's 19"):
        script.main([str(mapped), "--split", "val"])
