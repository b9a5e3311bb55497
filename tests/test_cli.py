"""The ``udaseg`` command line as a user types it: ``python -m udaseg``, options and ``key=value``
overrides in any order, overrides given the same way to every sub-command, errors that name
what is wrong. Parser-level tests: nothing here trains (the commands' work is tested elsewhere)."""
import re
import subprocess
import sys

import pytest

from udaseg.apps.cli import build_parser, main


def _parse(*argv):
    args = vars(build_parser().parse_args(list(argv)))
    args.pop("func")
    return args


def test_python_dash_m_udaseg_is_the_command():
    res = subprocess.run([sys.executable, "-m", "udaseg", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: udaseg")
    for command in ("demo", "train", "evaluate", "predict", "report", "data"):
        assert command in res.stdout


def test_train_options_and_overrides_mix_in_any_order():
    """`udaseg train CFG --resume train.iters=3` was refused ("unrecognized arguments")."""
    after = _parse("train", "cfg.yaml", "--resume", "train.iters=3")
    before = _parse("train", "cfg.yaml", "train.iters=3", "--resume")
    assert after == before == {"command": "train", "config": "cfg.yaml", "overrides": ["train.iters=3"],
                               "resume": True, "run_dir": None, "overwrite": False, "allow_config_change": False}
    mixed = _parse("train", "cfg.yaml", "a.b=1", "--run-dir", "runs/x", "c.d=2", "--resume", "e=3")
    assert mixed["overrides"] == ["a.b=1", "c.d=2", "e=3"] and mixed["run_dir"] == "runs/x" and mixed["resume"]
    assert _parse("demo", "train.iters=4", "--seed", "3")["overrides"] == ["train.iters=4"]


def test_a_token_that_is_neither_option_nor_override_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "cfg.yaml", "--resume", "itres=3", "oops"])
    assert exc.value.code == 2
    assert "'oops' is neither an option nor a key=value config override" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "cfg.yaml", "train.iters=3", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_evaluate_and_predict_take_options_and_overrides_in_any_order(tmp_path):
    first = _parse("evaluate", "run", "eval.num_classes=16", "--flip", "--out", "o")
    last = _parse("evaluate", "run", "--flip", "--out", "o", "eval.num_classes=16")
    assert first == last and first["targets"] == ["run", "eval.num_classes=16"] and first["flip"]
    first = _parse("predict", "ck.pt", "img.png", "eval.flip=true", "--out", "o", "--batch-size", "2")
    last = _parse("predict", "ck.pt", "--out", "o", "img.png", "--batch-size", "2", "eval.flip=true")
    assert first == last and first["images"] == ["img.png", "eval.flip=true"] and first["batch_size"] == 2


def _weightless_checkpoint(path):
    """A checkpoint with a config and no weights: enough for the config checks that run before
    the model is built."""
    import torch

    from udaseg.config import load_config

    torch.save({"segmentor": {}, "num_classes": 19, "config": load_config(None, ["train.device=cpu"])}, path)
    return path


def test_predict_takes_overrides_positionally_and_keeps_set_as_a_deprecated_alias(tmp_path, capsys):
    """Overrides reach predict's config either way (as evaluate's do): one that contradicts the
    checkpoint is refused by the config check, before any prediction."""
    from PIL import Image

    ckpt = _weightless_checkpoint(tmp_path / "ck.pt")
    Image.new("RGB", (8, 4)).save(tmp_path / "a.png")
    refusal = "ck.pt: checkpoint has 19 classes but the config asks for model.num_classes=16"
    for argv in (["model.num_classes=16", "--out", str(tmp_path / "o")],
                 ["--out", str(tmp_path / "o"), "model.num_classes=16"],
                 ["--out", str(tmp_path / "o"), "--set", "model.num_classes=16"]):
        assert main(["predict", str(ckpt), str(tmp_path / "a.png"), *argv]) == 2
        err = capsys.readouterr().err
        assert refusal in err, err
        assert ("--set is deprecated" in err) == ("--set" in argv)
    # an existing image whose name holds '=' is an image, not an override
    Image.new("RGB", (8, 4)).save(tmp_path / "x=1.png")
    args = build_parser().parse_args(["predict", str(ckpt), str(tmp_path / "x=1.png"), "--out", "o"])
    from udaseg.apps.cli_eval import _split_targets

    assert _split_targets(args.images, "image") == ([str(tmp_path / "x=1.png")], [])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", str(ckpt), "a.png", "--out", "o", "--set", "no-equals-sign"])
    assert "neither an option nor a key=value config override" in capsys.readouterr().err


def test_report_of_a_missing_results_file_names_the_file(tmp_path, capsys):
    missing = tmp_path / "ablation.json"
    assert main(["report", str(missing), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"ablation results file {missing} not found" in err and "run directory" not in err
    assert main(["report", str(tmp_path / "no_run"), "--out", str(tmp_path / "r.html")]) == 2
    assert f"run directory {tmp_path / 'no_run'} not found" in capsys.readouterr().err


def test_version_names_udaseg_and_torch():
    import torch

    res = subprocess.run([sys.executable, "-m", "udaseg", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(rf"udaseg \d+\.\d+\.\d+\S* \(torch {re.escape(torch.__version__)}\)\n", res.stdout), res.stdout


def test_resume_command_of_an_interrupted_train():
    from udaseg.apps.cli import resume_command

    assert resume_command(["train", "c.yaml", "--overwrite", "train.lr=0.1"]) == "udaseg train c.yaml train.lr=0.1 --resume"
    assert resume_command(["train", "c.yaml", "--resume"]) == "udaseg train c.yaml --resume"
    assert resume_command(["train", "my runs/c.yaml"]) == "udaseg train 'my runs/c.yaml' --resume"
    assert resume_command(["demo", "--data", "d"]) == "udaseg demo --data d"
