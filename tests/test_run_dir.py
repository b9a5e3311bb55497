"""Nothing lost, nothing silent (issue 13): a run directory is never overwritten or mixed by
accident, resume refuses a changed config, failures name only checkpoints worth resuming, and
bad values or loader-worker errors give one clear line."""
import json
import re

import pytest
import torch

from fixtures import tiny_benchmark, tiny_config
from udaseg.config import ConfigError, load_config
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.run_dir import RunDirError, config_changes
from udaseg.engine.trainer import NonFiniteLossError, Trainer

TINY = ["train.iters=3", "train.val_every=0", "train.checkpoint_every=1"]  # stop_at=2: last.pt at 1


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


def test_a_fresh_run_into_a_finished_run_is_refused_and_overwrite_starts_again(bench, tmp_path):
    cfg = tiny_config(bench, TINY)
    Trainer(cfg, tmp_path, progress=False).train()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(RunDirError, match=r"already holds a run .*--resume to continue it, --overwrite"):
        Trainer(cfg, tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    Trainer(cfg, tmp_path, progress=False, overwrite=True).train(stop_at=2)
    iters = [json.loads(line)["iter"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert iters == [1, 2]  # the old run's records are gone, not mixed in
    assert "--overwrite: deleted the run" in (tmp_path / "train.log").read_text()


def test_resume_with_a_changed_lr_or_seed_is_refused_naming_the_keys(bench, tmp_path):
    Trainer(tiny_config(bench, TINY), tmp_path, progress=False).train(stop_at=2)
    config_before = (tmp_path / "config.yaml").read_text()
    changed = tiny_config(bench, [*TINY, "train.lr=0.02", "seed=3"])
    with pytest.raises(RunDirError, match=r"seed: 0 -> 3; train.lr: 0.01 -> 0.02 .*--allow-config-change"):
        Trainer(changed, tmp_path, resume=True, progress=False)
    assert (tmp_path / "config.yaml").read_text() == config_before  # nothing rewritten
    # keys that do not change the weights may change: logging, device, evaluation
    Trainer(tiny_config(bench, [*TINY, "train.log_every=5", "eval.flip=true"]), tmp_path, resume=True,
            progress=False)
    # allowed explicitly: continues, and the history says what changed
    Trainer(changed, tmp_path, resume=True, progress=False, allow_config_change=True).train()
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert history[-1]["event"] == "resume" and history[-1]["iteration"] == 1
    assert history[-1]["config_changes"] == {"seed": [0, 3], "train.lr": [0.01, 0.02]}


def test_config_changes_count_auto_as_what_it_resolved_to_and_new_keys_as_defaults():
    old = load_config(None, ["model.aspp_impl=taps"])
    del old["train"]["optimizer"]  # a checkpoint from before the key existed: it ran SGD
    new = load_config(None)  # aspp_impl auto, optimizer sgd
    assert config_changes(old, new, {}, {"aspp_impl": "taps"}) == {}
    assert config_changes(old, new, {}, {"aspp_impl": "dilated_conv"}) == {"model.aspp_impl": ("taps", "dilated_conv")}
    assert config_changes(old, load_config(None, ["train.optimizer=adamw"]), {}, {"aspp_impl": "taps"}) == {
        "train.optimizer": ("sgd", "adamw")}


def test_a_method_key_added_later_with_a_neutral_default_changes_nothing():
    """A FADA run from before ``method.lambda_adv_aux`` existed (its config lacks the key): resume
    sees no change, its stored study digest still matches, and setting the key is a change."""
    from udaseg.engine.run_dir import config_digest, digest_matches, legacy_config_digest

    new = load_config("configs/demo/fada.yaml")
    assert new["method"]["lambda_adv_aux"] == 0.0
    old = load_config("configs/demo/fada.yaml")
    del old["method"]["lambda_adv_aux"]
    assert config_changes(old, new) == {}
    assert config_digest(old) == config_digest(new)
    assert legacy_config_digest(old) != legacy_config_digest(new)  # why digests leave defaults out
    assert digest_matches(legacy_config_digest(new), new) and digest_matches(config_digest(new), new)
    set_aux = load_config("configs/demo/fada.yaml", ["method.d_input=softmax", "method.lambda_adv_aux=0.0002"])
    assert config_changes(old, set_aux) == {"method.d_input": ("features", "softmax"),
                                            "method.lambda_adv_aux": (0.0, 0.0002)}
    assert not digest_matches(config_digest(new), set_aux) and not digest_matches(None, new)
    # a method's own default, not another method's: minent has no lambda_adv_aux at all
    assert "lambda_adv_aux" not in load_config("configs/demo/minent.yaml")["method"]


def test_teacher_bn_in_digests_and_resume_is_its_behaviour():
    """Results and checkpoints from before ``self_training.teacher_bn`` existed ran an eval-mode
    teacher: a config whose teacher is eval-mode (frozen BN's ``auto``, an explicit ``eval``, or no
    self-training at all) is theirs; a batch-statistics teacher is a change, named as one."""
    from udaseg.engine.run_dir import config_digest, digest_matches, legacy_config_digest

    def before(path, overrides=()):  # the same config as stored before the key existed
        cfg = load_config(path, list(overrides))
        del cfg["self_training"]["teacher_bn"]
        return cfg

    for path in ("configs/demo_scratch/fada.yaml", "configs/gta5_cityscapes/dacs.yaml"):  # no ST / frozen BN: auto = eval
        old, new = before(path), load_config(path)
        assert digest_matches(legacy_config_digest(old), new) and digest_matches(config_digest(old), new)
        assert config_changes(old, new) == {}
    st = ["self_training.enabled=true"]  # demo_scratch's trainable BN: auto = batch, not what ran before
    old = before("configs/demo_scratch/fada.yaml", st)
    for value, same in (("eval", True), ("auto", False), ("batch", False)):
        new = load_config("configs/demo_scratch/fada.yaml", [*st, f"self_training.teacher_bn={value}"])
        assert digest_matches(legacy_config_digest(old), new) is same
        assert digest_matches(config_digest(old), new) is same
        assert config_changes(old, new) == ({} if same else {"self_training.teacher_bn": ("eval", "batch")})
    # an explicit batch and the auto that resolves to it are one config
    auto = load_config("configs/demo_scratch/fada.yaml", st)
    batch = load_config("configs/demo_scratch/fada.yaml", [*st, "self_training.teacher_bn=batch"])
    assert config_digest(auto) == config_digest(batch) and config_changes(auto, batch) == {}


def test_resume_without_a_checkpoint_says_so(bench, tmp_path, capsys):
    t = Trainer(tiny_config(bench, TINY), tmp_path, resume=True, progress=False)
    assert t.start_iter == 0
    assert "--resume: no checkpoint at" in capsys.readouterr().err
    assert "starting from iteration 0" in (tmp_path / "train.log").read_text()


def test_orphan_temp_files_of_an_interrupted_write_are_removed_at_start(bench, tmp_path):
    Trainer(tiny_config(bench, TINY), tmp_path, progress=False).train(stop_at=2)
    orphan = tmp_path / "checkpoints" / ".last.pt.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    Trainer(tiny_config(bench, TINY), tmp_path, resume=True, progress=False)
    assert not orphan.exists()
    assert "removed 1 temp file(s) of an interrupted write: .last.pt.abc123.tmp" in (tmp_path / "train.log").read_text()


def test_resume_with_another_validate_on_starts_a_new_best(bench, tmp_path):
    """validate_on is resume-safe, but a dev mIoU is not compared with the val best."""
    val = ["train.iters=3", "train.val_every=1", "train.checkpoint_every=1"]
    Trainer(tiny_config(bench, val), tmp_path, progress=False).train(stop_at=2)  # last.pt at 1, after its val
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["best"]["split"] == "val" and state["best"]["iter"] == 1
    # a checkpoint from before the split was stored (so: val), whose val best no mIoU here reaches
    state["best"] = {"miou": 0.99, "iter": 1}
    torch.save(state, last)
    assert Trainer(tiny_config(bench, val), tmp_path, resume=True, progress=False).best == {
        "miou": 0.99, "iter": 1, "split": "val"}  # the same split keeps its best
    dev = [*val, "train.validate_on=dev", f"data.dev.root={bench}/cs", "data.dev.split=val",
           "data.dev.transforms={resize_image: [32, 16]}"]  # the val images stand in for a dev split
    t = Trainer(tiny_config(bench, dev), tmp_path, resume=True, progress=False)
    assert t.best == {"miou": -1.0, "iter": None, "split": "dev"}
    assert "train.validate_on changed from val to dev: the best checkpoint starts again (the val best was 99.00" \
        in (tmp_path / "train.log").read_text()
    out = t.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    dev_vals = [r for r in records if r["kind"] == "val" and r["split"] == "dev"]
    assert [r["iter"] for r in dev_vals] == [2, 3]
    best = max(dev_vals, key=lambda r: r["mIoU19"])
    assert t.best == {"miou": pytest.approx(best["mIoU19"]), "iter": best["iter"], "split": "dev"}
    assert load_checkpoint(out["best"])["best"]["split"] == "dev"


def test_a_missing_validation_split_fails_at_the_start_naming_its_folder(bench, tmp_path):
    from udaseg.data.io import DatasetError

    missing = tmp_path / "no_dev_here"
    over = ["train.iters=1", "train.checkpoint_every=0", "train.validate_on=dev", f"data.dev.root={missing}"]
    with pytest.raises(DatasetError, match=f"Cityscapes root: folder {re.escape(str(missing))} not found"):
        Trainer(tiny_config(bench, [*over, "train.val_every=1000"]), tmp_path / "a", progress=False)
    # a run that never validates needs no validation split
    Trainer(tiny_config(bench, [*over, "train.val_every=0"]), tmp_path / "b", progress=False)


def _poison_at(t, iteration):
    real = t.method.source_losses

    def poisoned(src):
        terms = real(src)
        if t._iter == iteration - 1:
            terms["seg"] = (terms["seg"][0], terms["seg"][1] * float("nan"))
        return terms

    t.method.source_losses = poisoned


def test_non_finite_loss_names_no_checkpoint_when_none_was_written(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["train.iters=3", "train.val_every=0", "train.checkpoint_every=0"]), tmp_path,
                progress=False)
    _poison_at(t, 2)
    with pytest.raises(NonFiniteLossError, match="iteration 2: non-finite loss .*no checkpoint was written before it"):
        t.train()


def test_non_finite_loss_does_not_call_exploded_weights_good(bench, tmp_path):
    cfg = tiny_config(bench, ["train.iters=4", "train.val_every=0", "train.checkpoint_every=1"])
    t = Trainer(cfg, tmp_path, progress=False)
    t.train(stop_at=2)  # last.pt at iteration 1
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    state["segmentor"]["classifier.branches.0.weight"] *= 1e30  # as after a step at lr=1e30
    torch.save(state, tmp_path / "checkpoints" / "last.pt")
    t2 = Trainer(cfg, tmp_path, resume=True, progress=False)
    _poison_at(t2, 3)
    with pytest.raises(NonFiniteLossError, match=r"iteration 2\) holds weights up to .*e\+\d\d: it had diverged"):
        t2.train()
    state["segmentor"]["classifier.branches.0.weight"][0, 0, 0, 0] = float("inf")
    torch.save(state, tmp_path / "checkpoints" / "last.pt")
    assert "holds non-finite weights: no good checkpoint" in t2.last_good_checkpoint()


def test_torch_save_write_failure_is_an_os_error_naming_the_file(bench, tmp_path, monkeypatch):
    import udaseg.engine.checkpoint as ck

    cfg = tiny_config(bench, ["train.iters=3", "train.checkpoint_every=1", "train.val_every=0"])
    Trainer(cfg, tmp_path, progress=False).train(stop_at=2)  # last.pt at iteration 1
    t = Trainer(cfg, tmp_path, resume=True, progress=False)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()

    def enospc(obj, f):  # what torch.save raises when the disk fills mid-write
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ck.torch, "save", enospc)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.pt at iteration 2 .*inline_container.*"
                                      r"is the disk full\?.*previous last\.pt is intact"):
        t.train()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


@pytest.mark.parametrize("override,message", [
    ("train.iters=0", "'train.iters' must be at least 1, got 0"),
    ("train.iters=-5", "'train.iters' must be at least 1, got -5"),
    ("data.batch_size=0", "'data.batch_size' must be at least 1, got 0"),
    ("eval.num_classes=abc", "'eval.num_classes' must be an integer (or null), got 'abc'"),
    ("train.lr=0", "'train.lr' must be greater than 0, got 0.0"),
    ("data.global_batch_size=x", "'data.global_batch_size' must be an integer (or null), got 'x'"),
])
def test_bad_values_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


@pytest.mark.parametrize("override,message", [
    ("train.amp=fp32", "config key 'train.amp' is 'fp32'; expected one of auto, none, bf16, fp16"),
    ("train.device=gpu", "train.device is 'gpu'; expected auto, cpu, cuda or cuda:N"),
])
def test_bad_device_settings_give_one_line(bench, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        Trainer(tiny_config(bench, ["train.iters=1", override]), tmp_path, progress=False)


def test_a_loader_worker_error_is_one_line_on_the_command_line(tmp_path, capsys):
    import yaml

    from udaseg.apps.cli import main

    bench = tiny_benchmark(tmp_path / "bench")
    bad = bench / "gta5" / "images" / "00002.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(bench, ["train.iters=4", "train.val_every=0", "data.workers=1",
                                                      "method.name=source_only", "data.batch_size=4"])))
    assert main(["train", str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "00002.png" in err[0] and "Traceback" not in err[0], err
    assert err[0].endswith("(in a DataLoader worker)")


def test_history_records_every_start_and_overwrite_removes_the_old_models_eval_files(bench, tmp_path):
    cfg = tiny_config(bench, TINY)
    Trainer(cfg, tmp_path, progress=False).train(stop_at=2)
    Trainer(cfg, tmp_path, resume=True, progress=False).train()
    events = [(r["event"], r["iteration"]) for r in map(json.loads, (tmp_path / "history.jsonl").read_text().splitlines())]
    assert events == [("start", 0), ("resume", 1)]
    for name in ("eval_val.json", "eval_val.csv", "eval_dev.json"):  # udaseg evaluate's results of this model
        (tmp_path / name).write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    Trainer(cfg, tmp_path, progress=False, overwrite=True)
    assert not list(tmp_path.glob("eval_*")) and (tmp_path / "notes.txt").read_text() == "mine"
    assert [json.loads(line)["event"] for line in (tmp_path / "history.jsonl").read_text().splitlines()] == ["start"]


def test_the_first_checkpoint_write_on_a_full_disk_claims_no_previous_checkpoint(bench, tmp_path, monkeypatch):
    import errno

    import udaseg.engine.checkpoint as ck

    t = Trainer(tiny_config(bench, ["train.iters=2", "train.checkpoint_every=1", "train.val_every=0"]), tmp_path,
                progress=False)

    def full_disk(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(OSError, match=r"last\.pt at iteration 1 .*No space left.*; no last\.pt was written$"):
        t.train()


@pytest.mark.parametrize("name", ["history.jsonl", "metrics.jsonl", "train.log"])
def test_a_full_disk_at_the_start_is_an_error_naming_the_file(bench, tmp_path, name):
    """/dev/full answers every write with ENOSPC, as a disk that is already full does."""
    (tmp_path / name).symlink_to("/dev/full")
    with pytest.raises(OSError, match=rf"could not write {re.escape(str(tmp_path / name))} \(No space left on device"):
        Trainer(tiny_config(bench, ["train.iters=2", "train.val_every=0"]), tmp_path, progress=False).train()


def test_an_atomic_write_that_fails_names_its_file(tmp_path, monkeypatch):
    import errno

    import udaseg.engine.checkpoint as ck

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.tempfile, "mkstemp", no_space)
    with pytest.raises(OSError, match=rf"could not write {re.escape(str(tmp_path / 'meta.json'))} \(No space"):
        ck.atomic_write_json(tmp_path / "meta.json", {"a": 1})
    monkeypatch.undo()
    monkeypatch.setattr(ck.os, "fsync", no_space)
    with pytest.raises(OSError, match=rf"could not write {re.escape(str(tmp_path / 'meta.json'))} \(No space"):
        ck.atomic_write_json(tmp_path / "meta.json", {"a": 1})
    assert not list(tmp_path.iterdir())


def test_an_unreadable_checkpoint_is_one_line_without_torchs_unsafe_advice(tmp_path):
    import os
    import pickle
    import random
    import subprocess
    import sys
    from pathlib import Path

    noise, code = tmp_path / "noise.pt", tmp_path / "code.pt"
    # fixed bytes: about 7% of random ones fail pickle's reader in another way (IndexError, KeyError …)
    noise.write_bytes(random.Random(0).randbytes(256))
    code.write_bytes(pickle.dumps({"segmentor": os.system}, protocol=2))  # a pickle that would import code
    for path, detail in ((noise, "Unsupported operand"), (code, "")):
        with pytest.raises(ValueError) as info:
            load_checkpoint(path)
        text = str(info.value)
        assert text.startswith(f"{path}: not a readable udaseg checkpoint (UnpicklingError: not a plain tensor file")
        assert detail in text and "udaseg never runs code from a file" in text
        assert "weights_only" not in text and "\n" not in text
    res = subprocess.run([sys.executable, "-m", "udaseg", "evaluate", str(noise)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert res.returncode == 2 and "weights_only" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
