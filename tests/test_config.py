"""Configs: defaults, _base_ chains, dotted overrides, and errors that name the key."""
from pathlib import Path

import pytest

from udaseg.config import ConfigError, load_config, parse_override
from udaseg.methods import METHODS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_parse_override_types():
    assert parse_override("train.iters=2000") == {"train": {"iters": 2000}}
    assert parse_override("method.lambda_ent=2e-3") == {"method": {"lambda_ent": 0.002}}
    assert parse_override("data.source.transforms.crop=[512, 256]") == {"data": {"source": {"transforms": {"crop": [512, 256]}}}}
    assert parse_override("model.pretrained=null") == {"model": {"pretrained": None}}
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("train.iters")


def test_base_chain_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("name: a\ntrain: {iters: 10, lr: 1e-3}\nmethod: {name: fada}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {iters: 20}\nmethod: {lambda_adv: 0.01}\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.lr=5e-4", "method.temperature=2"])
    assert cfg["name"] == "a" and cfg["train"]["iters"] == 20
    assert cfg["train"]["lr"] == 5e-4 and isinstance(cfg["train"]["lr"], float)
    assert cfg["method"]["lambda_adv"] == 0.01 and cfg["method"]["temperature"] == 2.0
    assert cfg["method"]["clip"] == 0.9  # untouched method defaults stay


@pytest.mark.parametrize("override,message", [
    ("train.itres=3", r"unknown config key 'train.itres'; did you mean 'train.iters'"),
    ("train.iters=abc", r"'train.iters' must be an integer, got 'abc'"),
    ("train.lr=fast", r"'train.lr' must be a number"),
    ("model.multi_level=3", r"'model.multi_level' must be true/false"),
    ("method.lambda_ent=0.1", r"unknown config key 'method.lambda_ent'"),  # source_only has no entropy term
    ("method.name=dann", r"unknown method 'dann'"),
    ("data=3", r"'data' must be a mapping"),
    ("method.name=fada method.lambda_adv_aux=-0.1", r"'method.lambda_adv_aux' is a loss weight and must be at least 0"),
    ("method.name=minent method.lambda_ent=-1", r"'method.lambda_ent' is a loss weight and must be at least 0"),
    ("self_training.mic.weight=-1", r"'self_training.mic.weight' must be at least 0"),
])
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split(" "))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_resolves(path):
    cfg = load_config(path)
    assert cfg["method"]["name"] in METHODS


def test_paper_settings_in_shipped_configs():
    root = Path(__file__).resolve().parents[1] / "configs"
    cfg = load_config(root / "gta5_cityscapes" / "fgd_ent.yaml")
    assert cfg["model"]["arch"] == "deeplabv2_resnet101" and cfg["model"]["num_classes"] == 19
    assert (cfg["train"]["pretrain_iters"], cfg["train"]["iters"]) == (20000, 40000)
    assert cfg["data"]["source"]["transforms"]["resize"] == [1280, 720]
    assert cfg["data"]["target"]["transforms"]["resize"] == [1024, 512]
    m = cfg["method"]
    assert (m["lambda_adv"], m["lambda_ent"], m["temperature"], m["clip"], m["d_weight"]) == (0.001, 0.001, 1.8, 0.9, 0.5)
    syn = load_config(root / "synthia_cityscapes" / "fgd_ent.yaml")
    assert syn["model"]["num_classes"] == 16 and syn["data"]["source"]["transforms"]["resize"] == [1280, 760]


def test_a_dotted_override_below_transforms_changes_only_that_key():
    """``data.target.transforms.resize=[256,128]`` replaced the whole pipeline, silently dropping
    flip and jitter; ``data.target.transforms={...}`` still states a pipeline completely."""
    from udaseg.config import load_config

    cfg = load_config("configs/demo/fgd_ent.yaml", ["data.target.transforms.resize=[256,128]"])
    assert cfg["data"]["target"]["transforms"] == {"resize": [256, 128], "hflip": 0.5}
    whole = load_config("configs/demo/fgd_ent.yaml", ["data.target.transforms={resize: [256, 128]}"])
    assert whole["data"]["target"]["transforms"] == {"resize": [256, 128]}


# ------------------------------------------------- train.threads, train.validate_on, data.dev

@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("3", 3), ("1", 1)])
def test_threads_takes_auto_or_a_positive_integer(value, expected):
    assert load_config(None, [f"train.threads={value}"])["train"]["threads"] == expected


def test_threads_default_is_auto():
    assert load_config(None)["train"]["threads"] == "auto"


@pytest.mark.parametrize("value,shown", [("0", "0"), ("-1", "-1"), ("two", "'two'"), ("true", "True"),
                                         ("2.0", "2.0"), ("null", "None")])
def test_bad_threads_are_refused_naming_the_key(value, shown):
    with pytest.raises(ConfigError, match=rf"config key 'train.threads' must be a positive integer or auto, got {shown}$"):
        load_config(None, [f"train.threads={value}"])


@pytest.mark.parametrize("value", ["val", "dev"])
def test_validate_on_val_or_dev(value):
    assert load_config(None, [f"train.validate_on={value}"])["train"]["validate_on"] == value


def test_validate_on_defaults_to_val_and_refuses_other_splits():
    assert load_config(None)["train"]["validate_on"] == "val"
    with pytest.raises(ConfigError, match=r"config key 'train.validate_on' must be one of val, dev, got 'test'"):
        load_config(None, ["train.validate_on=test"])
    with pytest.raises(ConfigError, match=r"'train.validate_on'"):
        load_config(None, ["train.validate_on=3"])


def test_dev_section_defaults_and_keys():
    dev = load_config(None)["data"]["dev"]
    assert dev == {"kind": "cityscapes", "root": "data/cityscapes", "split": "dev", "split_list": None,
                   "num_classes": None, "transforms": {}}
    cfg = load_config(None, ["data.dev.root=/x/cs", "data.dev.split=mydev", "data.dev.split_list=dev.txt",
                             "data.dev.num_classes=16", "data.dev.kind=gta5",
                             "data.dev.transforms={resize_image: [64, 32], anything: 1}"])
    assert cfg["data"]["dev"] == {"kind": "gta5", "root": "/x/cs", "split": "mydev", "split_list": "dev.txt",
                                  "num_classes": 16, "transforms": {"resize_image": [64, 32], "anything": 1}}
    assert cfg["data"]["val"]["root"] == "data/cityscapes" and cfg["data"]["val"]["split"] == "val"  # untouched
    # free-form: a dotted key below transforms changes only that key
    assert load_config(None, ["data.dev.transforms.resize_image=[8, 4]"])["data"]["dev"]["transforms"] == {
        "resize_image": [8, 4]}


@pytest.mark.parametrize("override,message", [
    ("data.dev.nope=1", r"unknown config key 'data.dev.nope'"),
    ("data.dev.num_classes=many", r"config key 'data.dev.num_classes' must be an integer \(or null\), got 'many'"),
    ("data.dev.split=3", r"config key 'data.dev.split' must be a string, got 3"),
    ("data.dev.split_list=3", r"config key 'data.dev.split_list' must be a string \(or null\), got 3"),
])
def test_bad_dev_keys_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_demo_configs_validate_on_their_dev_split():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo" / "source_only.yaml")
    assert cfg["train"]["validate_on"] == "dev"
    assert cfg["data"]["dev"]["split"] == "dev" and cfg["data"]["dev"]["root"] == cfg["data"]["val"]["root"]
    assert cfg["data"]["dev"]["transforms"] == cfg["data"]["val"]["transforms"]


def test_threads_is_resume_safe():
    from udaseg.engine.run_dir import RESUME_SAFE_KEYS, config_changes

    assert "train.threads" in RESUME_SAFE_KEYS
    old, new = load_config(None), load_config(None, ["train.threads=3"])
    assert config_changes(old, new, {"threads": 2}, {"threads": 3}) == {}
    assert config_changes(load_config(None, ["train.threads=1"]), new) == {}
    del old["train"]["threads"]  # a checkpoint from before the key existed
    assert config_changes(old, new) == {}
    # ... while a key that changes the weights next to it is still reported
    lr = old["train"]["lr"]
    assert config_changes(old, load_config(None, ["train.threads=3", "train.lr=0.5"])) == {"train.lr": (lr, 0.5)}


@pytest.mark.parametrize("override,message", [
    ("train.poly_power=-1", "'train.poly_power' must be at least 0, got -1.0"),  # the LR would grow
    ("train.lr=.nan", "'train.lr' must be a finite number, got nan"),
    ("train.lr=.inf", "'train.lr' must be a finite number, got inf"),
    ("train.lr_d=-.inf", "'train.lr_d' must be a finite number, got -inf"),
    ("train.warmup_iters=-5", "'train.warmup_iters' must be at least 0, got -5"),
    ("train.warmup_ratio=0", r"'train.warmup_ratio' must be in \(0, 1\], got 0.0"),
    ("train.betas=[2,3]", r"'train.betas\[0\]' must be in \[0, 1\), got 2"),
    ("train.betas_d=[0.9,1.0]", r"'train.betas_d\[1\]' must be in \[0, 1\), got 1.0"),
    ("train.betas=[0.9]", r"'train.betas' must be a list of 2 numbers, got \[0.9\]"),
    ("train.betas=[0.9,x]", r"'train.betas\[1\]' must be a number, got 'x'"),
    ("train.momentum=-1", r"'train.momentum' must be in \[0, 1\), got -1.0"),
    ("train.weight_decay=-0.1", "'train.weight_decay' must be at least 0"),
    ("seed=-1", "'seed' must be at least 0, got -1"),
    ("self_training.tau=1.5", r"'self_training.tau' must be in \[0, 1\], got 1.5"),  # checked with the section off
    ("self_training.alpha=1.01", r"'self_training.alpha' must be in \[0, 1\]"),
    ("self_training.mic.ratio=1", r"'self_training.mic.ratio' must be in \[0, 1\), got 1"),
    ("data.source.rcs.temperature=0", "'data.source.rcs.temperature' must be greater than 0"),
    ("method.name=fada method.temperature=.nan", "'method.temperature' must be a finite number, got nan"),
    ("train.lr=0", "'train.lr' must be greater than 0, got 0.0"),
    ("train.lr_d=-1", "'train.lr_d' must be at least 0, got -1.0"),
    ("train.head_lr_mult=0", "'train.head_lr_mult' must be greater than 0, got 0.0"),
    ("train.warmup_ratio=1.5", r"'train.warmup_ratio' must be in \(0, 1\], got 1.5"),
    ("train.betas_d=[0.9,0.99,0.999]", r"'train.betas_d' must be a list of 2 numbers, got \[0.9, 0.99, 0.999\]"),
    ("train.betas_d=[-0.1,0.9]", r"'train.betas_d\[0\]' must be in \[0, 1\), got -0.1"),
    ("train.momentum=1", r"'train.momentum' must be in \[0, 1\), got 1.0"),
    ("train.iters=0", "'train.iters' must be at least 1, got 0"),
    ("self_training.tau=-0.1", r"'self_training.tau' must be in \[0, 1\], got -0.1"),
    ("self_training.weight=-1", "'self_training.weight' must be at least 0, got -1.0"),
    ("self_training.jitter_prob=1.1", r"'self_training.jitter_prob' must be in \[0, 1\], got 1.1"),
    ("self_training.blur_prob=-0.5", r"'self_training.blur_prob' must be in \[0, 1\], got -0.5"),
    ("self_training.mic.block_size=0", "'self_training.mic.block_size' must be at least 1, got 0"),
    ("self_training.mic.weight=.nan", "'self_training.mic.weight' must be a finite number, got nan"),
    ("data.source.rcs.min_crop_ratio=-0.5", "'data.source.rcs.min_crop_ratio' must be at least 0, got -0.5"),
    ("data.source.rcs.temperature=-.inf", "'data.source.rcs.temperature' must be a finite number, got -inf"),
    # eval.scales: a zero, empty or NaN scale was refused only at evaluation, after the training
    ("eval.scales=[1.0,0]", r"'eval.scales\[1\]' must be greater than 0, got 0"),
    ("eval.scales=[]", r"'eval.scales' must be a non-empty list of numbers, got \[\]"),
    ("eval.scales=[.nan]", r"'eval.scales\[0\]' must be a finite number, got nan"),
    # null for a key whose default is a number (it was accepted and broke later)
    ("train.lr=null", "'train.lr' must be a number, got None$"),
    ("seed=null", "'seed' must be a number, got None$"),
    ("train.betas=null", "'train.betas' must be a list of 2 numbers, got None$"),
    ("method.name=minent method.lambda_ent=null", "'method.lambda_ent' is a loss weight and must be at least 0, got None"),
    ("method.name=minent method.lambda_ent=.nan", "'method.lambda_ent' must be a finite number, got nan"),
])
def test_every_number_is_finite_and_in_its_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split(" "))


def test_range_limits_themselves_follow_the_brackets():
    cfg = load_config(None, ["train.momentum=0", "self_training.tau=1", "train.warmup_ratio=1", "seed=0",
                             "train.betas=[0, 0.999]"])
    assert (cfg["train"]["momentum"], cfg["self_training"]["tau"], cfg["train"]["betas"]) == (0.0, 1.0, [0, 0.999])


def test_unset_optional_numbers_stay_allowed():
    cfg = load_config(None, ["data.global_batch_size=null", "eval.num_classes=null", "eval.scales=[0.5, 1, 1.5]"])
    assert (cfg["data"]["global_batch_size"], cfg["eval"]["num_classes"], cfg["eval"]["scales"]) == (None, None, [0.5, 1, 1.5])
    with pytest.raises(ConfigError, match="'data.global_batch_size' must be at least 1, got 0"):
        load_config(None, ["data.global_batch_size=0"])


def test_values_from_files_are_checked_after_overrides(tmp_path):
    """A file's values are checked like an override's (self-training off or not), on the merged
    result: an override can mend a bad value of a file."""
    (tmp_path / "base.yaml").write_text("self_training: {enabled: false, tau: 1.5}\n")
    (tmp_path / "exp.yaml").write_text("_base_: base.yaml\nseed: 3\n")
    with pytest.raises(ConfigError, match=r"config key 'self_training.tau' must be in \[0, 1\], got 1.5$"):
        load_config(tmp_path / "exp.yaml")
    cfg = load_config(tmp_path / "exp.yaml", ["self_training.tau=0.9"])
    assert (cfg["self_training"]["tau"], cfg["seed"]) == (0.9, 3)
    (tmp_path / "seed.yaml").write_text("seed: -1\ntrain: {betas: [0.9, 2]}\n")
    with pytest.raises(ConfigError, match="config key 'seed' must be at least 0, got -1$"):
        load_config(tmp_path / "seed.yaml")
    with pytest.raises(ConfigError, match=r"config key 'train.betas\[1\]' must be in \[0, 1\), got 2$"):
        load_config(tmp_path / "seed.yaml", ["seed=0"])


def test_train_refuses_a_bad_number_before_creating_the_run_dir(tmp_path, capsys):
    from udaseg.apps.cli import main

    run = tmp_path / "run"
    config = Path(__file__).resolve().parents[1] / "configs" / "demo" / "source_only.yaml"
    assert main(["train", str(config), "--run-dir", str(run), "train.poly_power=-1"]) == 2
    assert "config key 'train.poly_power' must be at least 0, got -1.0" in capsys.readouterr().err
    assert not run.exists()


def test_base_as_a_list_merges_in_order_and_the_file_wins(tmp_path):
    (tmp_path / "model.yaml").write_text("model: {arch: deeplabv2_resnet18}\ntrain: {lr: 0.1, iters: 5}\n")
    (tmp_path / "sched.yaml").write_text("train: {iters: 7, poly_power: 1.0}\n")
    (tmp_path / "exp.yaml").write_text("_base_: [model.yaml, sched.yaml]\ntrain: {lr: 0.2}\n")
    cfg = load_config(tmp_path / "exp.yaml")
    assert cfg["model"]["arch"] == "deeplabv2_resnet18"
    assert (cfg["train"]["lr"], cfg["train"]["iters"], cfg["train"]["poly_power"]) == (0.2, 7, 1.0)


@pytest.mark.parametrize("files,entry,message", [
    ({"self.yaml": "_base_: self.yaml"}, "self.yaml", r"self.yaml: circular _base_ chain self.yaml -> self.yaml"),
    ({"a.yaml": "_base_: b.yaml", "b.yaml": "_base_: [a.yaml]"}, "a.yaml",
     r"circular _base_ chain a.yaml -> b.yaml -> a.yaml"),
    # a cycle entered from outside it names only the files that loop
    ({"top.yaml": "_base_: a.yaml", "a.yaml": "_base_: b.yaml", "b.yaml": "_base_: a.yaml"}, "top.yaml",
     r"a.yaml: circular _base_ chain a.yaml -> b.yaml -> a.yaml$"),
    # files of the same name in two folders are told apart
    ({"x/base.yaml": "_base_: ../y/base.yaml", "y/base.yaml": "_base_: ../x/base.yaml"}, "x/base.yaml",
     r"circular _base_ chain base.yaml -> ../y/base.yaml -> base.yaml$"),
    ({"num.yaml": "_base_: 3"}, "num.yaml", r"num.yaml: _base_ must be a file name or a list of file names, got 3"),
    ({"mixed.yaml": "_base_: [a.yaml, 3]"}, "mixed.yaml",
     r"mixed.yaml: _base_ must be a file name or a list of file names, got \['a.yaml', 3\]"),
    ({"gone.yaml": "_base_: missing.yaml"}, "gone.yaml", r"missing.yaml not found \(the _base_ of .*gone.yaml\)"),
    # a missing base in a list names the missing path and the file that asks for it
    ({"list.yaml": "_base_: [sched.yaml, nope/model.yaml]", "sched.yaml": "train: {iters: 7}"}, "list.yaml",
     r"config file .*nope/model.yaml not found \(the _base_ of .*list.yaml\)$"),
])
def test_circular_missing_or_malformed_base_is_named(tmp_path, files, entry, message):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / entry)


def test_a_base_shared_twice_is_not_a_cycle_and_an_empty_list_is_no_base(tmp_path):
    (tmp_path / "common.yaml").write_text("name: common\ntrain: {iters: 3, lr: 0.5}\n")
    (tmp_path / "m.yaml").write_text("_base_: common.yaml\ntrain: {lr: 0.1}\n")
    (tmp_path / "s.yaml").write_text("_base_: common.yaml\ntrain: {poly_power: 2.0}\n")
    (tmp_path / "exp.yaml").write_text("_base_: [m.yaml, s.yaml]\nname: exp\n")
    cfg = load_config(tmp_path / "exp.yaml")
    # each base is resolved whole, then merged in order: s.yaml (later) brings common's lr 0.5 back over m.yaml's 0.1
    assert (cfg["name"], cfg["train"]["iters"], cfg["train"]["lr"], cfg["train"]["poly_power"]) == ("exp", 3, 0.5, 2.0)
    (tmp_path / "none.yaml").write_text("_base_: []\nseed: 4\n")
    assert load_config(tmp_path / "none.yaml")["seed"] == 4
