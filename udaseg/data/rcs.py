"""Rare-class sampling (RCS) of DAFormer: source images drawn by class, rare classes more often.

Reference: DAFormer ``mmseg/datasets/uda_dataset.py`` (``get_rcs_class_probs``,
``UDADataset.get_rare_class_sample``) and ``tools/convert_datasets/gta.py`` (the per-image class
pixel counts, ``sample_class_stats.json`` / ``samples_with_class.json``). With n_c the pixels of
class c over the source set, f_c = n_c / Σ_k n_k and temperature T:

    P(c) = exp((1 − f_c) / T) / Σ_k exp((1 − f_k) / T)          over the classes with n_c > 0

then an image uniformly among those holding *more than* ``min_pixels`` pixels of c (strictly,
``pixels > self.rcs_min_pixels``), counted in the label file at its own resolution (before any
resize or crop, as ``gta.py`` counts). After the transforms, the crop is re-drawn while it holds
≤ ``min_pixels · min_crop_ratio`` pixels of c, at most 10 times (``for j in range(10)``; the last
re-draw is kept unchecked). Defaults, from DAFormer's GTA→Cityscapes config
(``configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py``
``rare_class_sampling=dict(min_pixels=3000, class_temp=0.01, min_crop_ratio=0.5)``): T = 0.01,
min_pixels = 3000, min_crop_ratio = 0.5 (MIC's HRDA config uses 2.0 for its 1024² crops).

Here:
- :func:`class_pixel_stats` — the (images, K) table of pixel counts, each label read once through
  the dataset's own pieces (``pairs``, ``label_mode``, ``lut``, ``max_known_id``: the same reader
  and trainId map as ``SegmentationDataset.load``, without decoding images), cached as JSON;
- :func:`rcs_probabilities` — P(c) above;
- :class:`RareClassSampler` — batches of ``(index, draw_seed, class)`` keys, a pure function of
  (seed, position) like ``udaseg.engine.sampler.InfiniteBatchSampler``, so resume is exact;
- :class:`RareClassCropDataset` — wraps a ``SegmentationDataset`` to take those keys and re-draw
  the crop until it shows the class (``SegmentationDataset.__getitem__`` takes ``(index, seed)``
  only; the wrapper passes ``(index, seed')`` to it, so no change to ``datasets.py``).
Classes that have pixels but no image above ``min_pixels`` (DAFormer asserts there are none) are
left out of P with a warning, and P is renormalised over the rest.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from udaseg.data import labels as L
from udaseg.data.io import read_id_label, read_synthia_label
from udaseg.engine.checkpoint import atomic_write_json
from udaseg.engine.sampler import StreamSampler

DEFAULT_TEMPERATURE = 0.01  # DAFormer gta2cs_..._rcs_croppl_a999_... class_temp
DEFAULT_MIN_PIXELS = 3000  # same config, min_pixels
DEFAULT_MIN_CROP_RATIO = 0.5  # same config, min_crop_ratio
MAX_CROP_REDRAWS = 10  # DAFormer uda_dataset.py get_rare_class_sample: for j in range(10)
STATS_VERSION = 1
_STREAM = 0x52435321  # separates the RCS draws from InfiniteBatchSampler's [seed, epoch] streams


def check_temperature(temperature: float) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"data.source.rcs.temperature must be a number > 0, got {temperature!r}") from None
    if not t > 0:  # also rejects NaN
        raise ValueError(f"data.source.rcs.temperature must be > 0, got {temperature!r}")
    return t


# -- per-image class statistics ----------------------------------------------------------------

def _label_of(dataset, index: int) -> np.ndarray:
    """The (H, W) uint8 trainId label of ``index`` at file resolution, read as
    ``SegmentationDataset.load`` reads it (same reader, LUT and unknown-id rule), image not decoded."""
    label_path = dataset.pairs[index][1]
    raw = read_synthia_label(label_path) if dataset.label_mode == "synthia" else read_id_label(label_path)
    label, _ = L.map_labels(raw, dataset.lut, dataset.max_known_id)
    return label


def _label_paths(dataset) -> list[Path]:
    paths = [Path(p[1]) if p[1] is not None else None for p in dataset.pairs]
    if not paths or any(p is None for p in paths):
        raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: rare-class sampling needs a labelled source dataset")
    return paths


def _fingerprints(dataset, paths: list[Path], root: Path) -> tuple[str, str]:
    """(identity: which files and mapping — names the cache file; content: + sizes and mtimes)."""
    ident, content = hashlib.sha256(), hashlib.sha256()
    head = json.dumps([STATS_VERSION, int(dataset.num_classes), dataset.label_mode, int(dataset.max_known_id)])
    lut = np.ascontiguousarray(dataset.lut).tobytes()
    for h in (ident, content):
        h.update(head.encode())
        h.update(lut)
    for p in paths:
        rel = os.path.relpath(p, root).encode()
        st = p.stat()
        ident.update(rel + b"\0")
        content.update(rel + b"\0" + f"{st.st_size}:{st.st_mtime_ns}".encode() + b"\0")
    return ident.hexdigest(), content.hexdigest()


def _cache_root() -> Path:
    """``$UDASEG_CACHE/rcs`` (default ``~/.cache/udaseg/rcs``; the folder of udaseg's weights)."""
    from udaseg.models.weights import CACHE_ENV, DEFAULT_CACHE
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser() / "rcs"


def _cache_info(dataset):
    """(label paths, content fingerprint, primary cache path, fallback cache path)."""
    paths = [p.resolve() for p in _label_paths(dataset)]
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    ident, content = _fingerprints(dataset, paths, root)
    name = f".udaseg-rcs-stats-{int(dataset.num_classes)}-{ident[:16]}.json"
    root_tag = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return paths, content, root / name, _cache_root() / f"{root_tag}{name}"


def stats_cache_paths(dataset) -> tuple[Path, Path]:
    """(beside the labels, fallback under ``$UDASEG_CACHE/rcs``) for ``dataset``'s statistics.

    Beside the labels = ``<common folder of the label files>/.udaseg-rcs-stats-<K>-<id>.json``
    (e.g. ``<GTA5>/labels/``), ``<id>`` a hash of the file list and label mapping, so subsets
    (split lists) and 16/19-class maps do not overwrite each other.
    """
    return _cache_info(dataset)[2:]


def _read_cache(path: Path, content: str, n: int, k: int) -> np.ndarray | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("version") != STATS_VERSION or obj.get("fingerprint") != content:
        return None
    counts = np.asarray(obj.get("counts", []), dtype=np.int64)
    return counts if counts.shape == (n, k) else None


def class_pixel_stats(dataset, *, cache: bool = True, workers: int | None = None) -> np.ndarray:
    """(images, K) int64: pixels of each class in each label of ``dataset`` (file resolution).

    Cached as JSON beside the labels (see :func:`stats_cache_paths`) with a fingerprint of the
    label files (relative names, sizes, mtimes) and of the label mapping: a changed file, list or
    mapping recomputes. Written atomically (``atomic_write_json``). When that folder is not
    writable the cache goes to ``$UDASEG_CACHE/rcs`` (default ``~/.cache/udaseg/rcs``) with a
    warning; lookups try both. ``workers``: threads decoding labels (PNG decoding releases the
    GIL; default min(8, CPUs)) — the first pass over GTA5's 24 966 labels is the slow part.
    """
    paths, content, primary, fallback = _cache_info(dataset)
    n, k = len(paths), int(dataset.num_classes)
    if cache:
        for path in (primary, fallback):
            counts = _read_cache(path, content, n, k)
            if counts is not None:
                return counts

    def count(i: int) -> np.ndarray:
        return np.bincount(_label_of(dataset, i).ravel(), minlength=256)[:k]

    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if workers > 1 and n > 1:
        with ThreadPoolExecutor(workers) as pool:
            counts = np.stack(list(pool.map(count, range(n)))).astype(np.int64)
    else:
        counts = np.stack([count(i) for i in range(n)]).astype(np.int64)
    if cache:
        obj = {"version": STATS_VERSION, "fingerprint": content, "num_classes": k, "images": n,
               "counts": counts.tolist()}
        try:
            atomic_write_json(primary, obj)
        except OSError as exc:
            warnings.warn(f"cannot write the rare-class statistics beside the labels ({primary}: "
                          f"{exc.strerror or exc}); caching them in {fallback} instead", stacklevel=2)
            try:
                atomic_write_json(fallback, obj)
            except OSError as exc2:
                warnings.warn(f"cannot cache the rare-class statistics in {fallback} either ({exc2}); "
                              "they will be recomputed next time", stacklevel=2)
    return counts


# -- class probabilities -----------------------------------------------------------------------

def rcs_probabilities(freq, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """P(c) = softmax((1 − f_c) / T) over the classes with f_c > 0; 0 for absent classes.

    ``freq``: (K,) class pixel counts or frequencies (normalised here: f = freq / Σ freq), as
    DAFormer ``get_rcs_class_probs`` (which only lists the classes that occur).
    """
    t = check_temperature(temperature)
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or (f < 0).any() or not np.isfinite(f).all() or f.sum() <= 0:
        raise ValueError(f"rcs_probabilities needs non-negative class frequencies with a positive sum, got {freq!r}")
    f = f / f.sum()
    present = f > 0
    z = np.where(present, (1.0 - f) / t, -np.inf)
    z = z - z[present].max()  # softmax is shift-invariant; keeps exp() finite
    p = np.exp(z)
    return p / p.sum()


# -- the sampler -------------------------------------------------------------------------------

class RareClassSampler(StreamSampler):
    """Yields batches of ``(index, draw_seed, class)`` keys forever.

    Stream position q draws, from ``numpy.random.default_rng([seed, q, ·])``, a class c ~ P and
    then an image uniformly among those with > ``min_pixels`` pixels of c; ``draw_seed = q``
    seeds that sample's transforms, exactly as ``InfiniteBatchSampler``'s ``(index, position)``.
    Batch b of rank r covers positions b·B·W + r, b·B·W + r + W, … (B per rank, W ranks), so
    a resumed run (``start_batch``) and any split over ranks draw the same keys.

    Args:
        stats: (images, K) pixel counts (:func:`class_pixel_stats`).
        batch_size: per rank.
        temperature, min_pixels: T and the image threshold (module docstring).
    """

    def __init__(self, stats, batch_size: int, *, temperature: float = DEFAULT_TEMPERATURE,
                 min_pixels: int = DEFAULT_MIN_PIXELS, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        counts = np.asarray(stats, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] == 0:
            raise ValueError(f"stats must be an (images, K) table, got shape {counts.shape}")
        probs = rcs_probabilities(counts.sum(0), temperature)
        samples = {c: np.flatnonzero(counts[:, c] > min_pixels) for c in range(counts.shape[1]) if probs[c] > 0}
        empty = [c for c, idx in samples.items() if idx.size == 0]
        if empty:
            warnings.warn(f"rare-class sampling: class(es) {empty} occur but no image has more than "
                          f"{min_pixels} pixels of them; they are never sampled", stacklevel=2)
        classes = np.array([c for c, idx in samples.items() if idx.size > 0], dtype=np.int64)
        if classes.size == 0:
            raise ValueError(f"rare-class sampling: no image has more than {min_pixels} pixels of any class "
                             "(lower data.source.rcs.min_pixels)")
        p = probs[classes] / probs[classes].sum()
        self.classes, self.probs = classes, p
        self.class_probs = np.zeros(counts.shape[1])
        self.class_probs[classes] = p
        self._cdf = np.cumsum(p)
        self._cdf[-1] = 1.0
        self.samples_with_class = {int(c): samples[int(c)] for c in classes}
        super().__init__(batch_size, start_batch, rank, world_size)
        self.seed = seed

    def key_at(self, position: int) -> tuple[int, int, int]:
        rng = np.random.default_rng([self.seed, position, _STREAM])
        c = int(self.classes[min(int(np.searchsorted(self._cdf, rng.random(), side="right")), self.classes.size - 1)])
        images = self.samples_with_class[c]
        return int(images[rng.integers(images.size)]), position, c


def redraw_seed(draw_seed: int, attempt: int) -> int:
    """Seed of re-draw ``attempt`` ≥ 1 of a sample: disjoint from every stream position (< 2⁶⁴)."""
    return int(draw_seed) + (int(attempt) << 64)


class RareClassCropDataset(Dataset):
    """A ``SegmentationDataset`` that takes :class:`RareClassSampler` keys.

    ``dataset[(index, seed, c)]`` loads ``dataset[(index, seed)]`` and, while its label holds
    ≤ ``min_pixels · min_crop_ratio`` pixels of class c, loads it again with the next
    :func:`redraw_seed` — at most ``max_redraws`` times, the last one kept (DAFormer
    ``get_rare_class_sample``). The item gains ``"rcs_class": c``. ``(index, seed)`` and plain
    indices pass through unchanged; other attributes are the wrapped dataset's.
    """

    def __init__(self, dataset, *, min_pixels: int = DEFAULT_MIN_PIXELS,
                 min_crop_ratio: float = DEFAULT_MIN_CROP_RATIO, max_redraws: int = MAX_CROP_REDRAWS):
        self.dataset = dataset
        self.min_pixels, self.min_crop_ratio, self.max_redraws = min_pixels, float(min_crop_ratio), int(max_redraws)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # pairs, num_classes, name, … of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 3):
            return self.dataset[key]
        index, seed, cls = key
        item = self.dataset[(index, seed)]
        if self.min_crop_ratio > 0:
            need = self.min_pixels * self.min_crop_ratio
            for attempt in range(1, self.max_redraws + 1):
                if int((item["label"] == cls).sum()) > need:
                    break
                item = self.dataset[(index, redraw_seed(seed, attempt))]
        item["rcs_class"] = int(cls)
        return item
