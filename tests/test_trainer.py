"""The trainer: exact resume (in process and after a real SIGKILL), the two stages, LR schedule,
the BN-only control and the oracle flag (DDP: tests/test_ddp.py)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fixtures import tiny_benchmark, tiny_config
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.stages import run_training, stage_configs
from udaseg.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def single_thread():
    """Exact-equality tests run torch on one intra-op thread. With two threads on a loaded 2-core
    machine, one thread's half of a discriminator's Adam update was seen to come out ~1e-4
    relative off in about 1 fresh process in 15 (identical inputs, checked), and these tiny
    runs amplify 1 ulp into O(1) weight differences within 30 iterations. Resume exactness is
    under test here, not the platform's thread determinism."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # for subprocesses
    torch.set_num_threads(before)


def _assert_same_state(a: dict, b: dict):
    for key in ("segmentor", "discriminators"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for key in ("opt_g", "opt_d"):
        sa, sb = a[key]["state"], b[key]["state"]
        assert sa.keys() == sb.keys()
        for p in sa:
            for k in sa[p]:
                assert torch.equal(torch.as_tensor(sa[p][k]), torch.as_tensor(sb[p][k])), f"{key} state {p}.{k} differs"
    assert a["iteration"] == b["iteration"]


@pytest.mark.parametrize("optimizer", [[], ["train.optimizer=adamw", "train.lr=0.001", "train.weight_decay=0.01"]],
                         ids=["sgd", "adamw"])
def test_exact_resume_after_interruption(bench, tmp_path, single_thread, optimizer):
    """SGD (the paper configs) and AdamW (the demo and DACS configs): Adam's moments and step
    counts are part of the checkpoint, so the resumed run is the uninterrupted one bit for bit."""
    cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=6", "train.checkpoint_every=2", "train.val_every=0",
                              *optimizer])
    full = Trainer(cfg, tmp_path / "full", progress=False).train()
    # "kill" after iteration 5: the last checkpoint is iteration 4, iteration 5 is lost
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=5)
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["iteration"] == 4
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.start_iter == 4
    resumed.train()
    a, b = load_checkpoint(full["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    _assert_same_state(a, b)
    if optimizer:
        assert all("exp_avg_sq" in st and int(st["step"]) == 6 for st in a["opt_g"]["state"].values())
    # the resumed run's metrics hold each iteration once
    iters = [json.loads(line)["iter"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3, 4, 5, 6]


def test_train_after_stop_at_continues_where_it_paused(bench, tmp_path, single_thread):
    """train(stop_at=k) then train() in the same process is the uninterrupted run (gpu_check's
    untimed warm-up, then the timed part), with the validation, checkpoint and snapshot of
    iteration k that stopping skipped (as a kill would) run when training continues."""
    cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=4", "train.checkpoint_every=2", "train.val_every=2",
                              "train.keep_every=2"])
    full = Trainer(cfg, tmp_path / "full", progress=False).train()
    t = Trainer(cfg, tmp_path / "paused", progress=False)
    assert t.train(stop_at=2) == {"last": None, "iter": 2} and t.start_iter == 2
    ckpts = tmp_path / "paused" / "checkpoints"
    assert not ckpts.exists() or not list(ckpts.iterdir())  # stopped as a kill: nothing of iteration 2 yet
    paused = t.train()
    assert paused["iter"] == 4
    _assert_same_state(load_checkpoint(full["last"]), load_checkpoint(paused["last"]))

    def records(run):
        lines = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [(r["kind"], r["iter"], r.get("mIoU19")) for r in lines]

    assert records("paused") == records("full")
    assert [r[1] for r in records("full") if r[0] == "val"] == [2, 4]
    assert full["best"] is not None and paused["best"] is not None and paused["best_miou"] == full["best_miou"]
    assert load_checkpoint(paused["best"])["best"] == load_checkpoint(full["best"])["best"]
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(p.name for p in (tmp_path / "full" / "checkpoints").iterdir())


def test_resume_after_sigkill_matches_uninterrupted_run(bench, tmp_path, single_thread):
    """A real kill -9 of `udaseg train` at an arbitrary moment, then --resume."""
    # long enough that the kill lands well before the end however fast the machine is
    overrides = ["method.name=adaptsegnet", "train.iters=30", "train.checkpoint_every=3", "train.val_every=0",
                 "data.workers=1"]
    cfg = tiny_config(bench, overrides)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    # One intra-op thread in all three runs (see single_thread).
    env = single_thread
    cmd = [sys.executable, "-m", "udaseg", "train", str(cfg_path)]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--run-dir", str(killed)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and load_checkpoint(last)["iteration"] >= 3:
            break
        time.sleep(0.05)
    time.sleep(0.1)  # let it get into a later iteration (or a checkpoint write)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(last)["iteration"] < 30, "the run finished before it could be killed"
    resumed = subprocess.run([*cmd, "--run-dir", str(killed), "--resume"], cwd=REPO, env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref = subprocess.run([*cmd, "--run-dir", str(tmp_path / "ref")], cwd=REPO, env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    _assert_same_state(load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt"), load_checkpoint(last))
    assert not list((killed / "checkpoints").glob("*.tmp"))


def test_two_stages_source_only_then_adaptation(bench, tmp_path):
    cfg = tiny_config(bench, ["method.name=fada", "train.iters=2", "train.pretrain_iters=3", "train.val_every=0"])
    stages = stage_configs(cfg)
    assert [s for s, _ in stages] == ["source_only", ""]
    assert stages[0][1]["method"]["name"] == "source_only" and stages[0][1]["train"]["iters"] == 3
    results = run_training(cfg, tmp_path, progress=False)
    stage1 = load_checkpoint(results["source_only"]["last"])
    assert stage1["iteration"] == 3 and stage1["method"] == "source_only"
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["init_from"] == str(tmp_path / "source_only" / "checkpoints" / "last.pt")
    # the adaptation stage starts from the stage-1 weights
    stage2_cfg = dict(cfg, train={**cfg["train"], "init_from": meta["init_from"]})
    t = Trainer(stage2_cfg, tmp_path / "probe", progress=False)
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, stage1["segmentor"][k])
    # resume skips the finished stages
    again = run_training(cfg, tmp_path, resume=True, progress=False)
    assert again["source_only"].get("skipped") and again["main"].get("skipped")


def test_one_fine_grained_d_per_level_trains_both(bench, tmp_path):
    """method.lambda_adv_aux with d_input softmax: the second D is built, optimised and logged."""
    cfg = tiny_config(bench, ["method.name=fgd_ent", "method.d_input=softmax", "method.lambda_adv_aux=0.0002",
                              "train.iters=2", "train.val_every=0"])
    t = Trainer(cfg, tmp_path, progress=False)
    before = {k: v.clone() for k, v in t.discs.state_dict().items()}
    assert any(k.startswith("d_fine_aux.") for k in before) and any(k.startswith("d_fine.") for k in before)
    t.train()
    moved = {k.split(".")[0] for k, v in t.discs.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {"d_fine", "d_fine_aux"}
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("adv_fine_aux" in row for row in logged) and any("d_fine_aux_acc" in row for row in logged)


def test_poly_lr_with_10x_heads(bench, tmp_path):
    cfg = tiny_config(bench, ["method.name=fada", "train.iters=10", "train.lr=0.01", "train.lr_d=0.002"])
    t = Trainer(cfg, tmp_path, progress=False)
    lr = t.stepper.set_lr(5)
    assert lr == pytest.approx(0.01 * 0.5 ** 0.9)
    groups = {g["name"]: g["lr"] for g in t.opt_g.param_groups}
    assert groups == pytest.approx({"backbone": 0.01 * 0.5 ** 0.9, "head": 0.1 * 0.5 ** 0.9})
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(0.002 * 0.5 ** 0.9)


def test_bn_control_changes_only_bn_statistics(bench, tmp_path):
    """Same seed, same source stream: the target pass of the BN-only control moves the BN running
    statistics but, having no loss, leaves every weight as source-only training leaves it."""
    base = ["train.iters=2", "train.val_every=0"]
    so = Trainer(tiny_config(bench, ["method.name=source_only", *base]), tmp_path / "so", progress=False)
    bn = Trainer(tiny_config(bench, ["method.name=bn_control", *base]), tmp_path / "bn", progress=False)
    assert "target" not in so.loaders and "target" in bn.loaders
    so.train()
    bn.train()
    a, b = so.model.state_dict(), bn.model.state_dict()
    stats = [k for k in a if k.endswith("running_mean")]
    weights = [n for n, p in so.model.named_parameters()]
    assert all(torch.equal(a[k], b[k]) for k in weights)
    assert any(not torch.equal(a[k], b[k]) for k in stats)


def test_bn_control_under_frozen_bn_is_source_only_continued(bench, tmp_path, single_thread):
    """Frozen BN (v3's recipe) reads no target statistics: the control's target pass changes
    nothing, so its whole model state is source-only's, BN buffers included (the v3 ablation's
    seed 0 checkpoints of the two rows are equal tensor for tensor)."""
    base = ["train.iters=2", "train.val_every=0", "model.bn_mode=frozen"]
    so = Trainer(tiny_config(bench, ["method.name=source_only", *base]), tmp_path / "so", progress=False)
    bn = Trainer(tiny_config(bench, ["method.name=bn_control", *base]), tmp_path / "bn", progress=False)
    before = {k: v.clone() for k, v in so.model.state_dict().items()}
    so.train()
    bn.train()
    a, b = so.model.state_dict(), bn.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], before[k]) for k in a)  # it trained
    assert all(torch.equal(a[k], before[k]) for k in a if k.endswith(("running_mean", "running_var")))


def test_oracle_is_flagged(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["method.name=target_only", "train.iters=1", "train.val_every=0"]), tmp_path,
                progress=False)
    assert "source" not in t.loaders and t.loaders["target"].dataset.has_labels
    t.train()
    assert json.loads((tmp_path / "meta.json").read_text())["oracle_uses_target_labels"] is True
    assert "ORACLE" in (tmp_path / "train.log").read_text()


def test_validation_keeps_best_and_last(bench, tmp_path):
    cfg = tiny_config(bench, ["method.name=source_only", "train.iters=4", "train.val_every=2"])
    out = Trainer(cfg, tmp_path, progress=False).train()
    vals = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["kind"] == "val"]
    assert [v["iter"] for v in vals] == [2, 4]
    best = load_checkpoint(out["best"])
    assert best["best"]["miou"] == pytest.approx(max(v["mIoU19"] for v in vals))
    assert load_checkpoint(out["last"])["iteration"] == 4


def test_bad_init_checkpoint_class_count(bench, tmp_path):
    out = Trainer(tiny_config(bench, ["train.iters=1", "train.val_every=0"]), tmp_path / "a", progress=False).train()
    cfg = tiny_config(bench, ["train.iters=1", f"train.init_from={out['last']}", "model.num_classes=16",
                              "data.source.kind=synthia"])
    with pytest.raises(ValueError, match="19 classes; the config wants deeplabv2_resnet18 with 16"):
        Trainer(cfg, tmp_path / "b", progress=False)


# ---------------------------------------------------------------------------------------------
# bad input: non-finite loss, disk full, unwritable output, mismatched resume
# ---------------------------------------------------------------------------------------------

def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(bench, tmp_path):
    from udaseg.engine.trainer import NonFiniteLossError

    cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=6", "train.checkpoint_every=2", "train.val_every=0"])
    t = Trainer(cfg, tmp_path, progress=False)
    real = t.method.target_losses

    def poisoned(tgt, discs):  # the 4th iteration's entropy term becomes NaN
        terms = real(tgt, discs)
        if t._iter == 3:
            terms["ent"] = (terms["ent"][0], terms["ent"][1] * float("nan"))
        return terms

    t.method.target_losses = poisoned
    with pytest.raises(NonFiniteLossError, match=r"iteration 4: non-finite loss \(ent = nan\).*last good checkpoint is .*last\.pt"):
        t.train()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 2


def test_disk_full_during_checkpoint_keeps_the_previous_one(bench, tmp_path, monkeypatch):
    import errno

    import udaseg.engine.checkpoint as ck

    cfg = tiny_config(bench, ["train.iters=4", "train.checkpoint_every=2", "train.val_every=0"])
    Trainer(cfg, tmp_path, progress=False).train(stop_at=3)  # last.pt at iteration 2
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    t = Trainer(cfg, tmp_path, resume=True, progress=False)

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.pt at iteration 4 .*No space left.*previous last\.pt is intact"):
        t.train()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_unwritable_output_directory_is_named(bench, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match=r"output directory .*a_file/run is not writable"):
        Trainer(tiny_config(bench, ["train.iters=1"]), tmp_path / "a_file" / "run", progress=False)


def test_resume_with_another_class_count_is_refused(bench, tmp_path):
    Trainer(tiny_config(bench, ["train.iters=2", "train.checkpoint_every=1", "train.val_every=0"]), tmp_path,
            progress=False).train(stop_at=2)  # last.pt at iteration 1
    cfg16 = tiny_config(bench, ["train.iters=2", "model.num_classes=16", "data.source.kind=synthia",
                                "data.source.root=" + str(bench / "gta5")])
    with pytest.raises(ValueError, match="cannot resume from .*deeplabv2_resnet18 with 19 classes .* with 16 classes"):
        Trainer(cfg16, tmp_path, resume=True, progress=False)


def test_malloc_tuning_is_accepted_by_glibc():
    from udaseg.engine.memory import keep_freed_memory_mapped

    assert keep_freed_memory_mapped() is True  # glibc (this platform) takes all three settings


def test_snapshots_are_kept_and_evaluated_as_a_run(bench, tmp_path):
    from udaseg.engine.eval_checkpoints import evaluate_checkpoints

    cfg = tiny_config(bench, ["train.iters=4", "train.keep_every=2", "train.val_every=2"])
    Trainer(cfg, tmp_path, progress=False).train()
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert names == ["best.pt", "iter_000002.pt", "iter_000004.pt", "last.pt"]
    snap = load_checkpoint(tmp_path / "checkpoints" / "iter_000002.pt")
    assert snap["iteration"] == 2 and "opt_g" not in snap
    evals = evaluate_checkpoints([tmp_path])
    # one row per iteration: last (= iter_000004, maybe = best) and iteration 2 (maybe = best)
    assert sorted(e.iteration for e in evals) == [2, 4]
    rows = {e.iteration: e.ref.marks for e in evals}
    assert "last" in rows[4] and "iter_000004" in rows[4]
    assert next(e.ref.path.name for e in evals if e.iteration == 2) == "iter_000002.pt"
    assert sum("best" in m for m in rows.values()) == 1


def test_prediction_images_of_both_domains(bench, tmp_path):
    from udaseg.engine.run_logger import prediction_images

    t = Trainer(tiny_config(bench, ["method.name=fgd_ent", "train.iters=1", "train.val_every=0", "train.image_every=1"]),
                tmp_path, progress=False)
    t.train()
    batches, src, tgt = t.stepper.last
    images = prediction_images(batches, {"source": src, "target": tgt}, 19)
    assert sorted(images) == sorted(f"{d}/{k}" for d in ("source", "target") for k in ("image", "prediction", "entropy"))
    assert all(v.shape == (32, 64, 3) and v.dtype.name == "uint8" for v in images.values())
    assert list((tmp_path / "tb").glob("events.*"))


def test_a_finished_trainer_is_freed_without_the_garbage_collector(bench, tmp_path):
    """No reference cycle keeps a trainer (and its persistent loader workers) alive after its last
    reference goes: with one, `udaseg train` hung at exit joining the workers."""
    import gc
    import weakref

    t = Trainer(tiny_config(bench, ["train.iters=1", "train.val_every=0", "data.workers=1"]), tmp_path, progress=False)
    t.train()
    ref = weakref.ref(t)
    gc.disable()
    try:
        del t
        assert ref() is None
    finally:
        gc.enable()


def test_cat_max_ratio_on_an_unlabelled_target_is_refused_and_works_where_labels_are_read(bench, tmp_path):
    """DAFormer's pipeline picks target crops with the target's ground truth; an adaptation run
    here must not read it, so the key is refused there — and honoured where target labels are the
    training data (the oracle)."""
    from udaseg.config import ConfigError

    crop = ["data.target.transforms.crop=[32,16]", "data.target.transforms.cat_max_ratio=0.75",
            "train.iters=1", "train.val_every=0"]
    with pytest.raises(ConfigError, match=r"'data.target.transforms.cat_max_ratio' chooses crops by their labels, "
                                          r"but minent trains on unlabelled target images"):
        Trainer(tiny_config(bench, ["method.name=minent", *crop]), tmp_path / "a", progress=False)
    out = Trainer(tiny_config(bench, ["method.name=target_only", *crop]), tmp_path / "b", progress=False).train()
    assert out["iter"] == 1
