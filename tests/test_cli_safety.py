"""The command line never replaces what a user has and never passes on unsafe advice (a user
audit): ``report --out`` onto a checkpoint, ``evaluate`` over a file of its output's name,
torch's "reload with weights_only=False" for an unreadable checkpoint, ``--version``."""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shared_runs import tiny_runs
from udaseg.apps.cli import main, version_line
from udaseg.engine.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# torch's advice for a refused load, in any of its wordings: each runs the file's code
UNSAFE = re.compile(r"weights_only|WeightsUnpickler|re-running|safe_globals|trust|file an issue", re.I)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


# --- udaseg report --out ------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("last.pt", b"<!DOCTYPE html><html>an HTML page, but in a checkpoint's place"),  # the name decides
    ("config.yaml", b"model: {}\n"),
    ("ablation.json", b"{}"),
    ("notes.txt", b"my notes\n"),
    ("empty.html", b""),
])
def test_report_refuses_a_file_that_is_not_a_report_even_with_overwrite(tmp_path, capsys, name, content):
    """Both forms (run directories, an ablation.json): refused before the runs are read, the
    file untouched, the message naming it; never suggesting an --overwrite that would fail."""
    target = tmp_path / name
    target.write_bytes(content)
    (tmp_path / "ablation_in.json").write_text("{}")
    for inputs in ([str(tmp_path / "no_run")], [str(tmp_path / "ablation_in.json")]):
        for extra in ([], ["--overwrite"]):
            assert main(["report", *inputs, "--out", str(target), *extra]) == 2
            err = capsys.readouterr().err
            assert f"udaseg: error: --out {target} exists and is " in err and "even with --overwrite" in err, err
            assert target.read_bytes() == content


def test_report_refuses_an_existing_report_without_overwrite_and_a_symlink(tmp_path, capsys):
    page = tmp_path / "report.html"
    page.write_text("<!DOCTYPE html><html>an earlier report</html>")
    assert main(["report", str(tmp_path / "no_run"), "--out", str(page)]) == 2
    assert (f"udaseg: error: --out {page} exists: refusing to replace it (--overwrite replaces an earlier report)"
            in capsys.readouterr().err)
    # with --overwrite the --out check passes, and the next error is the missing run
    assert main(["report", str(tmp_path / "no_run"), "--out", str(page), "--overwrite"]) == 2
    assert "no_run" in capsys.readouterr().err and page.read_text().endswith("an earlier report</html>")
    for link_to in (tmp_path / "ckpt.pt", tmp_path / "missing.html"):  # a file elsewhere, or a dangling link
        link = tmp_path / f"link_{link_to.stem}.html"
        link.symlink_to(link_to)
        assert main(["report", str(tmp_path / "no_run"), "--out", str(link), "--overwrite"]) == 2
        assert f"--out {link} is a symbolic link" in capsys.readouterr().err
        assert not (tmp_path / "missing.html").exists()


def test_report_of_runs_replaces_its_own_page_only_with_overwrite(runs, tmp_path, capsys):
    page = tmp_path / "r.html"
    argv = ["report", str(runs["source_only"]), "--out", str(page), "--num-images", "1", "--device", "cpu"]
    assert main(argv) == 0
    first = page.read_text()
    assert first.startswith("<!DOCTYPE html>")
    assert main(argv) == 2 and page.read_text() == first
    assert f"--out {page} exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--title", "again"]) == 0 and "again" in page.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left over


def test_report_refuses_a_file_that_appeared_at_out_during_the_evaluation(runs, tmp_path, capsys, monkeypatch):
    import udaseg.apps.report_runs as rep

    page, real = tmp_path / "r.html", rep.evaluate_state

    def evaluate_while_someone_writes(*args, **kw):
        page.write_text("someone's notes\n")
        return real(*args, **kw)
    monkeypatch.setattr(rep, "evaluate_state", evaluate_while_someone_writes)
    argv = ["report", str(runs["source_only"]), "--out", str(page), "--num-images", "1", "--device", "cpu"]
    assert main(argv) == 2 and page.read_text() == "someone's notes\n"
    assert f"--out {page} exists and is not an HTML page" in capsys.readouterr().err


# --- udaseg evaluate: its own files replaced and said so, others refused -------------------------

def test_evaluate_replaces_its_own_files_aloud_and_refuses_others(runs, tmp_path, capsys):
    last = runs["oracle"] / "checkpoints" / "last.pt"
    out = tmp_path / "out"
    argv = ["evaluate", str(last), "--out", str(out), "train.device=cpu"]
    assert main(argv) == 0
    csv_path, json_path = out / "eval_val.csv", out / "eval_val.json"
    assert json.loads(json_path.read_text())["written_by"] == "udaseg evaluate"
    assert "replaced" not in capsys.readouterr().err
    assert main(argv) == 0  # its own files: replaced, and said so
    assert "(replaced the earlier eval_val.csv, eval_val.json)" in capsys.readouterr().err
    for path, foreign in ((csv_path, "a,b\n1,2\n"), (json_path, '{"mine": true}\n')):  # a user's file of that name
        keep = path.read_text()
        path.write_text(foreign)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"udaseg: error: {path} exists and was not written by udaseg evaluate" in err and "--overwrite" in err
        assert path.read_text() == foreign
        assert main(argv + ["--overwrite"]) == 0 and path.read_text() != foreign
        assert keep.splitlines()[0] == path.read_text().splitlines()[0]  # the same format as before


# --- unreadable checkpoints: one line naming the file, never torch's unsafe advice ----------------

class _Marker:
    """A pickle that, loaded unsafely, would create a file: proof that no code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_checkpoints(tmp_path) -> dict:
    files = {"noise.pt": os.urandom(4096), "empty.pt": b""}
    files["object.pt"] = pickle.dumps({"segmentor": _Marker(str(tmp_path / "ran"))}, protocol=4)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"segmentor": _Marker(str(tmp_path / "ran"))}, tmp_path / "object_zip.pt")  # torch's zip format
    torch.save({"when": __import__("datetime").date(2024, 1, 1)}, tmp_path / "date.pt")  # an unlisted class
    return {p.name: p for p in tmp_path.glob("*.pt")}


def test_an_unreadable_checkpoint_never_suggests_running_its_code(tmp_path, recwarn):
    for name, path in _bad_checkpoints(tmp_path).items():
        with pytest.raises(ValueError) as info:
            load_checkpoint(path)
        text = str(info.value)
        assert text.startswith(f"{path}: not a readable udaseg checkpoint ("), text
        assert "\n" not in text and "\x1b" not in text and not UNSAFE.search(text), text
    assert not (tmp_path / "ran").exists()
    assert not [w for w in recwarn if UNSAFE.search(str(w.message))]  # torch's pickle-protocol note neither
    date = str(pytest.raises(ValueError, load_checkpoint, tmp_path / "date.pt").value)
    assert "Unsupported global: GLOBAL datetime.date was not an allowed global by default;" in date  # the reason stays
    assert "the file is empty or ends early" in str(pytest.raises(ValueError, load_checkpoint, tmp_path / "empty.pt").value)


def test_evaluate_on_unreadable_checkpoints_prints_one_safe_line(tmp_path):
    paths = _bad_checkpoints(tmp_path)
    for name in ("noise.pt", "object.pt"):
        res = subprocess.run([sys.executable, "-m", "udaseg", "evaluate", str(paths[name])], capture_output=True,
                             text=True, cwd=REPO, timeout=120)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(f"udaseg: error: {paths[name]}: not a readable udaseg checkpoint")
        assert not UNSAFE.search(res.stderr), res.stderr
    assert not (tmp_path / "ran").exists()


# --- udaseg --version --------------------------------------------------------------------------

def test_version_falls_back_to_pyproject_when_not_installed(monkeypatch):
    from importlib import metadata

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    expected = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert version_line() == f"udaseg {expected} (torch {torch.__version__})"
