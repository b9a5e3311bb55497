"""The embedded benchmark's writer: its scenes on disk in the GTA5, SYNTHIA and Cityscapes formats.

Procedural street scenes written in the real datasets' formats, so that the real loaders, trainer
and evaluator run on them end to end.

    write_demo("data/demo", seed=0)        # defaults: 3400 images, ~60 s on 2 free cores, 330 MB
    demo_is_complete("data/demo", seed=0)  # True once manifest.json is written

Layout under ``out_dir`` (scenes from :mod:`udaseg.benchmark.scene`):

- ``gta5/images/00001.png`` RGB, ``gta5/labels/00001.png`` palette ("P") PNG of Cityscapes
  labelIds with the Cityscapes colours as palette, ``gta5/train.txt`` (all names, as ADVENT's
  ``gta5_list/all.txt``) — the source domain;
- ``synthia/RGB/0000001.png`` and ``synthia/GT/LABELS/0000001.png`` (16-bit 3-channel PNG:
  SYNTHIA class id, instance id, 0) for the first ``n_synthia`` source scenes — the same scenes
  through the second source loader;
- ``gta5/heldout.txt``: ``n_source_heldout`` more source scenes (named after the training ones),
  labelled and never trained on — to measure in-domain accuracy of a source-trained model;
- ``cityscapes/leftImg8bit/{train,val,dev}/<city>/<city>_<seq>_000019_leftImg8bit.png`` and
  ``cityscapes/gtFine/.../*_gtFine_labelIds.png`` ("L") plus ``*_gtFine_color.png`` (RGBA) — the
  target domain, labels at image resolution. ``dev`` is a second labelled target split with its
  own scenes and cities: method hyper-parameters are chosen on it, results reported on ``val``;
- ``DATA.md`` (summary) and ``manifest.json``, written last and atomically: a folder without a
  manifest of the current ``DEMO_VERSION`` is incomplete.

The written text names this module by its old path, ``udaseg.data.demo`` (manifest "generator",
DATA.md title, the marker file): it is part of the benchmark's bytes, which tests/test_layout.py
pins; change it together with ``DEMO_VERSION``.

Everything is deterministic for a seed: image i of domain d is drawn from
``np.random.default_rng([seed, d, i])``, whatever the number of workers.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from udaseg.benchmark import scene
from udaseg.data import labels as L

# Bump whenever the scenes (or the files) change: a stored benchmark of another version is rewritten.
# 2: a labelled target dev split (200 images: ~20 trucks, buses and trains), 200 held-out source
#    scenes, 500 val images (every class >= 30 objects in val; 100 gave truck, bus and train 6-8
#    each) and the object counts of these evaluation splits.
DEMO_VERSION = 2

# the per-image seed's domain id: image i of domain d is drawn from default_rng([seed, d, i]), so
# adding a domain or growing a split leaves every other image as it was
DOMAINS = {"source": 0, "target_train": 1, "target_val": 2, "target_dev": 3, "source_heldout": 4}
EVAL_DOMAINS = ("target_val", "target_dev", "source_heldout")  # whose objects are counted (manifest, DATA.md)
CITYSCAPES_SPLITS = {"target_train": "train", "target_val": "val", "target_dev": "dev"}
CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster"),
          "dev": ("darmstadt", "jena", "weimar")}
CITYSCAPES_FRAME = 19  # the annotated frame of every real Cityscapes snippet
_MARKER = ".udaseg-demo"  # says "write_demo owns the dataset folders here", so it may replace them
_DATASET_DIRS = ("gta5", "synthia", "cityscapes")
# fast PNG settings: the sensor noise of the target images barely compresses anyway
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def _code_luts() -> tuple[np.ndarray, np.ndarray]:
    """Internal label codes (trainIds 0..18, STATIC, EGO, VOID) → Cityscapes labelIds, SYNTHIA ids."""
    to_labelid = np.zeros(256, np.uint8)  # 0 = unlabeled
    to_synthia = np.zeros(256, np.uint16)  # 0 = void
    to_labelid[:19] = L.TRAINID_TO_LABELID
    to_labelid[scene.EGO] = 1  # "ego vehicle"
    to_labelid[scene.STATIC] = 4  # "static"
    for idx16, sid in enumerate(L.SYNTHIA_ID_OF_16):
        to_synthia[L.PROTOCOL_16_IN_19[idx16]] = sid
    # SYNTHIA has these outside its 16-class protocol
    to_synthia[L.CLASSES_19.index("terrain")] = 16
    to_synthia[L.CLASSES_19.index("truck")] = 18
    to_synthia[L.CLASSES_19.index("train")] = 20
    return to_labelid, to_synthia


TO_LABELID, TO_SYNTHIA = _code_luts()


def _labelid_palette() -> np.ndarray:
    """(256, 3) colours indexed by labelId: the 19 Cityscapes colours, black elsewhere."""
    pal = np.zeros((256, 3), np.uint8)
    pal[list(L.TRAINID_TO_LABELID)] = L.PALETTE_19
    return pal


LABELID_PALETTE = _labelid_palette()


# ------------------------------------------------------------------------------------ file writers


def _write_rgb(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image[..., ::-1], _PNG):
        raise OSError(f"cannot write {path}")


def _write_gta5_label(path: Path, label_ids: np.ndarray) -> None:
    """A palette PNG whose indices are labelIds, coloured like GTA5's label files."""
    im = Image.fromarray(label_ids)  # "L"; putpalette turns it into "P" with the same indices
    im.putpalette(LABELID_PALETTE.ravel().tolist())
    im.save(path, compress_level=1)


def _write_synthia_label(path: Path, synthia_ids: np.ndarray, instance: np.ndarray) -> None:
    """16-bit 3-channel PNG: channel 0 (RGB order) class id, channel 1 instance id, channel 2 zero.
    Written with OpenCV (BGR order) because Pillow cannot write 16-bit RGB."""
    arr = np.stack([synthia_ids, instance, np.zeros_like(instance)], 2).astype(np.uint16)
    if not cv2.imwrite(str(path), arr[..., ::-1], _PNG):
        raise OSError(f"cannot write {path}")


def _write_cityscapes_labels(stem: Path, label_ids: np.ndarray) -> None:
    """``<stem>_gtFine_labelIds.png`` (8-bit grey) and ``<stem>_gtFine_color.png`` (RGBA)."""
    if not cv2.imwrite(f"{stem}_gtFine_labelIds.png", label_ids, _PNG):
        raise OSError(f"cannot write {stem}_gtFine_labelIds.png")
    rgba = np.concatenate([LABELID_PALETTE[label_ids], np.full(label_ids.shape + (1,), 255, np.uint8)], 2)
    cv2.imwrite(f"{stem}_gtFine_color.png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), _PNG)


# ------------------------------------------------------------------------------ one image (worker)


def _gta5_name(i: int) -> str:
    return f"{i + 1:05d}.png"


def _synthia_name(i: int) -> str:
    return f"{i + 1:07d}.png"


def _cityscapes_stem(split: str, i: int, n: int) -> tuple[str, str]:
    """(city, file stem) of image i of n in a split: contiguous blocks per city."""
    cities = CITIES[split]
    per_city = -(-n // len(cities))
    city = cities[i // per_city]
    return city, f"{city}_{i % per_city:06d}_{CITYSCAPES_FRAME:06d}"


def _render_one(task: tuple) -> tuple[str, np.ndarray, np.ndarray]:
    """Render and write image ``index`` of ``domain``; returns (domain, per-code pixel counts,
    objects per class — counted for the evaluation splits only, zeros elsewhere). A top-level
    function of picklable arguments, so it runs under any start method."""
    out, seed, domain, index, size, extra = task
    out = Path(out)
    rng = np.random.default_rng([seed, DOMAINS[domain], index])
    style = scene.SOURCE if domain in ("source", "source_heldout") else scene.TARGET
    sc = scene.render_scene(rng, style, *size)
    label_ids = TO_LABELID[sc.label]
    if domain in ("source", "source_heldout"):
        name = _gta5_name(index + extra.get("offset", 0))
        _write_rgb(out / "gta5" / "images" / name, sc.image)
        _write_gta5_label(out / "gta5" / "labels" / name, label_ids)
        if extra.get("synthia"):
            _write_rgb(out / "synthia" / "RGB" / _synthia_name(index), sc.image)
            _write_synthia_label(out / "synthia" / "GT" / "LABELS" / _synthia_name(index), TO_SYNTHIA[sc.label],
                                 sc.instance)
    else:
        split = CITYSCAPES_SPLITS[domain]
        city, stem = _cityscapes_stem(split, index, extra["n"])
        _write_rgb(out / "cityscapes" / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", sc.image)
        _write_cityscapes_labels(out / "cityscapes" / "gtFine" / split / city / stem, label_ids)
    objects = count_objects(sc.label, sc.instance) if domain in EVAL_DOMAINS else np.zeros(19, np.int64)
    return domain, np.bincount(sc.label.ravel(), minlength=256), objects


def count_objects(label: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Objects per trainId in one label map: distinct instances of a class where the scene gives
    instance ids (vehicles, people, riders), 8-connected regions elsewhere (a pole, a sign, a
    stretch of wall; an occluder that splits one makes two)."""
    out = np.zeros(19, np.int64)
    for c in np.unique(label):
        if c >= 19:
            continue
        mask = label == c
        ids = np.unique(instance[mask])
        out[c] = int((ids > 0).sum())
        stuff = (mask & (instance == 0)).astype(np.uint8)
        if stuff.any():
            out[c] += cv2.connectedComponents(stuff, connectivity=8)[0] - 1
    return out


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


# -------------------------------------------------------------------------------------- the writer


def _prepare(out: Path) -> None:
    """Invalidate any previous benchmark first (no manifest = incomplete), then clear the dataset
    folders — only if a previous write_demo created them (the marker), never a user's data."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    present = [d for d in _DATASET_DIRS if (out / d).exists()]
    if present and not (out / _MARKER).exists():
        raise FileExistsError(f"{out} already holds {', '.join(present)} not written by write_demo; "
                              f"refusing to overwrite them (choose an empty folder)")
    (out / _MARKER).write_text("folders here were written by udaseg.data.demo.write_demo and may be replaced\n")
    for d in present:
        shutil.rmtree(out / d)


def _make_dirs(out: Path, n_synthia: int, n_train: int, n_val: int, n_dev: int) -> None:
    for d in ("gta5/images", "gta5/labels"):
        (out / d).mkdir(parents=True)
    if n_synthia:
        (out / "synthia" / "RGB").mkdir(parents=True)
        (out / "synthia" / "GT" / "LABELS").mkdir(parents=True)
    for split, n in (("train", n_train), ("val", n_val), ("dev", n_dev)):
        for city in sorted({_cityscapes_stem(split, i, n)[0] for i in range(n)}):
            (out / "cityscapes" / "leftImg8bit" / split / city).mkdir(parents=True)
            (out / "cityscapes" / "gtFine" / split / city).mkdir(parents=True)


def _run(tasks: list, workers: int, progress: bool) -> tuple[dict, dict]:
    """Render all tasks (in a spawn pool when workers > 1); sum the pixel and object counts per domain.
    Integer sums do not depend on the order results arrive in, so the output is worker-independent."""
    counts = {d: np.zeros(256, np.int64) for d in DOMAINS}
    objects = {d: np.zeros(19, np.int64) for d in DOMAINS}
    step = max(1, len(tasks) // 10)
    t0 = time.time()

    def collect(results):
        for k, (domain, c, n_obj) in enumerate(results, 1):
            counts[domain] += c
            objects[domain] += n_obj
            if progress and (k % step == 0 or k == len(tasks)):
                print(f"  demo: {k}/{len(tasks)} images ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            collect(pool.imap_unordered(_render_one, tasks, chunksize=8))
    else:
        collect(map(_render_one, tasks))
    return counts, objects


def _frequencies(counts: np.ndarray) -> tuple[list[float], float]:
    """(fraction of the labelled pixels per trainId, fraction of all pixels that are ignored)."""
    per_class = counts[:19].astype(np.float64)
    labelled, total = max(per_class.sum(), 1), max(counts.sum(), 1)
    return [round(float(x), 6) for x in per_class / labelled], round(float(1 - per_class.sum() / total), 6)


def write_demo(out_dir, seed: int = 0, n_source: int = 2000, n_target_train: int = 500, n_target_val: int = 500,
               source_size=(320, 180), target_size=(512, 256), workers: int = 2, progress: bool = True,
               n_synthia: int | None = 500, n_target_dev: int = 200, n_source_heldout: int = 200) -> dict:
    """Write the benchmark to ``out_dir`` and return its manifest.

    Sizes are (W, H). ``n_synthia``: how many of the source scenes (the first ones) are also
    written in the SYNTHIA layout (None: all). Replaces a previous benchmark in ``out_dir``;
    refuses to touch dataset folders that write_demo did not create.
    """
    out = Path(out_dir)
    n_synthia = n_source if n_synthia is None else min(n_synthia, n_source)
    source_size, target_size = tuple(int(v) for v in source_size), tuple(int(v) for v in target_size)
    t0 = time.time()
    _prepare(out)
    _make_dirs(out, n_synthia, n_target_train, n_target_val, n_target_dev)
    o = str(out)
    tasks = [(o, seed, "source", i, source_size, {"synthia": i < n_synthia}) for i in range(n_source)]
    tasks += [(o, seed, "source_heldout", i, source_size, {"offset": n_source}) for i in range(n_source_heldout)]
    for domain, n in (("target_train", n_target_train), ("target_val", n_target_val), ("target_dev", n_target_dev)):
        tasks += [(o, seed, domain, i, target_size, {"n": n}) for i in range(n)]
    counts, objects = _run(tasks, max(1, int(workers)), progress)
    (out / "gta5" / "train.txt").write_text("".join(_gta5_name(i) + "\n" for i in range(n_source)))
    (out / "gta5" / "heldout.txt").write_text(
        "".join(_gta5_name(n_source + i) + "\n" for i in range(n_source_heldout)))
    if n_synthia:
        (out / "synthia" / "train.txt").write_text("".join(_synthia_name(i) + "\n" for i in range(n_synthia)))
    sizes = {"gta5": n_source, "gta5_heldout": n_source_heldout, "synthia": n_synthia,
             "cityscapes_train": n_target_train, "cityscapes_val": n_target_val, "cityscapes_dev": n_target_dev}
    manifest = _manifest(seed, sizes, source_size, target_size, counts, objects)
    (out / "DATA.md").write_text(_data_md(manifest))
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / "manifest.json")  # last and atomic: its presence means "complete"
    if progress:
        print(f"  demo: wrote {len(tasks)} scenes to {out} in {time.time() - t0:.1f} s", file=sys.stderr)
    return manifest


def _manifest(seed, sizes: dict, source_size, target_size, counts, objects) -> dict:
    """Everything that describes the written benchmark (no timings: the file is deterministic)."""
    freqs, ignored = {}, {}
    for d in DOMAINS:
        freqs[d], ignored[d] = _frequencies(counts[d])
    return {
        "generator": "udaseg.data.demo",
        "version": DEMO_VERSION,
        "seed": seed,
        "complete": True,
        "counts": sizes,
        "sizes": {"source": list(source_size), "target": list(target_size)},
        "synthia_subset": f"the first {sizes['synthia']} of the {sizes['gta5']} source scenes (same images as gta5/images)",
        "heldout": f"gta5/heldout.txt: {sizes['gta5_heldout']} more source scenes, never in train.txt",
        "cities": {split: list(c) for split, c in CITIES.items()},
        "classes": list(L.CLASSES_19),
        "class_frequencies": freqs,
        "class_frequencies_note": "fraction of the labelled pixels per class (19 trainIds, Cityscapes order)",
        "ignored_fraction": ignored,
        "ignored_note": "void pixels: the ego car's bonnet (labelId 1, target only) and bins (labelId 4, 'static')",
        "objects": {d: objects[d].tolist() for d in EVAL_DOMAINS},
        "objects_note": "objects per class: instances where the scene has instance ids, else 8-connected regions",
    }


_DOMAIN_TEXT = """\
**Source** (`gta5/`, and the first {n_synthia} scenes again in `synthia/`): game-like renders — flat
shading, saturated clean colours, sharp edges, mostly sunny skies; wide field of view ({S.hfov_deg[0]}–{S.hfov_deg[1]}°)
from a high camera ({S.cam_height[0]}–{S.cam_height[1]} m); wide {S.lanes[0]}–{S.lanes[1]} lane roads with US-style
markings and painted kerbs, mid-rise blocks and glass towers with gaps (or, in {S.suburb_p:.0%} of the scenes,
suburban houses in gardens), many moving cars and lorries, few pedestrians, palm trees.

**Target** (`cityscapes/`): camera-like renders — textures laid in world coordinates (asphalt grain
and patches, paving joints, plaster, brick courses, foliage), muted per-object colours, haze, soft
shadows, overcast skies, colour cast, uneven light, vignetting, lens blur and sensor noise; narrow
field of view ({T.hfov_deg[0]}–{T.hfov_deg[1]}°) from a low camera ({T.cam_height[0]}–{T.cam_height[1]} m) with the ego
car's bonnet at the bottom (labelId 1, ignored); narrow {T.lanes[0]}–{T.lanes[1]} lane streets lined with parked cars,
low continuous façades, front yards with hedges, walls and fences, many trees, pedestrians and
cyclists, the odd tram.

Both share the 19 classes and their shapes (cars: body, cabin windows, wheels, lights; people:
head, torso, arms, legs; riders on bicycles and motorcycles; poles, traffic lights, signs), so the
gap is appearance plus layout statistics — not colour alone, which per-image normalisation undoes.
"""


def _data_md(m: dict) -> str:
    """The human summary: splits, what each domain is, class pixel frequencies per domain."""
    c, (sw, sh), (tw, th) = m["counts"], m["sizes"]["source"], m["sizes"]["target"]
    splits = [
        ("source", "GTA5 (`gta5/images`, `gta5/labels`, `gta5/train.txt`)", c["gta5"], f"{sw}×{sh}"),
        ("source", "SYNTHIA-RAND-CITYSCAPES (`synthia/RGB`, `synthia/GT/LABELS`)", c["synthia"], f"{sw}×{sh}"),
        ("target train", f"Cityscapes `leftImg8bit/train`, `gtFine/train` ({', '.join(m['cities']['train'])})",
         c["cityscapes_train"], f"{tw}×{th}"),
        ("target val", f"Cityscapes `leftImg8bit/val`, `gtFine/val` ({', '.join(m['cities']['val'])})",
         c["cityscapes_val"], f"{tw}×{th}"),
        ("target dev", f"Cityscapes `leftImg8bit/dev`, `gtFine/dev` ({', '.join(m['cities']['dev'])}): choose "
         "hyper-parameters here", c["cityscapes_dev"], f"{tw}×{th}"),
        ("source held-out", "GTA5 `gta5/heldout.txt` (never in train.txt)", c["gta5_heldout"], f"{sw}×{sh}"),
    ]
    f, ign, obj = m["class_frequencies"], m["ignored_fraction"], m["objects"]
    domains = ("source", "target_train", "target_val", "target_dev")
    freq_rows = [f"| {name} | " + " | ".join(f"{100 * f[d][i]:.2f}" for d in domains) + " |"
                 for i, name in enumerate(m["classes"])]
    freq_rows.append("| *ignored (% of all pixels)* | " + " | ".join(f"{100 * ign[d]:.2f}" for d in domains) + " |")
    obj_rows = [f"| {name} | " + " | ".join(str(obj[d][i]) for d in EVAL_DOMAINS) + " |"
                for i, name in enumerate(m["classes"])]
    return "\n".join([
        f"# Embedded demo benchmark (udaseg.data.demo, version {m['version']}, seed {m['seed']})",
        "",
        "Procedural dash-camera street scenes written in the real datasets' formats, so the real loaders,",
        'trainer and evaluator run on them. Source → target is synthetic → "real".',
        "",
        "| split | layout | images | size (W×H) |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {n} | {size} |" for a, b, n, size in splits),
        "",
        _DOMAIN_TEXT.format(n_synthia=c["synthia"], S=scene.SOURCE, T=scene.TARGET),
        "## Class pixel frequencies (% of labelled pixels)",
        "",
        "| class | source | target train | target val | target dev |",
        "|---|---|---|---|---|",
        *freq_rows,
        "",
        "## Objects per class in the evaluation splits",
        "",
        "Instances where the scene has instance ids (vehicles, people, riders), 8-connected regions",
        "elsewhere. A class's IoU that rests on a handful of objects jumps between checkpoints.",
        "",
        "| class | target val | target dev | source held-out |",
        "|---|---|---|---|",
        *obj_rows,
        "",
    ])


def demo_is_complete(out_dir, seed: int | None = None) -> bool:
    """True if ``out_dir`` holds a finished benchmark of this DEMO_VERSION (and of ``seed``, if
    given): the manifest is written last, so an interrupted write has none."""
    path = Path(out_dir) / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(m, dict) or m.get("version") != DEMO_VERSION or not m.get("complete"):
        return False
    return seed is None or m.get("seed") == seed
