"""The package's layout: the embedded benchmark's bytes survive the reorganisation, the library
does not depend on the applications, and the old import paths still work for one release.

- ``test_embedded_benchmark_bytes_are_unchanged``: a small benchmark written with a fixed seed has
  exactly the SHA-256 digests recorded here (recorded from the code before the benchmark writer
  and the scene generator were moved into :mod:`udaseg.benchmark`). A move that changes a single
  byte of a scene, a label file, DATA.md or the manifest fails it. (The digests also depend on the
  pinned OpenCV/Pillow PNG encoders: a dependency bump that changes them is re-recorded here, and so
  is a DEMO_VERSION bump that changes the benchmark on purpose: version 2 kept every version-1 scene
  byte for byte, changed only DATA.md and manifest.json, and added the dev and held-out files.)
- ``test_library_imports_no_application``: the library (``udaseg.data``, ``.models``, ``.methods``,
  ``.engine``, ``.losses``, ``.config``) imports nothing from ``udaseg.apps``, ``udaseg.reporting``
  or ``udaseg.benchmark`` (nor from the old paths that re-export them) — every import statement,
  function-local ones included, read with ``ast``.
- ``test_reporting_only_renders``: ``udaseg.reporting`` imports only what a renderer needs (results
  type, labels, atomic write), name by name: no inference, checkpoint loading or models.
"""
import ast
import hashlib
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from udaseg.benchmark.writer import write_demo

# relative path -> SHA-256 of write_demo(root, seed=0, n_source=3, n_target_train=2, n_target_val=2,
# workers=1, progress=False, n_synthia=2, n_target_dev=2, n_source_heldout=2), default image sizes.
# Re-recorded for DEMO_VERSION 2 (dev split, held-out source): every file of version 1 kept its
# digest except DATA.md and manifest.json (new rows, counts and object tables); the dev and
# held-out files are new.
DIGESTS = {
        ".udaseg-demo":
            "609ce7a18bc7b6813d3a6ec0c580dd3a082128312dc24c54f3ed191bd1855f10",
        "DATA.md":
            "c2ed07f1e788d5c3b61da2a2d86067eaa4965b5b5690fca4851ef9bc58c31d46",
        "cityscapes/gtFine/dev/darmstadt/darmstadt_000000_000019_gtFine_color.png":
            "bc14d2dfc04cbd29b51cbdd6591baea02875017b125a166ff87fce0e2ea96cc8",
        "cityscapes/gtFine/dev/darmstadt/darmstadt_000000_000019_gtFine_labelIds.png":
            "f2b91fd204eeb1abef5f03c660c362e9f1d6c17728fd50ec64e0c04f29471507",
        "cityscapes/gtFine/dev/jena/jena_000000_000019_gtFine_color.png":
            "db5b4152122f688ccb053e84fc67b500eff35c26dda4564fdf7f32d9311e983e",
        "cityscapes/gtFine/dev/jena/jena_000000_000019_gtFine_labelIds.png":
            "1edf527611c673bab8149d981baee58c351a201b17cd58d44de5012b58ff7f86",
        "cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_color.png":
            "78db2e334ce375e1ed132019514c8ee52fa0a5c0e134616c8dc169576248bea7",
        "cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png":
            "93b83a334c1606a078ab7950d17c3f1fcbadd44fe8804bb50ad8d1e36a3a3986",
        "cityscapes/gtFine/train/bochum/bochum_000000_000019_gtFine_color.png":
            "d20b641302b4a75f1afc2a0c0ebef8d0ad0d136fee9db049debb3d1bd378af29",
        "cityscapes/gtFine/train/bochum/bochum_000000_000019_gtFine_labelIds.png":
            "e66eddda1b0bb5d3325415ec7494005fee54959967363c4de35a865380790b7d",
        "cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_color.png":
            "e3a0488fc296a588b755ca11717c9411807543a3bbc5ce206a13c087acfad487",
        "cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png":
            "46157136b057a03dbc052ae10073410a2346baae693126905a31673303e3081b",
        "cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_color.png":
            "b9a7b5d69dfe7cf9b0a496c53110e55a468b1eb34756f17bae8b64b772a5a582",
        "cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png":
            "8255aa90f8cf94b3fb286848143ce4365d86b636b2ab190e851a93cce5fc2ef9",
        "cityscapes/leftImg8bit/dev/darmstadt/darmstadt_000000_000019_leftImg8bit.png":
            "5cc9b7132ad7c0c3c5ecdb448fcbadfff63524cf7cb3c950c74fcd66d046c255",
        "cityscapes/leftImg8bit/dev/jena/jena_000000_000019_leftImg8bit.png":
            "c84e302e1f5ebd130cd02416e8753f7ecaa7eec01fe9f1c3f3ff873b6ad27fb1",
        "cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png":
            "dd20fac5a9542c76f6533a82051754e4ae69fa6edbb45674263d7f34ff99b76d",
        "cityscapes/leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png":
            "ea6799bc0ec2c70ed6661e8d97a19a0a426a021110ee5a0b8b0636c11ebcfc3e",
        "cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png":
            "76cb1f014d99e08e551bc55e0a3e18c91e4f09d607bcae4c3dc0c613a80503f2",
        "cityscapes/leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png":
            "9ff4526605095d084bff2ebe39c7bdaac5de0df612a3135e1323448cbc7e086a",
        "gta5/heldout.txt":
            "ac111fb47b8e4145dedbcdf37d9befff9345a8f071d2589da99531121205111f",
        "gta5/images/00001.png":
            "2e0e223a20ed3398632a7c82e9e2367875dcbaf8483550675698d34e1f47938a",
        "gta5/images/00002.png":
            "65ed78b5a77999d1f07c737a9a747de57b3975e0404cae9feec039adf1744e6b",
        "gta5/images/00003.png":
            "b3b0782a1b3d2622a98ccbdb6af59da38fa3ed4bb4b26092be0d2171ba5c0d34",
        "gta5/images/00004.png":
            "a2b01e2f9b8b069324818e2e60d04e649df4b9d7c796dad1bfe45a1b88eb32d8",
        "gta5/images/00005.png":
            "79f8dc358ad8cacf65961799864b0c45009326263e1051a5a48ce419dc461547",
        "gta5/labels/00001.png":
            "f3e8d6ad05f283ea34a627bee212380c2b13b879819f3ca12cbf68028734469a",
        "gta5/labels/00002.png":
            "ba4a7f8e789f97ea10ee27e752f1a195853ad3c4d2f4d831dbce949360de2ef3",
        "gta5/labels/00003.png":
            "fbbb50e9669b01863aa42c7c2b080e201bf98024726ec57ecd0017aa7f0a2f2c",
        "gta5/labels/00004.png":
            "de97eebb7a626df2aadfcc823e1e35fb1f04dbecfa815da39f9613c806c5b724",
        "gta5/labels/00005.png":
            "f6f9558a6fdbcda53ba1d941372dd5cfa2f3c948cda7c3df9366d19e978bbefe",
        "gta5/train.txt":
            "dedde5c44deaa234f9b0451c977ae14926f69a6870e8162ab08bb02fdb9f1e3c",
        "manifest.json":
            "7eb49fb4a6a9729790ba27e145eb58a27918d6fd47c41dd9a72206422c7ce99e",
        "synthia/GT/LABELS/0000001.png":
            "1deb020ca9a32313ee4752a85e399cf76c3e2b6f82708751c2cdcf5f04302639",
        "synthia/GT/LABELS/0000002.png":
            "72c946afc7b95fcdf55643dfd467354d9249001251b9798607430b31218ead44",
        "synthia/RGB/0000001.png":
            "2e0e223a20ed3398632a7c82e9e2367875dcbaf8483550675698d34e1f47938a",
        "synthia/RGB/0000002.png":
            "65ed78b5a77999d1f07c737a9a747de57b3975e0404cae9feec039adf1744e6b",
        "synthia/train.txt":
            "676f2da01aed383f92a4e2b952f8476fb6eeb9144200978017da7f42e8737c6e",
    }


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_embedded_benchmark_bytes_are_unchanged(tmp_path):
    root = tmp_path / "bench"
    write_demo(root, seed=0, n_source=3, n_target_train=2, n_target_val=2, workers=1, progress=False, n_synthia=2,
               n_target_dev=2, n_source_heldout=2)
    got = _digests(root)
    assert sorted(got) == sorted(DIGESTS)
    assert [name for name in DIGESTS if got[name] != DIGESTS[name]] == []


# ------------------------------------------------------------------------------ import direction

PACKAGE = Path(__file__).resolve().parents[1] / "udaseg"
LIBRARY = ("data", "models", "methods", "engine", "losses.py", "config.py", "__init__.py")
OUTSIDE = ("udaseg.apps", "udaseg.reporting", "udaseg.benchmark")
# old path -> new module: re-exports kept for one release (they import the new places, so they are
# not library modules even where they sit in a library folder, and no library module may use them)
MOVED = {
    "udaseg.cli": "udaseg.apps.cli",
    "udaseg.cli_eval": "udaseg.apps.cli_eval",
    "udaseg.pipeline": "udaseg.apps.pipeline",
    "udaseg.ablation": "udaseg.apps.ablation",
    "udaseg.predict": "udaseg.apps.predict",
    "udaseg.report": "udaseg.reporting.report",
    "udaseg.report_ablation": "udaseg.reporting.report_ablation",
    "udaseg.viz": "udaseg.reporting.viz",
    "udaseg.data.demo": "udaseg.benchmark.writer",
    "udaseg.data.demo_scene": "udaseg.benchmark.scene",
}
FORBIDDEN = OUTSIDE + tuple(MOVED)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_pairs(source: str, module: str, is_package: bool = False) -> list[tuple[str, str | None]]:
    """(module, name) of every import statement (at any depth) and constant importlib.import_module /
    __import__ call in ``source``: ``from a import b`` gives ("a", "b") (b may be a submodule),
    ``import a`` and the calls ("a", None). Relative imports are resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    pairs = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            pairs += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            pairs += [(base, a.name) for a in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            pairs.append((node.args[0].value, None))
    return pairs


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module :func:`import_pairs` names; ``from a import b`` gives both ``a`` and ``a.b``."""
    found = set()
    for mod, name in import_pairs(source, module, is_package):
        found.add(mod)
        if name is not None and name != "*":
            found.add(f"{mod}.{name}")
    return found


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def library_files() -> list[Path]:
    files = []
    for part in LIBRARY:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    reexports = {PACKAGE.parent.joinpath(*old.split(".")).with_suffix(".py") for old in MOVED}
    return [f for f in files if f not in reexports]


def test_import_scanner_sees_local_relative_and_dynamic_imports():
    src = """
import os
from . import viz
from ..apps import cli
def f():
    from udaseg.benchmark.writer import write_demo
    import udaseg.reporting.report as r
    return importlib.import_module("udaseg.apps.pipeline")
"""
    found = imported_modules(src, "udaseg.data.x")
    assert {"os", "udaseg.data.viz", "udaseg.apps", "udaseg.apps.cli", "udaseg.benchmark.writer",
            "udaseg.reporting.report", "udaseg.apps.pipeline"} <= found
    assert imported_modules("from .backbones import ResNetBackbone", "udaseg.models", is_package=True) \
        == {"udaseg.models.backbones", "udaseg.models.backbones.ResNetBackbone"}
    assert _forbidden("udaseg.viz") and _forbidden("udaseg.apps.cli") and not _forbidden("udaseg.data.labels")


def test_library_imports_no_application():
    files = library_files()
    assert PACKAGE / "engine" / "trainer.py" in files and PACKAGE / "losses.py" in files
    bad = []
    for path in files:
        module = _module_name(path)
        for name in sorted(imported_modules(path.read_text(), module, path.name == "__init__.py")):
            if _forbidden(name):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert bad == []


def test_reporting_imports_no_application():
    """Reports render results; the applications (CLI, demo job, ablation runner) use them, not
    the other way round."""
    files = sorted((PACKAGE / "reporting").rglob("*.py"))
    assert PACKAGE / "reporting" / "report_ablation.py" in files
    bad = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in files
           for name in sorted(imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py"))
           if name == "udaseg.apps" or name.startswith("udaseg.apps.")]
    assert bad == []


# what a renderer may use of the package: results and labels in, pages out (None: any name of it)
REPORTING_MAY_IMPORT = {
    "udaseg.data": None, "udaseg.losses": None, "udaseg.reporting": None,
    "udaseg.engine.evaluation": {"EvalResult", "class_labels", "protocol_legend"},  # the results type
    "udaseg.engine.checkpoint": {"atomic_write_text"},
}


def _may_import(module: str, name: str | None = None) -> bool:
    for prefix, names in REPORTING_MAY_IMPORT.items():
        if module == prefix or module.startswith(prefix + "."):
            return names is None or (module == prefix and name in names)
    return False


def renderer_import_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Each ``udaseg`` import in ``source`` (at any depth, relative and dynamic ones included)
    outside REPORTING_MAY_IMPORT, as ``module`` or ``module:name``."""
    bad = []
    for mod, name in import_pairs(source, module, is_package):
        if mod != "udaseg" and not mod.startswith("udaseg."):
            continue
        # "from a import b": b is a name of a, or a submodule imported whole
        ok = _may_import(mod) if name is None else (_may_import(mod, name) or _may_import(f"{mod}.{name}"))
        if not ok:
            bad.append(mod if name is None else f"{mod}:{name}")
    return bad


def test_renderer_import_check_catches_the_old_report():
    """The imports report.py had while it ran the model (and ways around the check) are refused."""
    old = """
from udaseg.data import labels as Lb
from udaseg.engine.evaluation import EvalResult, class_labels, protocol_legend
from udaseg.engine.inference import forward_options, predict_probs
from udaseg.reporting import viz
def write_report():
    from udaseg.engine.checkpoint import atomic_write_text, load_checkpoint
    from udaseg.engine.builders import load_segmentor
    from ..engine.eval_checkpoints import BEST_NOTE
    import udaseg.engine.evaluation
    from udaseg import engine, data
    from udaseg.engine.evaluation import *
    return importlib.import_module("udaseg.models")
"""
    assert renderer_import_violations(old, "udaseg.reporting.report") == [
        "udaseg.engine.inference:forward_options", "udaseg.engine.inference:predict_probs",
        "udaseg.engine.checkpoint:load_checkpoint", "udaseg.engine.builders:load_segmentor",
        "udaseg.engine.eval_checkpoints:BEST_NOTE", "udaseg.engine.evaluation", "udaseg:engine",
        "udaseg.engine.evaluation:*", "udaseg.models"]


def test_reporting_only_renders():
    """No model runs inside ``udaseg/reporting/``: it imports nothing of training, inference,
    checkpoint loading or the models (``apps/report_runs.py`` evaluates, then renders)."""
    files = sorted((PACKAGE / "reporting").rglob("*.py"))
    assert PACKAGE / "reporting" / "page.py" in files
    bad = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in files
           for name in renderer_import_violations(path.read_text(), _module_name(path), path.name == "__init__.py")]
    assert bad == []


def test_reports_and_applications_import_no_private_names():
    """Shared parts are public where they live (``reporting/page.py``): report_ablation once
    borrowed report.py's ``_CSS``/``_figure``/..., so changing one report broke the other."""
    bad = []
    for path in sorted((PACKAGE / "reporting").rglob("*.py")) + sorted((PACKAGE / "apps").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                bad += [f"{path.relative_to(PACKAGE.parent)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert bad == []


TRAINING_LOOP = ("trainer.py", "run_state.py", "step.py", "train_data.py")


def test_one_iteration_reads_in_small_files_that_name_no_component():
    """The loop, the run state and the step each fit in ~300 lines, and none of them names a
    component: self-training (and what comes next) plugs in through ``engine/component.py``'s
    hooks, so any method × any component needs no branch there."""
    for name in TRAINING_LOOP:
        text = (PACKAGE / "engine" / name).read_text()
        assert len(text.splitlines()) <= 300, name
        for word in (r"self_training", r"SelfTraining", r"mean_teacher", r"\.st\b", r"feature_distance",
                     r"FeatureDistance", r"feat_dist"):
            assert not re.search(word, text), f"engine/{name} names {word!r}"


# ------------------------------------------------------------------------- old paths still work


def _defined_names(module) -> list[str]:
    """The names a module's own top-level statements bind (functions, classes, assignments)."""
    names = []
    for node in ast.parse(Path(module.__file__).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and n.id != "__all__"]
    return names


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_path_reexports_the_moved_module(old):
    """Every name the moved module defines, private ones included, is the same object at the old path."""
    new_module, old_module = importlib.import_module(MOVED[old]), importlib.import_module(old)
    assert "this re-export goes in the next release" in old_module.__doc__
    own = _defined_names(new_module)
    assert own and [n for n in own if getattr(old_module, n, None) is not getattr(new_module, n)] == []


# every name udaseg/report.py had before reporting stopped running models
OLD_REPORT_NAMES = (
    "_PROTO_ORDER", "RunInfo", "load_run", "_img_tag", "_pct", "_protocol_keys", "iou_table_html", "_diff_cell",
    "diff_table_html", "fractions_table_html", "runs_table_html", "_figure", "_fig_png", "_run_colours",
    "bar_chart_png", "_smooth", "_series", "_NOT_LOSSES", "_curve_keys", "curves_png", "pick_indices",
    "grid_predictions", "legend_html", "grid_html", "_CSS", "write_report", "render_html")


def test_old_report_path_keeps_the_names_that_moved_on():
    """write_report & co. went on to apps/report_runs.py, the page parts to reporting/page.py:
    ``udaseg.report`` still has them all, as the objects at their new homes."""
    import udaseg.apps.report_runs as runs
    import udaseg.reporting.page as page
    old = importlib.import_module("udaseg.report")
    assert [n for n in OLD_REPORT_NAMES if not hasattr(old, n)] == []
    assert (old.write_report, old.grid_predictions, old.load_run) == (runs.write_report, runs.grid_predictions,
                                                                      runs.load_run)
    assert (old._CSS, old._figure, old._fig_png, old._img_tag) == (page.CSS, page.figure, page.fig_png, page.img_tag)


def test_demo_scene_reexports_every_generator_module():
    old = importlib.import_module("udaseg.data.demo_scene")
    for name in ("codes", "styles", "camera", "layout", "context", "background", "objects", "placement", "shading",
                 "sensor", "scene"):
        module = importlib.import_module(f"udaseg.benchmark.{name}")
        assert [n for n in _defined_names(module) if getattr(old, n, None) is not getattr(module, n)] == [], name


def test_entry_points():
    root = PACKAGE.parent
    script = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["udaseg"]
    module, _, func = script.partition(":")
    from udaseg.apps.cli import main

    assert getattr(importlib.import_module(module), func) is main
    assert importlib.import_module("udaseg.__main__").main is main
    for entry in ("udaseg", "udaseg.cli"):  # python -m udaseg; torchrun -m udaseg.cli (the old path)
        proc = subprocess.run([sys.executable, "-m", entry, "--help"], cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: udaseg"), proc.stderr
