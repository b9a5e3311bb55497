"""``udaseg report``: the HTML page's content, that it is self-contained, and that it renders
(headless Chromium screenshot that is not blank)."""
import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from shared_runs import tiny_runs
from udaseg.apps.report_runs import load_run, write_report
from udaseg.reporting.report import curves_png, pick_indices


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-stage fgd_ent run (its source_only stage is the baseline) and a target-only oracle."""
    r = tiny_runs(tmp_path_factory)
    return [r["source_only"], r["fgd_ent"], r["oracle"]]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report(runs, out, num_images=2)
    return out


def test_report_holds_tables_charts_curves_and_grid(report):
    text = report.read_text()
    for needle in ("Per-class IoU (%) on target val — 19 classes", "Difference to fgd_ent/source_only",
                   "Per-class IoU by method", "Predicted class fractions", "Training curves",
                   "Qualitative results on target val", "mIoU19", "mIoU16", "mIoU13", "entropy map"):
        assert needle in text, needle
    assert "oracle [oracle]" in text and "trained on the <b>target labels</b>" in text
    # rows: three runs in the IoU table, two in the differences
    iou_tables = re.findall(r'<table class="iou">.*?</table>', text, flags=re.S)
    assert len(re.findall(r'<th class="run">', iou_tables[0])) == 3
    assert len(re.findall(r'<th class="run">', iou_tables[1])) == 2
    # grid: 2 images × (image + ground truth + 3 predictions + 3 entropy maps)
    grid = re.search(r'<table class="grid">.*?</table>', text, flags=re.S).group(0)
    assert grid.count("<img") == 2 * (2 + 3 + 3)


def test_report_takes_the_callers_results_instead_of_evaluating_again(runs, tmp_path, monkeypatch):
    """The demo job has just evaluated its runs: the report shows those figures, evaluating only
    the runs it was given no result for."""
    import udaseg.apps.report_runs as rep

    evaluated, real = [], rep.evaluate_state
    monkeypatch.setattr(rep, "evaluate_state", lambda state, cfg, path, **kw: evaluated.append(path) or real(state, cfg, path, **kw))
    first = write_report(runs[:2], tmp_path / "a.html", num_images=1)
    assert len(evaluated) == 2
    again = []
    monkeypatch.setattr(rep, "evaluate_state", lambda state, cfg, path, **kw: again.append(path) or real(state, cfg, path, **kw))
    import dataclasses

    baseline = real(*_state_and_cfg(runs[0]))[0]
    # a result no evaluation of these runs gives: the page must show it, not a figure of its own
    given = dataclasses.replace(baseline, iou=np.full_like(baseline.iou, 0.8765),
                                miou={k: 0.8765 for k in baseline.miou})
    assert "87.6" not in first.read_text() and "87.7" not in first.read_text()
    rep.write_report(runs[:2], tmp_path / "b.html", num_images=1, results=[given, None])
    assert len(again) == 1 and again[0].parent.parent == runs[1]  # only the run without a result
    page = (tmp_path / "b.html").read_text()
    assert "87.6" in page or "87.7" in page
    assert first.read_text().count("<table") == (tmp_path / "b.html").read_text().count("<table")
    with pytest.raises(ValueError, match="1 results for 2 runs"):
        rep.write_report(runs[:2], tmp_path / "c.html", results=[given])


def _state_and_cfg(run_dir):
    from udaseg.engine.checkpoint import load_checkpoint
    from udaseg.engine.eval_checkpoints import evaluation_config

    path = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    return state, evaluation_config(state, path), path


def test_report_is_self_contained(report):
    text = report.read_text()
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(http|//|file:)', text) and "<script" not in text
    for s in srcs[:5]:  # real PNGs
        Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()


def test_curves_cover_both_stages_and_every_logged_key(runs):
    run = load_run(runs[1])
    assert run.stage1_metrics and run.metrics and run.meta["method"] == "fgd_ent"
    png = curves_png([run])
    img = Image.open(io.BytesIO(png))
    assert img.size[0] > 800 and img.size[1] > 600  # 3 columns; rows for seg, seg_aux, adv, ent, d..., val


def test_pick_indices_spread_over_the_split():
    assert pick_indices(100, 4) == [0, 33, 66, 99]
    assert pick_indices(2, 4) == [0, 1] and pick_indices(0, 3) == []


def test_report_bad_input(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory .*nope not found"):
        write_report([tmp_path / "nope"], tmp_path / "r.html")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty_run: no checkpoint checkpoints/last.pt"):
        write_report([tmp_path / "empty_run"], tmp_path / "r.html")


def test_report_cli(runs, tmp_path, capsys):
    from udaseg.apps.cli_eval import build_parser

    args = build_parser().parse_args(["report", str(runs[0]), "--out", str(tmp_path / "r.html"),
                                      "--num-images", "1", "--device", "cpu"])
    assert args.func(args) == 0
    assert f"report: {tmp_path / 'r.html'}" in capsys.readouterr().out


CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and shutil.os.path.exists(p)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium); "
                                             "the report's rendering is not checked")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1400,3000", report.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # a hang guard: chromium on a loaded machine is slow
    assert shot.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1400)
    not_white = (img < 245).any(axis=2)
    assert not_white.mean() > 0.05, "the page is (almost) blank"
    assert img.std() > 20
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200  # text, tables, chart lines, palette colours and images
    # the qualitative grid is on the page: the ground truth's road purple (Cityscapes palette)
    assert ((img == (128, 64, 128)).all(axis=2)).sum() > 50
