"""Mean-teacher self-training composed into the trainer: exact resume with a teacher, the
passes each method gets, and the bad configs that must name their key."""
import pytest
import torch

from fixtures import assert_same_tensors, tiny_benchmark, tiny_config
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.trainer import Trainer

SAME_SIZE = "data.source.transforms={resize: [64, 32], hflip: 0.5, color_jitter: {brightness: 0.2}}"
ST = ["self_training.enabled=true", SAME_SIZE]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


def test_resume_with_a_teacher_is_exact(bench, tmp_path):
    """fgd_ent + ClassMix + MIC + rare-class sampling, killed after iteration 5 of 6 (last
    checkpoint at 4), resumed: student, discriminator, optimisers and teacher equal bit for bit."""
    cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=6", "train.checkpoint_every=2", "train.val_every=0",
                              "self_training.mic.enabled=true", "self_training.mic.block_size=8",
                              "data.source.rcs.enabled=true", "data.source.rcs.min_pixels=10", *ST])
    full = Trainer(cfg, tmp_path / "full", progress=False)
    assert [f.__name__ for f in full.stepper.segmenter_passes(full._next_batches(), 0, {})] == [
        "source", "target", "mix_pass", "mic_pass"]
    full = Trainer(cfg, tmp_path / "full", progress=False, overwrite=True)
    out = full.train()
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=5)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.start_iter == 4
    resumed.train()
    a, b = load_checkpoint(out["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert_same_tensors(a, b, ("segmentor", "discriminators", "teacher"))
    for key in ("opt_g", "opt_d"):
        sa, sb = a[key]["state"], b[key]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for p in sa:
            for k in sa[p]:
                assert torch.equal(torch.as_tensor(sa[p][k]), torch.as_tensor(sb[p][k])), f"{key} state {p}.{k} differs"
    # the teacher moved (EMA of the student), and is not the student
    init = Trainer(cfg, tmp_path / "init", progress=False).model.state_dict()
    t = a["teacher"]
    assert any(not torch.equal(t[f"model.{k}"], init[k]) for k in init if k.endswith("weight"))
    assert any(not torch.equal(t[f"model.{k}"], a["segmentor"][k]) for k in init if k.endswith("weight"))


def test_source_only_with_self_training_is_dacs(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["method.name=source_only", "train.iters=2", "train.val_every=0", *ST]), tmp_path,
                progress=False)
    assert "target" in t.loaders and not t.loaders["target"].dataset.has_labels
    t.train()
    log = (tmp_path / "metrics.jsonl").read_text()
    assert '"st_mix"' in log and '"pseudo_weight"' in log and '"st_mic"' not in log
    # trainable BN: "auto" is the references' train-mode teacher, recorded with the run
    assert [c.key for c in t.components] == ["self_training"] and t.components[0].teacher.bn == "batch" and t.resolved["teacher_bn"] == "batch"
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["resolved"]["teacher_bn"] == "batch"


@pytest.mark.parametrize("override,message", [
    ("self_training.tau=1.5", "self_training.tau"),
    ("self_training.tau=0", "self_training.tau"),
    ("self_training.alpha=1.0", "self_training.alpha"),
    ("self_training.alpha=-0.1", "self_training.alpha"),
    ("self_training.mic.ratio=1.0", "self_training.mic.ratio"),
    ("self_training.pseudo_weight=pixel", "self_training.pseudo_weight"),
    ("self_training.teacher_bn=train", "self_training.teacher_bn"),
    ("model.bn_mode=frozen self_training.teacher_bn=batch", "self_training.teacher_bn"),
    ("self_training.teacher_buffers=copy", "self_training.teacher_buffers"),  # batch teacher (trainable BN)
])
def test_bad_self_training_values_name_their_key(bench, tmp_path, override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Trainer(tiny_config(bench, ["train.iters=1", *ST, *override.split()]), tmp_path, progress=False)


def test_self_training_on_an_oracle_or_without_source_is_refused(bench, tmp_path):
    with pytest.raises(ValueError, match="self_training needs labelled source images .*method target_only has none"):
        Trainer(tiny_config(bench, ["train.iters=1", "method.name=target_only", *ST]), tmp_path, progress=False)


def test_source_and_target_of_different_sizes_are_refused_naming_the_transforms(bench, tmp_path):
    cfg = tiny_config(bench, ["train.iters=1", "train.val_every=0", "self_training.enabled=true",
                              "data.source.transforms={resize: [64, 48]}"])
    with pytest.raises(ValueError, match=r"data\.source\.transforms give 64x48, data\.target\.transforms 64x32"):
        Trainer(cfg, tmp_path, progress=False)
    # sizes the config does not fix (a random scale, the files' own) are checked on the first batch
    cfg = tiny_config(bench, ["train.iters=1", "train.val_every=0", "self_training.enabled=true",
                              "data.source.transforms={random_scale: [1.5, 1.5]}"])
    with pytest.raises(ValueError, match=r"source batch \(48, 96\) vs target \(32, 64\).*same crop"):
        Trainer(cfg, tmp_path / "files", progress=False).train()


def test_static_output_size_of_transforms():
    from udaseg.engine.mean_teacher import output_size

    assert output_size({"resize": [1280, 720], "crop": [512, 512]}) == (512, 512)
    assert output_size({"resize": [1024, 512], "hflip": 0.5}) == (1024, 512)
    assert output_size({"resize_image": [1024, 512]}) == (1024, 512)
    assert output_size({"resize": [64, 32], "random_scale": [0.5, 2.0]}) is None  # random without a crop
    assert output_size({"hflip": 0.5}) is None and output_size(None) is None  # the files' own size
    with pytest.raises(ValueError, match="transform 'crop' needs \\[W, H\\], got 512"):
        output_size({"crop": 512})


def test_jittered_target_images_are_refused_with_self_training(bench, tmp_path):
    cfg = tiny_config(bench, ["train.iters=1", *ST, "data.target.transforms.color_jitter={brightness: 0.3}"])
    with pytest.raises(ValueError, match=r"data\.target\.transforms\.color_jitter is set.*un-augmented"):
        Trainer(cfg, tmp_path, progress=False)


@pytest.mark.parametrize("override,message", [
    ("self_training.tau=1.5", r"self_training\.tau"),
    ("data.source.rcs.temperature=0", r"data\.source\.rcs\.temperature"),
    ("method.name=target_only", "method target_only has none"),
])
def test_a_two_stage_run_checks_self_training_before_stage_one(bench, tmp_path, override, message):
    """Stage 1 (source-only) switches self-training and RCS off; a bad value of the method's stage
    must still fail at once, not after stage 1 has trained (out-of-range values already when the
    config loads: every range is checked whether or not its section is on)."""
    from udaseg.engine.stages import run_training, stage_configs

    with pytest.raises(ValueError, match=message):
        cfg = tiny_config(bench, ["method.name=fgd_ent", "train.iters=1", "train.pretrain_iters=2",
                                  "train.val_every=0", *ST, "data.source.rcs.enabled=true", override])
        assert [sub for sub, _ in stage_configs(cfg)] == ["source_only", ""]
        run_training(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_rare_class_sampling_feeds_the_sampled_class(bench, tmp_path):
    t = Trainer(tiny_config(bench, ["train.iters=1", "data.source.rcs.enabled=true", "data.source.rcs.min_pixels=10"]),
                tmp_path, progress=False)
    keys = t.loaders["source"].batch_sampler.batch_keys(0)
    batch = t._next_batches()["source"]
    assert [int(c) for c in batch["rcs_class"]] == [k[2] for k in keys]
    # the sampled class is in the (re-drawn) crop
    assert all(bool((lbl == int(c)).any()) for lbl, c in zip(batch["label"], batch["rcs_class"]))


def test_linear_warmup_then_poly_as_mmcv():
    """DAFormer's poly10warm: lr·(1 − it/T)^1 scaled by 1 − (1 − it/W)(1 − r) for it < W."""
    from udaseg.engine.builders import poly_lr

    base, total, w, r = 6e-5, 40000, 1500, 1e-6
    assert poly_lr(base, 0, total, 1.0, w, r) == pytest.approx(base * r)
    assert poly_lr(base, 750, total, 1.0, w, r) == pytest.approx(base * (1 - 750 / total) * (1 - 0.5 * (1 - r)))
    assert poly_lr(base, 1500, total, 1.0, w, r) == pytest.approx(base * (1 - 1500 / total))
    assert poly_lr(base, 20000, total, 1.0) == pytest.approx(base / 2)


def test_dacs_on_the_demo_adapts_from_the_source_only_stage():
    """source_only + self-training adapts: it gets stage 1 (plain source-only, no teacher, no
    RCS) like every adapting method."""
    from udaseg.config import load_config
    from udaseg.engine.stages import stage_configs

    cfg = load_config("configs/demo/dacs.yaml")
    (pre_dir, pre), (main_dir, main) = stage_configs(cfg)
    assert (pre_dir, main_dir) == ("source_only", "")
    assert pre["method"]["name"] == "source_only" and not pre["self_training"]["enabled"]
    assert main["self_training"]["enabled"] and main["train"]["iters"] == cfg["train"]["iters"]
    mic = load_config("configs/demo/fgd_ent_st_mic.yaml")
    assert not stage_configs(mic)[0][1]["data"]["source"]["rcs"]["enabled"]
    assert stage_configs(load_config("configs/demo/source_only.yaml")) == [("", load_config("configs/demo/source_only.yaml"))]


@pytest.mark.parametrize("method", ["dacs", "fgd_ent_st", "fgd_ent_st_mic"])
def test_every_self_training_config_labels_with_the_references_teacher(method):
    """The references' teacher runs in train mode: batch statistics where BN trains (the
    from-scratch demo_scratch set), the fixed ones where it is frozen (the demo's v3 set and the
    real-data configs, pretrained weights)."""
    from udaseg.config import load_config
    from udaseg.engine.mean_teacher import check_self_training_run, resolve_teacher_bn

    for folder, expected in (("demo_scratch", "batch"), ("demo", "eval"), ("gta5_cityscapes", "eval"),
                             ("synthia_cityscapes", "eval")):
        cfg = load_config(f"configs/{folder}/{method}.yaml")
        check_self_training_run(cfg)
        assert resolve_teacher_bn(cfg["self_training"]["teacher_bn"], cfg["model"]["bn_mode"]) == expected, folder
