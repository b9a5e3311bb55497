"""The dev grid's plan: equal-sized grids, tied auxiliary weights, parents chosen before children."""
import pytest

from fixtures import fake_last_checkpoint
from udaseg.apps import dev_grid as G
from udaseg.config import load_config


def _result(method, value, miou, parent_overrides=()):
    name = G.point_name(method, value)
    return f"{method}/{name}", {"name": name, "overrides": [*parent_overrides, *G.point_overrides(method, value)],
                                "dev_miou": miou}


def test_every_method_varies_one_weight_over_three_values():
    assert all(len(spec["vary"][1]) == 3 for spec in G.GRID.values())
    for method, spec in G.GRID.items():  # parents come first, so one pass in GRID order can run them
        for parent in spec.get("inherit", ()):
            assert list(G.GRID).index(parent) < list(G.GRID).index(method)


def test_point_overrides_tie_the_auxiliary_weight_by_the_references_ratio():
    assert G.point_overrides("adaptsegnet", 0.001) == ["method.lambda_adv=0.001", "method.lambda_adv_aux=0.0002"]
    assert G.point_overrides("fada", 0.01) == ["method.lambda_adv=0.01"]
    assert G.point_name("minent", 0.1) == "lambda_ent=0.1"


def test_every_grid_point_is_a_valid_config():
    for method, _name, extra in G.plan({"runs": {}}, [m for m in G.GRID if not G.GRID[m].get("inherit")]):
        cfg = load_config(f"configs/demo/{method}.yaml", extra)
        key, _ = G.GRID[method]["vary"]
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert f"{key}={node}" in extra or f"{key}={node:g}" in extra


def test_children_wait_for_their_parents_and_inherit_the_chosen_weights():
    results = {"runs": {}}
    first = G.plan(results, ["fada", "fgd_ent"])
    assert [m for m, _, _ in first] == ["fada"] * 3  # fgd_ent waits for fada's whole grid
    for value, miou in zip((1e-3, 1e-2, 1e-1), (0.30, 0.34, 0.31)):
        k, r = _result("fada", value, miou)
        results["runs"][k] = r
        if value != 1e-1:
            assert G.chosen(results, "fada") is None  # not all points ran yet
    assert G.chosen(results, "fada") == {"overrides": ["method.lambda_adv=0.01"], "dev_miou": 0.34,
                                         "name": "lambda_adv=0.01"}
    child = [p for p in G.plan(results, ["fada", "fgd_ent"]) if p[0] == "fgd_ent"]
    assert [name for _, name, _ in child] == ["lambda_ent=0.001", "lambda_ent=0.01", "lambda_ent=0.1"]
    assert child[2][2] == ["method.lambda_adv=0.01", "method.lambda_ent=0.1", "method.lambda_ent_aux=0.02"]


def test_dev_config_evaluates_the_dev_section():
    cfg = load_config("configs/demo/source_only.yaml")
    dev = G.dev_config(cfg)
    assert dev["data"]["val"]["split"] == "dev" and cfg["data"]["val"]["split"] == "val"


def test_unknown_method_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="no dev grid for bn_control"):
        G.run_grid(tmp_path, tmp_path, methods=("bn_control",))


def test_a_result_of_another_config_is_refused(tmp_path):
    """Study results are keyed by name; the config digest says whether a stored one is this config's."""
    import yaml

    from udaseg.apps.ablation import check_measured
    from udaseg.engine.run_dir import config_digest

    cfg = load_config("configs/demo/fada.yaml")
    results = {"runs": {"0/fada": {"miou": 0.3, "config_digest": config_digest(cfg)}}}
    assert check_measured(results, "0/fada", cfg, "a.json") is True
    assert check_measured(results, "0/minent", cfg, "a.json") is False  # not measured yet
    other = load_config("configs/demo/fada.yaml", ["method.lambda_adv=0.5"])  # not the file's value
    with pytest.raises(ValueError, match="a.json: 0/fada was measured with another config"):
        check_measured(results, "0/fada", other, "a.json")
    # resume-safe keys (logging, threads, the validation split) do not change the digest
    assert config_digest(load_config("configs/demo/fada.yaml", ["train.log_every=7", "train.threads=1"])) \
        == config_digest(cfg)
    # a result from before digests: the run directory's config.yaml decides, and the digest is kept
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    old = {"runs": {"0/fada": {"miou": 0.3}}}
    assert check_measured(old, "0/fada", cfg, "a.json", tmp_path) is True
    assert old["runs"]["0/fada"]["config_digest"] == config_digest(cfg)
    with pytest.raises(ValueError, match="measured with another config"):
        check_measured({"runs": {"0/fada": {"miou": 0.3}}}, "0/fada", other, "a.json", tmp_path)
    with pytest.raises(ValueError, match="measured with another config"):  # no digest, no run directory
        check_measured({"runs": {"0/fada": {"miou": 0.3}}}, "0/fada", cfg, "a.json")


def test_bad_probes_are_refused_before_anything_trains(tmp_path):
    """A typo in a probe's method or key, or a name given twice, fails at once, naming the probe."""
    with pytest.raises(ValueError, match="probe p1: no demo config for method 'fgd_entt'"):
        G.run_grid(tmp_path, tmp_path, methods=(), probes=[("p1", "fgd_entt", [])])
    with pytest.raises(ValueError, match=r"probe p2: unknown config key 'method.lambda_advv'"):
        G.run_grid(tmp_path, tmp_path, methods=(), probes=[("p2", "fada", ["method.lambda_advv=0.1"])])
    with pytest.raises(ValueError, match="probe name.s. given twice: p3"):
        G.run_grid(tmp_path, tmp_path, methods=(), probes=[("p3", "fada", []), ("p3", "fgd_ent", [])])
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_the_table_names_inherited_weights_and_the_tie_not_one_point_s_tied_value():
    results = {"seed": 3, "runs": dict(_result("fgd_ent", v, m, ["method.lambda_adv=0.01"])
                                       for v, m in ((1e-3, 0.20), (1e-2, 0.22), (1e-1, 0.21)))}
    row = next(line for line in G.format_markdown(results).splitlines() if line.startswith("| fgd_ent"))
    assert row == ("| fgd_ent | method.lambda_ent | method.lambda_adv=0.01 method.lambda_ent_aux = 0.2 × lambda_ent "
                   "| 0.001: 20.0 / **0.01: 22.0** / 0.1: 21.0 | 6 |")


def test_superseded_runs_are_shown_apart_and_never_chosen():
    results = {"seed": 3, "runs": dict(_result("dacs", v, m, []) for v, m in ((0.3, 0.26), (1.0, 0.27), (3.0, 0.26)))}
    results["superseded"] = {"dacs/weight=1 (eval-mode teacher)": {"dev_miou": 0.40, "why": "another teacher"}}
    assert G.chosen(results, "dacs")["dev_miou"] == 0.27
    text = G.format_markdown(results)
    assert "**1: 27.0**" in text
    assert text.splitlines()[-1] == "| dacs/weight=1 (eval-mode teacher) | another teacher | 40.0 |"


def test_probes_alone_get_no_empty_grid_table():
    probe = {"method": "fada", "overrides": ["train.iters=1200"], "dev_miou": 0.244}
    text = G.format_markdown({"seed": 0, "runs": {}, "probes": {"fada_1200": probe}, "stage1": {"dev_miou": 0.15}})
    assert "| method | varied" not in text and "itself: 15.0." in text
    assert text.splitlines()[-1] == "| fada_1200 | fada | train.iters=1200 | 24.4 |"
    with_grid = {"seed": 3, "runs": dict(_result("dacs", v, m, []) for v, m in ((0.3, 0.26), (1.0, 0.27), (3.0, 0.26)))}
    assert "| method | varied" in G.format_markdown(with_grid)


def test_a_diverged_point_is_recorded_never_chosen_and_the_grid_goes_on(tmp_path, monkeypatch):
    """DACS at weight 3 diverged in the v3 grid (NaN at iteration 209) and ended the whole grid;
    now the point is kept as diverged, the others are chosen from, and children still run."""
    from pathlib import Path

    import udaseg.apps.ablation
    import udaseg.engine.stages
    from udaseg.engine.step import NonFiniteLossError

    trained = []

    def fake_run_training(cfg, run_dir, resume=False, progress=False):
        trained.append(Path(run_dir).relative_to(tmp_path).as_posix())
        if cfg["method"].get("lambda_adv") == 0.1 and cfg["method"]["name"] == "fada":
            raise NonFiniteLossError("iteration 9: non-finite loss (seg = nan)")
        return {"main": {"last": fake_last_checkpoint(run_dir)}}

    scores = iter([0.15, 0.16, 0.17, 0.18, 0.19, 0.20])  # stage 1, fada 1e-3 / 1e-2, fgd_ent x3
    monkeypatch.setattr(udaseg.engine.stages, "run_training", fake_run_training)
    monkeypatch.setattr(udaseg.apps.ablation, "evaluate_checkpoint",
                        lambda ckpt, cfg, adabn=False: {"miou": next(scores), "iou": [0.0] * 19})
    lines = []
    results = G.run_grid(tmp_path / "d", tmp_path / "out", methods=("fada", "fgd_ent"), log=lines.append)
    diverged = results["runs"]["fada/lambda_adv=0.1"]
    assert diverged["diverged"] == "iteration 9: non-finite loss (seg = nan)" and "dev_miou" not in diverged
    assert "  diverged: iteration 9: non-finite loss (seg = nan)" in lines
    assert G.chosen(results, "fada")["name"] == "lambda_adv=0.01"  # the best of the points that trained
    assert trained[-3:] == [f"out/fgd_ent/lambda_ent={v}" for v in ("0.001", "0.01", "0.1")]  # the child ran
    assert all(r["overrides"][0] == "method.lambda_adv=0.01" for k, r in results["runs"].items() if k.startswith("fgd_ent"))
    text = (tmp_path / "out" / "GRID.md").read_text()
    assert "| 0.001: 16.0 / **0.01: 17.0** / 0.1: diverged |" in text
    # re-running skips the diverged point like any measured one
    trained.clear()
    G.run_grid(tmp_path / "d", tmp_path / "out", methods=("fada", "fgd_ent"), log=lines.append)
    assert trained == ["out/source_only"]


def test_a_method_whose_every_point_diverged_has_nothing_chosen():
    results = {"runs": {f"fada/{G.point_name('fada', v)}": {"name": G.point_name("fada", v), "overrides": [],
                                                          "diverged": "nan"} for v in (1e-3, 1e-2, 1e-1)}}
    assert G.chosen(results, "fada") is None
    assert "0.001: diverged / 0.01: diverged / 0.1: diverged" in G.format_markdown(results)
