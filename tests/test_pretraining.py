"""The pretraining set (udaseg/pretraining): categories, determinism, and independence from the benchmark."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from udaseg.pretraining import CATEGORIES, PretrainImages, render
from udaseg.pretraining import formula
from udaseg.pretraining import world
from udaseg.pretraining.images import CATEGORY_SETS, MIN_SCALE, N_IFS, _place
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


# what world.py may take from the benchmark: its object models, the camera they draw through, the
# painters' shared state, label codes, material shading and the styles' colours and light
WORLD_MAY_IMPORT = {"udaseg.benchmark.objects", "udaseg.benchmark.camera", "udaseg.benchmark.codes",
                    "udaseg.benchmark.context", "udaseg.benchmark.shading", "udaseg.benchmark.styles"}


def test_the_pretraining_set_uses_nothing_of_the_benchmarks_scenes():
    """No scene, layout, placement, background, sensor or split of the benchmark: the package
    imports only numpy, cv2, torch, the standard library and its own modules; ``world.py``
    besides them exactly the benchmark's object models and what they draw with."""
    allowed_roots = {"numpy", "cv2", "torch", "colorsys", "dataclasses", "functools", "typing", "__future__", "math"}
    for path in PACKAGE.glob("*.py"):
        for name in _imports(path):
            if path.name == "world.py" and name.startswith("udaseg."):
                assert name in WORLD_MAY_IMPORT, f"world.py imports {name}"
                continue
            assert name.startswith(".") or name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"
    assert {n for n in _imports(PACKAGE / "world.py") if n.startswith("udaseg.")} == WORLD_MAY_IMPORT


def test_the_world_set_swaps_only_the_street_objects():
    """street_objects=world: the 23 street categories become 23 of the benchmark world's object
    models; every other category renders bit for bit as in the drawn set (same stream, same code)."""
    drawn, painted = CATEGORY_SETS["drawn"], CATEGORY_SETS["world"]
    assert len(painted) == len(drawn) == 128 and len({c.name for c in painted}) == 128
    assert [c.kind for c in painted[:23]] == ["world"] * 23 and [c.kind for c in drawn[:23]] == ["street"] * 23
    assert [c.name for c in painted[23:]] == [c.name for c in drawn[23:]]
    assert {"car_side", "truck", "bus", "tram", "motorcycle", "bicycle", "cyclist", "person", "pole",
            "traffic_light", "sign", "tree", "building", "fence", "wall", "hedge"} <= {c.name for c in painted[:23]}
    for index in (23, 60, 127 + 128):  # other, superformula, IFS
        assert np.array_equal(render(index, street_objects="world")[0], render(index)[0])
    for index in (0, 9, 22):
        image, label = render(index, street_objects="world")
        assert label == index and image.shape == (96, 96, 3) and not np.array_equal(image, render(index)[0])
        assert np.array_equal(image, render(index, street_objects="world")[0])
    data = PretrainImages("heldout", 2, street_objects="world")
    assert data.num_classes == 128 and np.array_equal(data[0][0].numpy().transpose(1, 2, 0),
                                                      render(0, "heldout", street_objects="world")[0])
    with pytest.raises(ValueError, match="street_objects='photo': expected one of drawn, world"):
        PretrainImages("train", 1, street_objects="photo")


@pytest.mark.parametrize("name", list(world.WORLD_STREET))
def test_every_world_category_photographs_one_whole_object(name):
    """The camera frames the whole object (never cut by the render's border, never a speck), the
    photograph is its box cropped tight, and the same stream gives the same photograph."""
    for i in range(8):
        full_rgb, full_alpha = world.render_object(np.random.default_rng([1, i]), name)
        assert not (full_alpha[0].any() or full_alpha[-1].any() or full_alpha[:, 0].any() or full_alpha[:, -1].any())
        ys, xs = np.nonzero(full_alpha)
        assert max(np.ptp(ys), np.ptp(xs)) + 1 >= 0.2 * world.RENDER
        rgb, alpha = world.photograph(np.random.default_rng([1, i]), name)
        assert np.array_equal(alpha, full_alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
        assert np.array_equal(rgb, full_rgb[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    assert rgb.dtype == alpha.dtype == np.float32 and 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert set(np.unique(alpha)) == {0.0, 1.0} or alpha.min() == 1.0
    layer, mask = world.to_layer(rgb, alpha, 96)
    assert layer.shape == (96, 96, 3) and mask.shape == (96, 96) and mask.dtype == np.uint8
    ys, xs = np.nonzero(mask > 127)
    # the longer side fills 90% of the layer (to within the resampling's pixel), centred
    assert max(np.ptp(ys), np.ptp(xs)) + 1 == pytest.approx(0.9 * 96, abs=2)
    assert (ys.min() + ys.max()) / 2 == pytest.approx(47.5, abs=2) and (xs.min() + xs.max()) / 2 == pytest.approx(47.5, abs=2)
