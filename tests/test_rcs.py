"""Rare-class sampling (udaseg.data.rcs): class statistics and their cache, the DAFormer class
distribution, the seeded resumable sampler, and the crop re-draw wrapper."""
import math
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fixtures import _palette_png, _rgb
from udaseg.data import labels as L
from udaseg.data import rcs
from udaseg.data.datasets import gta5
from udaseg.data.transforms import Compose, RandomCrop

ROAD, SIDEWALK, CAR, BICYCLE = 7, 8, 26, 33  # labelIds → trainIds 0, 1, 13, 18


def _write_gta(root, labels):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, ids in enumerate(labels, 1):
        Image.fromarray(_rgb(*ids.shape, f"rcs/{i}")).save(root / "images" / f"{i:05d}.png")
        _palette_png(root / "labels" / f"{i:05d}.png", ids)


def _labels(h=16, w=20):
    """Image 1: road + a 4×5 car; image 2: road + sidewalk half + void row; image 3: all road
    + a 2×2 bicycle; image 4: sidewalk + 6×5 car."""
    a = np.full((h, w), ROAD, np.uint8)
    a[:4, :5] = CAR
    b = np.full((h, w), ROAD, np.uint8)
    b[:, w // 2:] = SIDEWALK
    b[0] = 0  # void → ignore
    c = np.full((h, w), ROAD, np.uint8)
    c[5:7, 5:7] = BICYCLE
    d = np.full((h, w), SIDEWALK, np.uint8)
    d[10:16, :5] = CAR
    return [a, b, c, d]


def _expected_counts(labels, k=19):
    out = np.zeros((len(labels), k), np.int64)
    for i, ids in enumerate(labels):
        t, _ = L.map_labels(ids, L.LABELID_TO_TRAINID, L.MAX_LABELID)
        out[i] = np.bincount(t.ravel(), minlength=256)[:k]
    return out


@pytest.fixture
def gta(tmp_path, monkeypatch):
    monkeypatch.setenv("UDASEG_CACHE", str(tmp_path / "cache"))
    labels = _labels()
    _write_gta(tmp_path / "gta", labels)
    return tmp_path / "gta", labels


def _count_reads(monkeypatch):
    calls = []
    real = rcs._label_of

    def counting(dataset, index):
        calls.append(index)
        return real(dataset, index)

    monkeypatch.setattr(rcs, "_label_of", counting)
    return calls


# -- statistics --------------------------------------------------------------------------------

def test_class_pixel_stats_are_the_mapped_label_counts(gta, monkeypatch):
    root, labels = gta
    ds = gta5(root)
    reads = _count_reads(monkeypatch)
    stats = rcs.class_pixel_stats(ds)
    assert stats.shape == (4, 19) and stats.dtype == np.int64
    assert np.array_equal(stats, _expected_counts(labels))
    assert stats[0, 13] == 20 and stats[2, 18] == 4 and stats[1].sum() == 16 * 20 - 20  # void row not counted
    assert sorted(reads) == [0, 1, 2, 3]  # each label read once
    assert np.array_equal(rcs.class_pixel_stats(ds, cache=False, workers=1), stats)  # serial = threaded
    # the same labels the dataset itself produces
    for i in range(4):
        _, lab = ds.load(i)
        assert np.array_equal(np.bincount(lab.ravel(), minlength=256)[:19], stats[i])


def test_stats_cache_is_reused_and_invalidated_by_a_changed_file(gta, monkeypatch):
    root, labels = gta
    ds = gta5(root)
    first = rcs.class_pixel_stats(ds)
    primary, fallback = rcs.stats_cache_paths(ds)
    assert primary.parent == (root / "labels").resolve() and primary.name.startswith(".udaseg-rcs-stats-19-")
    assert primary.is_file() and not fallback.exists()
    reads = _count_reads(monkeypatch)
    again = rcs.class_pixel_stats(gta5(root))
    assert reads == [] and np.array_equal(again, first)  # read from the cache, no label opened
    # change one label file: new content, size and mtime → recomputed
    new = labels[2].copy()
    new[:8] = CAR
    _palette_png(root / "labels" / "00003.png", new)
    st = os.stat(root / "labels" / "00003.png")
    os.utime(root / "labels" / "00003.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = rcs.class_pixel_stats(gta5(root))
    assert len(reads) == 4
    assert np.array_equal(changed, _expected_counts([labels[0], labels[1], new, labels[3]]))
    reads.clear()
    rcs.class_pixel_stats(gta5(root))
    assert reads == []


def test_stats_cache_depends_on_the_file_list_and_class_map(gta, tmp_path):
    root, _ = gta
    (tmp_path / "list.txt").write_text("00001.png\n00003.png\n")
    sub = gta5(root, split_list=tmp_path / "list.txt")
    full = gta5(root)
    assert rcs.stats_cache_paths(sub)[0] != rcs.stats_cache_paths(full)[0]
    s_sub, s_full = rcs.class_pixel_stats(sub), rcs.class_pixel_stats(full)
    assert np.array_equal(s_sub, s_full[[0, 2]])
    assert np.array_equal(rcs.class_pixel_stats(sub), s_sub)  # both caches live side by side


def test_read_only_root_falls_back_to_udaseg_cache(gta, monkeypatch, tmp_path):
    root, labels = gta
    ds = gta5(root)
    primary, fallback = rcs.stats_cache_paths(ds)
    assert str(fallback).startswith(str(tmp_path / "cache" / "rcs"))
    real_write = rcs.atomic_write_json

    def read_only_root(path, obj):  # the tests run as root, so chmod would not stop a write
        if str(path).startswith(str(root.resolve())):
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(rcs, "atomic_write_json", read_only_root)
    with pytest.warns(UserWarning, match="UDASEG|caching them in"):
        stats = rcs.class_pixel_stats(ds)
    assert not primary.exists() and fallback.is_file()
    reads = _count_reads(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(rcs.class_pixel_stats(gta5(root)), stats)
    assert reads == []


def test_unlabelled_dataset_is_refused(tmp_path):
    from fixtures import make_cityscapes
    from udaseg.data.datasets import cityscapes
    make_cityscapes(tmp_path / "cs", split="train")
    with pytest.raises(ValueError, match="labelled"):
        rcs.class_pixel_stats(cityscapes(tmp_path / "cs", "train", with_labels=False))


# -- class probabilities -----------------------------------------------------------------------

def test_rcs_probabilities_formula():
    counts = np.array([600, 300, 0, 100])
    f = counts / counts.sum()
    for t in (0.01, 0.1, 1.0):
        e = np.exp((1 - f) / t) * (counts > 0)
        assert np.allclose(rcs.rcs_probabilities(counts, t), e / e.sum(), rtol=1e-12, atol=0)
    p = rcs.rcs_probabilities(counts, 0.01)
    assert p[2] == 0 and p[3] > p[1] > p[0] and math.isclose(p.sum(), 1.0)
    assert np.allclose(rcs.rcs_probabilities(f, 0.5), rcs.rcs_probabilities(counts, 0.5))  # counts or freqs
    assert rcs.DEFAULT_TEMPERATURE == 0.01 and rcs.DEFAULT_MIN_PIXELS == 3000
    assert rcs.DEFAULT_MIN_CROP_RATIO == 0.5 and rcs.MAX_CROP_REDRAWS == 10


@pytest.mark.parametrize("t", [0, -0.01, float("nan"), "hot", None])
def test_temperature_validation(t):
    with pytest.raises(ValueError, match=r"data\.source\.rcs\.temperature"):
        rcs.rcs_probabilities([1, 2], t)
    with pytest.raises(ValueError, match=r"data\.source\.rcs\.temperature"):
        rcs.RareClassSampler(np.ones((2, 2), np.int64) * 10, 1, temperature=t, min_pixels=0)


# -- the sampler -------------------------------------------------------------------------------

def _table():
    """12 images × 4 classes of synthetic pixel counts (class 3 rare, only in images 9-11)."""
    rng = np.random.default_rng(0)
    t = rng.integers(4000, 50000, (12, 4))
    t[:, 0] += 200000
    t[:9, 3] = 0
    t[9:, 3] = [3001, 2500, 9000]  # image 10 holds class 3, but not more than 3000 pixels
    t[2, 1] = 3000  # exactly min_pixels: not "more than" (DAFormer: pixels > min_pixels)
    return t


def test_sampling_frequencies_match_the_formula_and_images_hold_the_class():
    stats = _table()
    s = rcs.RareClassSampler(stats, batch_size=4, temperature=0.05, min_pixels=3000, seed=3)
    p = rcs.rcs_probabilities(stats.sum(0), 0.05)
    assert np.allclose(s.class_probs, p)
    n = 20000
    keys = [k for b in range(n // 4) for k in s.batch_keys(b)]
    classes = np.array([c for _, _, c in keys])
    for c in range(4):
        observed = int((classes == c).sum())
        sd = math.sqrt(n * p[c] * (1 - p[c]))
        assert abs(observed - n * p[c]) <= 5 * sd + 1, (c, observed, n * p[c])
    for index, position, c in keys:
        assert stats[index, c] > 3000  # an image lacking the class (≤ min_pixels) is never drawn for it
    assert [q for _, q, _ in keys] == list(range(n))  # draw seed = stream position
    imgs3 = {i for i, _, c in keys if c == 3}
    assert imgs3 == {9, 11}  # 10 has class 3 but only 2500 pixels
    assert 2 not in {i for i, _, c in keys if c == 1}


def test_images_are_uniform_within_a_class():
    stats = np.zeros((6, 2), np.int64)
    stats[:, 0] = 10**6
    stats[[1, 3, 4], 1] = 5000
    s = rcs.RareClassSampler(stats, 1, temperature=1.0, min_pixels=3000, seed=0)
    keys = [s.key_at(q) for q in range(12000)]
    picked = np.array([i for i, _, c in keys if c == 1])
    m = picked.size
    for i in (1, 3, 4):
        assert abs((picked == i).sum() - m / 3) <= 5 * math.sqrt(m / 3 * 2 / 3)
    assert set(picked) == {1, 3, 4}


def test_sampler_is_deterministic_and_resumable():
    stats = _table()
    whole = rcs.RareClassSampler(stats, 3, seed=7, min_pixels=3000)
    it = iter(whole)
    first = [next(it) for _ in range(10)]
    resumed = rcs.RareClassSampler(stats, 3, seed=7, min_pixels=3000, start_batch=6)
    it2 = iter(resumed)
    assert [next(it2) for _ in range(4)] == first[6:]
    again = rcs.RareClassSampler(stats, 3, seed=7, min_pixels=3000)
    assert list(zip(range(10), again))[9][1] == first[9]
    other = rcs.RareClassSampler(stats, 3, seed=8, min_pixels=3000)
    assert [other.batch_keys(b) for b in range(10)] != first
    # ranks split a global batch exactly like InfiniteBatchSampler
    single = rcs.RareClassSampler(stats, 4, seed=7, min_pixels=3000).batch_keys(5)
    r0 = rcs.RareClassSampler(stats, 2, seed=7, min_pixels=3000, rank=0, world_size=2).batch_keys(5)
    r1 = rcs.RareClassSampler(stats, 2, seed=7, min_pixels=3000, rank=1, world_size=2).batch_keys(5)
    assert sorted(r0 + r1, key=lambda k: k[1]) == single


def test_classes_without_eligible_images_are_dropped_with_a_warning():
    stats = np.array([[10000, 10], [20000, 0]])
    with pytest.warns(UserWarning, match=r"class\(es\) \[1\]"):
        s = rcs.RareClassSampler(stats, 1, min_pixels=3000)
    assert s.class_probs.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="min_pixels"), pytest.warns(UserWarning):
        rcs.RareClassSampler(np.array([[10, 10]]), 1, min_pixels=3000)


# -- the crop re-draw --------------------------------------------------------------------------

def test_crop_is_redrawn_until_it_holds_the_class(tmp_path):
    h, w = 8, 64
    ids = np.full((h, w), ROAD, np.uint8)
    ids[:, 56:] = CAR  # 8 car columns at the right edge
    _write_gta(tmp_path / "g", [ids])
    base = gta5(tmp_path / "g", transform=Compose([RandomCrop((8, 8))]))
    loads = []

    class Counting(torch.utils.data.Dataset):
        def __len__(self):
            return len(base)

        def __getitem__(self, key):
            loads.append(key)
            return base[key]

    ds = rcs.RareClassCropDataset(Counting(), min_pixels=20, min_crop_ratio=0.5)  # need > 10 car pixels
    hits, plain_hits = 0, 0
    for q in range(40):
        loads.clear()
        item = ds[(0, q, 13)]
        assert item["rcs_class"] == 13
        assert 1 <= len(loads) <= 11  # first draw + at most 10 re-draws (DAFormer)
        assert loads[0] == (0, q) and all(k == (0, rcs.redraw_seed(q, j)) for j, k in enumerate(loads[1:], 1))
        n_car = int((item["label"] == 13).sum())
        if len(loads) < 11:
            assert n_car > 10  # stopped because the crop holds enough of the class
        hits += n_car > 10
        assert torch.equal(item["image"], ds[(0, q, 13)]["image"])  # deterministic
        plain_hits += int((base[(0, q)]["label"] == 13).sum()) > 10
    # one 8×8 crop (57 positions) holds > 10 car pixels (≥ 2 columns) with p = 7/57 ≈ 0.12; with
    # up to 11 draws 1 − (50/57)^11 ≈ 0.76: about 30 of 40 (sd 2.7) against about 5
    assert hits >= 22 and plain_hits <= 12
    # without the re-draw, (index, seed) keys pass through
    assert torch.equal(ds[(0, 5)]["image"], base[(0, 5)]["image"])
    no_redraw = rcs.RareClassCropDataset(base, min_pixels=20, min_crop_ratio=0.0)
    assert torch.equal(no_redraw[(0, 5, 13)]["image"], base[(0, 5)]["image"])


def test_sampler_and_crop_dataset_in_a_dataloader(gta):
    root, _ = gta
    base = gta5(root, transform=Compose([RandomCrop((8, 8))]))
    stats = rcs.class_pixel_stats(base)
    sampler = rcs.RareClassSampler(stats, 2, min_pixels=3, temperature=0.1, seed=1)
    ds = rcs.RareClassCropDataset(base, min_pixels=3, min_crop_ratio=0.5)
    assert ds.num_classes == 19 and len(ds) == 4  # the wrapped dataset's attributes
    clone = pickle.loads(pickle.dumps(ds))  # what spawned DataLoader workers receive
    assert torch.equal(clone[(1, 3, 0)]["image"], ds[(1, 3, 0)]["image"])
    batch = next(iter(DataLoader(ds, batch_sampler=sampler, num_workers=0)))
    assert batch["image"].shape == (2, 3, 8, 8) and batch["label"].shape == (2, 8, 8)
    keys = sampler.batch_keys(0)
    assert batch["rcs_class"].tolist() == [c for _, _, c in keys]
