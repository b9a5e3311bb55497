"""The pretraining set (udaseg/pretraining): categories, determinism, and independence from the benchmark."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from udaseg.pretraining import CATEGORIES, PretrainImages, render
from udaseg.pretraining import formula
from udaseg.pretraining.images import MIN_SCALE, N_IFS, _place
from udaseg.pretraining.pen import Pen

PACKAGE = Path(__file__).resolve().parents[1] / "udaseg" / "pretraining"


def test_at_least_100_categories_with_the_street_objects_among_many_others():
    names = [c.name for c in CATEGORIES]
    assert len(names) == 128 and len(set(names)) == 128
    street = {c.name for c in CATEGORIES if c.kind == "street"}
    # an object of every "thing" class and of the street's stuff that has a shape of its own
    assert {"car_side", "car_rear", "truck", "bus", "tram", "motorcycle", "bicycle", "person", "rider", "pole",
            "traffic_light", "sign_round", "tree", "building", "fence", "brick_wall"} <= street
    assert sum(c.kind != "street" for c in CATEGORIES) >= 100  # most are not street objects, as in ImageNet


def test_an_image_is_a_function_of_seed_split_and_index():
    a, label = render(133)
    b, _ = render(133)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert label == 133 % 128 == 5
    assert not np.array_equal(a, render(133, seed=1)[0])
    assert not np.array_equal(a, render(133, split="heldout")[0])
    assert a.std() > 5  # not a blank frame


def test_the_dataset_continues_the_stream_at_its_offset():
    data = PretrainImages("train", 3, seed=2, size=48, offset=10)
    image, label = data[1]
    expected, expected_label = render(11, "train", 2, 48)
    assert tuple(image.shape) == (3, 48, 48)
    assert np.array_equal(image.numpy().transpose(1, 2, 0), expected) and label == expected_label == 11
    assert len(data) == 3


def _object_scale(m: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # rotation and mirror keep |det| = scale²


def test_objects_span_min_scale_to_the_whole_frame():
    rng = np.random.default_rng(0)
    default = [_object_scale(_place(rng, "street", 96)) for _ in range(400)]
    small = [_object_scale(_place(rng, "ifs", 96, min_scale=0.1)) for _ in range(400)]
    assert MIN_SCALE == 0.45 and 0.45 <= min(default) < 0.47 and 0.98 < max(default) <= 1.0
    assert 0.1 <= min(small) < 0.12 and 0.98 < max(small) <= 1.0
    assert np.mean(np.array(small) < 0.45) == pytest.approx(0.35 / 0.9, abs=0.08)  # uniform over [0.1, 1]
    with pytest.raises(ValueError, match=r"min_scale=0: .* in \(0, 1\]"):
        PretrainImages("train", 1, min_scale=0)


def test_a_bad_split_is_refused_by_name():
    with pytest.raises(ValueError, match="'val'.*train, heldout"):
        render(0, split="val")
    with pytest.raises(ValueError, match="'test'"):
        PretrainImages("test", 1)


def test_every_ifs_category_is_contractive_and_fills_its_box():
    for i in range(N_IFS):
        maps = formula.ifs_category(i)
        assert 2 <= len(maps) <= 8
        assert max(np.linalg.norm(m[:4].reshape(2, 2), 2) for m in maps) < 0.95
        assert formula.filling_rate(formula.attractor(maps, np.random.default_rng(0))) >= formula.MIN_FILLING_RATE


def test_categories_depend_on_their_index_alone():
    formula.ifs_category.cache_clear()
    first = formula.ifs_category(7).copy()
    formula.ifs_category.cache_clear()
    assert np.array_equal(first, formula.ifs_category(7))
    assert formula.superformula_category(3) != formula.superformula_category(4)


def test_a_filled_rectangle_covers_its_area_to_within_its_edge():
    pen = Pen(96)
    pen.rect(0.25, 0.25, 0.75, 0.75, (200, 10, 10))
    area = pen.mask.sum() / 255.0
    # 48 × 48 pixels exactly; anti-aliasing can misplace at most one pixel per edge pixel (4 × 48)
    assert abs(area - 48 * 48) <= 4 * 48
    assert tuple(pen.rgb[48, 48]) == (200, 10, 10) and pen.mask[48, 48] == 255 and pen.mask[5, 5] == 0


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_the_pretraining_set_uses_nothing_of_the_benchmark():
    """No scene, layout, camera or split of the benchmark: the package imports only numpy, cv2,
    torch, the standard library and its own modules."""
    allowed_roots = {"numpy", "cv2", "torch", "colorsys", "dataclasses", "functools", "typing", "__future__"}
    for path in PACKAGE.glob("*.py"):
        for name in _imports(path):
            assert name.startswith(".") or name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"
