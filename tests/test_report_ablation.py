"""`udaseg report ablation.json`: the ablation's tables rendered from its results file, with
hand-computed means, spreads, gains over the BN-only control and gap shares."""
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from udaseg.reporting.report_ablation import load_ablation, render_ablation_html, write_ablation_report

REPO = Path(__file__).resolve().parents[1]
K = 19
# mIoU (%) per seed; AdaptSegNet (13.2) above FADA (13.0): the paper's ordering does not hold
MIOU = {"source_only": (10.0, 11.0), "bn_control": (12.0, 13.0), "adaptsegnet": (13.0, 13.4),
        "fada": (14.0, 12.0), "fgd_ent": (14.5, 12.5), "target_only": (20.0, 21.0)}


def _run(miou_pct: float) -> dict:
    iou = [miou_pct / 100] * K
    frac = [1.0 / K] * K
    return {"miou": miou_pct / 100, "iou": iou, "predicted_fractions": frac,
            "label_fractions": [0.5] + [0.5 / (K - 1)] * (K - 1), "checkpoint": "x.pt"}


@pytest.fixture
def results_file(tmp_path):
    runs = {f"{seed}/{name}": _run(v[seed]) for seed in (0, 1) for name, v in MIOU.items()}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"overrides": ["train.iters=200"], "runs": runs}))
    return path


def _row(page: str, label: str) -> list[str]:
    m = re.search(r"<tr[^>]*><th class=\"run\">" + re.escape(label) + r"</th>(.*?)</tr>", page)
    assert m, f"no row {label!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


def test_summary_table_numbers(results_file):
    source, results = load_ablation(results_file)
    page = render_ablation_html(results, source)
    # FADA: seeds 14.0 / 12.0 → mean 13.0, sample std √2 = 1.4; control mean 12.5 → +0.5;
    # gap: source-only 10.5 → oracle 20.5, (13.0 − 10.5) / 10 = 25%
    # paired: FADA − control per seed = (+2.0, −1.0): mean +0.5, std √((1.5² + 1.5²) / 1) = 2.1
    assert _row(page, "fine-grained D (FADA)") == ["13.0 ± 1.4", "14.0 / 12.0", "+0.5", "+0.5 ± 2.1", "25%"]
    assert _row(page, "BN-only control") == ["12.5 ± 0.7", "12.0 / 13.0", "+0.0", "–", "20%"]
    assert _row(page, "source-only (stage 1)") == ["10.5 ± 0.7", "10.0 / 11.0", "-2.0", "-2.0 ± 0.0", "0%"]
    assert _row(page, "oracle (target labels)") == ["20.5 ± 0.7", "20.0 / 21.0", "+8.0", "–", "100%"]  # from scratch
    # runs absent from the file (MinEnt, AdaBN, continue) are not invented
    assert "MinEnt" not in page and "AdaBN (reference)" not in page
    # unpaired and paired: AdaptSegNet (13.0, 13.4) → FADA (14.0, 12.0) is +1.0 on seed 0, −1.4 on seed 1
    assert "over seeds: <b>no</b>" in page and "exceeds their std: <b>no</b>" in page
    assert "train.iters=200" in page and "seeds 0, 1" in page


def test_ordering_verdict_yes_when_steps_exceed_the_spread(results_file):
    results = json.loads(results_file.read_text())
    for seed, v in ((0, 16.0), (1, 16.4)):
        results["runs"][f"{seed}/fgd_ent"] = _run(v)
        results["runs"][f"{seed}/fada"] = _run(v - 1.5)
    page = render_ablation_html(results, results_file)
    assert "over seeds: <b>yes</b>" in page and "exceeds their std: <b>yes</b>" in page


def test_paired_ordering_sees_through_the_stage_one_spread(results_file):
    """Stage-1 models that differ a lot between seeds (source-only 10 / 16) make every run's
    unpaired spread large; a method that is +1.0 above its predecessor on each seed's own
    checkpoint passes the paired rule and fails the unpaired one."""
    from udaseg.reporting.ablation_tables import summarise

    results = json.loads(results_file.read_text())
    for seed, base in ((0, 10.0), (1, 16.0)):
        for i, name in enumerate(("source_only", "adaptsegnet", "fada", "fgd_ent")):
            results["runs"][f"{seed}/{name}"] = _run(base + i + 0.1 * seed)
        results["runs"][f"{seed}/bn_control"] = _run(base + 0.5)
    summary = summarise(results)
    assert summary["paper_order_holds"] is False and summary["paper_order_holds_paired"] is True
    mean, std, n = summary["rows"]["fgd_ent"]["paired_gain"]  # (13.0 − 10.5, 19.1 − 16.5) = (2.5, 2.6)
    assert mean == pytest.approx(2.55) and std == pytest.approx(0.0707107, abs=1e-6) and n == 2


def test_per_class_tables_mark_thin_classes_and_show_ground_truth(results_file):
    source, results = load_ablation(results_file)
    page = render_ablation_html(results, source)
    assert page.count('<th class="cls thin">') == 2 * 3  # pole, light, sign in both class tables
    assert [c for c in re.findall(r'<th class="cls thin"><span>(\w+)</span>', page)][:3] == ["pole", "light", "sign"]
    assert _row(page, "ground truth")[:2] == ["50.0", "2.8"]  # 0.5 / 18 = 2.78%
    # the per-class IoU table's FADA row: 13.0 in every class (mean of 14 and 12)
    tables = page.split("<h2>")
    iou_table = next(t for t in tables if t.startswith("Per-class IoU"))
    assert _row(iou_table, "fine-grained D (FADA)") == ["13.0"] * K
    assert 'alt="mIoU per run" src="data:image/png;base64,' in page


def test_cli_renders_the_file_or_its_folder(results_file, tmp_path):
    for arg in (results_file, results_file.parent):
        out = tmp_path / f"page_{arg.name}.html"
        proc = subprocess.run([sys.executable, "-m", "udaseg", "report", str(arg), "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "13.0 ± 1.4" in out.read_text()
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()
    mixed = subprocess.run([sys.executable, "-m", "udaseg", "report", str(results_file), str(tmp_path / "run"),
                            "--out", str(tmp_path / "x.html")], cwd=REPO, capture_output=True, text=True)
    assert mixed.returncode != 0 and "is an ablation results file; render it on its own" in mixed.stderr


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bad_results_files_are_named(tmp_path):
    bad = tmp_path / "ablation.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"ablation\.json: not valid JSON"):
        load_ablation(bad)
    bad.write_text(json.dumps({"runs": {}}))
    with pytest.raises(ValueError, match="no 'runs' entries"):
        load_ablation(bad)
    run = _run(10.0)
    del run["predicted_fractions"]
    bad.write_text(json.dumps({"runs": {"0/fada": run}}))
    with pytest.raises(ValueError, match=r"ablation\.json: run '0/fada' lacks predicted_fractions"):
        load_ablation(bad)
    bad.write_text(json.dumps({"runs": {"fada": _run(10.0)}}))
    with pytest.raises(ValueError, match=r"run key 'fada' is not '<seed>/<run name>'"):
        load_ablation(bad)
    with pytest.raises(FileNotFoundError, match="ablation results .*missing.json not found"):
        load_ablation(tmp_path / "missing.json")


def test_existing_page_survives_a_failed_render(results_file, tmp_path, monkeypatch):
    import udaseg.reporting.report_ablation as ra

    out = tmp_path / "page.html"
    write_ablation_report(results_file, out)
    before = out.read_bytes()
    monkeypatch.setattr(ra, "miou_chart_png", lambda summary: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_ablation_report(results_file, out)
    assert out.read_bytes() == before


def test_probe_rows_follow_the_ablation_rows(results_file):
    results = json.loads(results_file.read_text())
    results["probes"] = {"ent_low": ["fgd_ent", "method.lambda_ent=0.001"]}
    results["runs"]["0/ent_low"], results["runs"]["1/ent_low"] = _run(15.0), _run(16.0)
    page = render_ablation_html(results, results_file)
    label = "probe ent_low: fgd_ent method.lambda_ent=0.001"
    assert _row(page, label) == ["15.5 ± 0.7", "15.0 / 16.0", "+3.0", "+3.0 ± 0.0", "50%"]
    summary = page.split("<h2>")[1]
    assert summary.index("oracle (target labels)") < summary.index(label)  # after the ablation's own rows


def test_no_ordering_verdict_from_one_seed_or_from_seeds_a_run_lacks(results_file):
    """One seed has no spread; a run missing on a seed cannot be 'above on every seed'. The paired
    cell says on how many seeds it rests when the control lacks some."""
    from udaseg.reporting.ablation_tables import format_markdown, summarise

    results = json.loads(results_file.read_text())
    one = {"runs": {k: v for k, v in results["runs"].items() if k.startswith("0/")}}
    s1 = summarise(one)
    assert s1["paper_order_holds"] is None and s1["paper_order_holds_paired"] is None
    assert "not measured yet" in format_markdown(s1)
    partial = json.loads(results_file.read_text())
    partial["runs"]["2/fgd_ent"] = _run(30.0)  # a third seed for one run only
    s2 = summarise(partial)
    assert s2["paper_order_holds"] is None and s2["paper_order_holds_paired"] is None
    assert s2["rows"]["fgd_ent"]["paired_gain"][2] == 2  # seeds 0 and 1: the control has no seed 2
    row = next(line for line in format_markdown(s2).splitlines() if line.startswith("| fine-grained D + entropy"))
    assert "(n=2)" in row


def test_step_by_step_ordering_table(results_file):
    """Each step of the ordering on its own, from the fixture's numbers by hand."""
    from udaseg.reporting.ablation_tables import format_markdown, summarise

    results = json.loads(results_file.read_text())
    summary = summarise(results)
    steps = {(s["from"], s["to"]): s for s in summary["order_steps"]}
    assert list(steps) == [("source_only", "adaptsegnet"), ("adaptsegnet", "fada"), ("fada", "fgd_ent")]  # no ST rows
    # source-only 10.5 ± 0.71 → AdaptSegNet 13.2 ± 0.28: +2.7 > 0.71; paired +3.0 / +2.4, mean 2.7, std 0.42
    s = steps[("source_only", "adaptsegnet")]
    assert s["diff"] == pytest.approx(2.7) and s["spread"] == pytest.approx(2 ** 0.5 / 2) and s["holds"] is True
    assert s["paired"] == pytest.approx([3.0, 2.4]) and s["paired_std"] == pytest.approx(0.3 * 2 ** 0.5)
    assert s["holds_paired"] is True
    # FADA 13.0 ± 1.41 → paper 13.5 ± 1.41: +0.5 < 1.41 (no); paired +0.5 on both seeds, std 0 (yes)
    s = steps[("fada", "fgd_ent")]
    assert s["holds"] is False and s["holds_paired"] is True and s["paired_std"] == pytest.approx(0.0)
    md = format_markdown(summary)
    assert ("| fine-grained D (FADA) → fine-grained D + entropy (paper) | +0.5 | 1.4 | no | +0.5 / +0.5 "
            "| +0.5 ± 0.0 | yes |") in md
    assert "| AdaptSegNet → fine-grained D (FADA) | -0.2 | 1.4 | no | +1.0 / -1.4 | -0.2 ± 1.7 | no |" in md
    # self-training rows add their steps; one seed gives no verdict
    for seed in (0, 1):
        results["runs"][f"{seed}/fgd_ent_st"] = _run(20.0 + seed)
    steps = {(s["from"], s["to"]): s for s in summarise(results)["order_steps"]}
    assert steps[("fgd_ent", "fgd_ent_st")]["paired"] == pytest.approx([5.5, 8.5])
    one = summarise({"runs": {k: v for k, v in results["runs"].items() if k.startswith("0/")}})
    assert all(s["holds"] is None and s["holds_paired"] is None for s in one["order_steps"])
    assert "– (one seed)" in format_markdown(one)


def test_html_report_shows_the_steps(results_file):
    source, results = load_ablation(results_file)
    page = render_ablation_html(results, source)
    steps = next(t for t in page.split("<h2>") if t.startswith("The ordering step by step"))
    assert _row(steps, "AdaptSegNet → fine-grained D (FADA)") == ["-0.2", "1.4", "no", "+1.0 / -1.4", "-0.2 ± 1.7", "no"]


def test_report_never_replaces_a_file_it_did_not_write(results_file, tmp_path):
    """`udaseg report ... --out runs/x/checkpoints/last.pt` once replaced a checkpoint with HTML."""
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"PK\x03\x04 a torch checkpoint")
    page = tmp_path / "page.html"

    def report(out, *extra):
        return subprocess.run([sys.executable, "-m", "udaseg", "report", str(results_file), "--out", str(out), *extra],
                              cwd=REPO, capture_output=True, text=True)
    for extra in ((), ("--overwrite",)):
        proc = report(ckpt, *extra)
        assert proc.returncode == 2 and ckpt.read_bytes() == b"PK\x03\x04 a torch checkpoint", proc.stderr
    for extra in ((), ("--overwrite",)):  # a checkpoint: no message suggests an --overwrite that is refused too
        err = report(ckpt, *extra).stderr
        assert f"--out {ckpt} exists and is a .pt file, not a report" in err and "even with --overwrite" in err
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert f"--out {notes} exists and is not an HTML page" in report(notes, "--overwrite").stderr
    assert notes.read_text() == "my notes\n"
    assert report(page).returncode == 0
    first = page.read_text()
    refused = report(page)
    assert refused.returncode == 2 and page.read_text() == first
    assert f"--out {page} exists: refusing to replace it (--overwrite replaces an earlier report)" in refused.stderr
    assert report(page, "--overwrite").returncode == 0 and "13.0 ± 1.4" in page.read_text()
    assert "is a folder" in report(tmp_path).stderr


def test_a_diverged_run_is_listed_apart_and_in_no_mean(results_file):
    """A row whose loss turned non-finite on one seed (benchmarks/ablation.py records it instead of
    stopping) has no figures: the means use the seeds that trained, and the tables say which did not."""
    from udaseg.reporting.ablation_tables import format_markdown, summarise

    results = json.loads(results_file.read_text())
    results["runs"]["1/fada"] = {"diverged": "iteration 209: non-finite loss (seg = nan)", "config_digest": "x"}
    results_file.write_text(json.dumps(results))
    summary = summarise(results)
    assert summary["rows"]["fada"]["per_seed"] == [pytest.approx(14.0)] and summary["rows"]["fada"]["n"] == 1
    assert summary["diverged"] == {"1/fada": "iteration 209: non-finite loss (seg = nan)"}
    assert summary["paper_order_holds"] is None  # FADA lacks seed 1: no verdict from unequal seeds
    assert "Diverged (non-finite loss; no figures, left out of every mean above): 1/fada (iteration 209: " \
           "non-finite loss (seg = nan))." in format_markdown(summary)
    source, loaded = load_ablation(results_file)
    page = render_ablation_html(loaded, source)
    assert _row(page, "fine-grained D (FADA)")[:2] == ["14.0 ± 0.0", "14.0"]
    assert "Diverged (non-finite loss; no figures, left out of every mean): 1/fada (iteration 209" in page
