"""YAML configs: defaults, ``_base_`` inheritance, dotted command-line overrides, validation.

A config file says only what differs from its base (``_base_: base.yaml``, relative to the file)
or from :data:`DEFAULTS`. Overrides are ``key.sub=value`` strings whose value is parsed as YAML
(``train.iters=2000``, ``method.lambda_ent=2e-3``, ``data.source.transforms.crop=[512,256]``).
Every key must exist in the defaults (or in the chosen method's defaults, for ``method.*``) and
every value must have the default's type: a typo is an error naming the key, not a silently
ignored setting.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message names it."""


# Keys whose value is a free-form mapping (checked by the code that consumes it).
FREE_FORM = {"data.source.transforms", "data.target.transforms", "data.val.transforms", "data.dev.transforms"}
# Keys that take true / false or "auto" (resolved per device: udaseg/engine/device_defaults.py;
# train.no_decay_norm per arch: udaseg/engine/optim.py), and the other words some of them take.
AUTO_OR_BOOL = {"train.malloc_tuning", "train.cudnn_benchmark", "train.no_decay_norm"}
AUTO_OR_BOOL_WORDS = {"train.no_decay_norm": ("all",)}
# Keys that take a positive integer or "auto".
AUTO_OR_INT = {"train.threads"}
# The type of keys whose default is null (unset): a set value must have it.
OPTIONAL_TYPES = {"model.pretrained": str, "model.pretrained_sha256": str, "data.global_batch_size": int,
                  "model.feature_stage": int, "model.hrda.fixed_attention": float,
                  "eval.window": list, "eval.stride": list,
                  "train.init_from": str, "eval.num_classes": int,
                  **{f"data.{d}.{k}": t for d in ("source", "target", "val", "dev")
                     for k, t in (("split", str), ("split_list", str), ("num_classes", int))}}
# Keys that take one of a few words.
CHOICES = {"train.validate_on": ("val", "dev")}
# The range of each numeric key: (low, low allowed, high, high allowed); None = unbounded. Every
# number must also be finite. A list of numbers (betas, scales) is checked element by element. Checked
# whether or not the key's section is switched on: a bad value is a typo either way.
BOUNDS = {
    "seed": (0, True, None, False),  # numpy refuses negative seeds, later and without the key
    "train.iters": (1, True, None, False), "train.pretrain_iters": (0, True, None, False),
    "data.batch_size": (1, True, None, False), "data.global_batch_size": (1, True, None, False),
    "data.workers": (0, True, None, False), "eval.batch_size": (1, True, None, False),
    "model.num_classes": (1, True, None, False), "eval.num_classes": (1, True, None, False),
    "model.feature_stage": (1, True, 4, True),
    "train.lr": (0, False, None, False), "train.lr_d": (0, True, None, False),
    "train.head_lr_mult": (0, False, None, False), "train.weight_decay": (0, True, None, False),
    "train.momentum": (0, True, 1, False), "train.betas": (0, True, 1, False), "train.betas_d": (0, True, 1, False),
    "train.poly_power": (0, True, None, False),  # < 0 would make the LR grow
    "train.warmup_iters": (0, True, None, False), "train.warmup_ratio": (0, False, 1, True),
    "train.log_every": (1, True, None, False), "train.val_every": (0, True, None, False),
    "train.checkpoint_every": (0, True, None, False), "train.keep_every": (0, True, None, False),
    "train.image_every": (0, True, None, False),
    "data.source.rcs.temperature": (0, False, None, False), "data.source.rcs.min_pixels": (0, True, None, False),
    # > 1 is meaningful: HRDA's 1024² crops use 2.0 (lhoyer/HRDA configs/hrda/gtaHR2csHR_hrda.py)
    "data.source.rcs.min_crop_ratio": (0, True, None, False),
    "self_training.alpha": (0, True, 1, True), "self_training.tau": (0, True, 1, True),
    "self_training.weight": (0, True, None, False), "self_training.ignore_top": (0, True, None, False),
    "self_training.ignore_bottom": (0, True, None, False), "self_training.jitter_prob": (0, True, 1, True),
    "self_training.jitter_strength": (0, True, None, False), "self_training.blur_prob": (0, True, 1, True),
    "self_training.mic.block_size": (1, True, None, False), "self_training.mic.ratio": (0, True, 1, False),
    "self_training.mic.weight": (0, True, None, False),
    "feature_distance.weight": (0, True, None, False), "feature_distance.scale_min_ratio": (0, True, 1, True),
    "eval.scales": (0, False, None, False),  # else refused only at evaluation, after the training
    "eval.window": (1, True, None, False), "eval.stride": (1, True, None, False),
    "model.hrda.scales": (0, False, 1, True), "model.hrda.hr_crop_size": (1, True, None, False),
    "model.hrda.crop_coord_divisible": (1, True, None, False), "model.hrda.attention_embed_dim": (1, True, None, False),
    "model.hrda.hr_loss_weight": (0, True, 1, True), "model.hrda.lr_loss_weight": (0, True, 1, True),
    "model.hrda.fixed_attention": (0, True, 1, True),
}
LIST_LENGTHS = {"train.betas": 2, "train.betas_d": 2, "eval.window": 2, "eval.stride": 2, "model.hrda.scales": 2,
                "model.hrda.hr_crop_size": 2}
# list keys whose elements are integers (sizes)
INT_LISTS = {"eval.window", "eval.stride", "model.hrda.hr_crop_size"}


def _dataset_defaults(kind, root, split=None, split_list=None, transforms=None):
    return {"kind": kind, "root": root, "split": split, "split_list": split_list, "num_classes": None,
            "transforms": transforms or {}}


DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "output_dir": "runs",  # the run directory is output_dir/name
    "model": {
        "arch": "deeplabv2_resnet101",
        "num_classes": 19,
        "multi_level": True,
        # frozen: eval-mode BN statistics and frozen affine (the paper, from ImageNet weights);
        # trainable: when training from scratch (frozen statistics of a random init mean nothing)
        "bn_mode": "frozen",
        # init weights: a local path (DeepLab Caffe or torchvision layout) or a name —
        # deeplab_imagenet | torchvision_resnet101, downloaded once (udaseg/models/weights.py)
        "pretrained": None,
        "pretrained_sha256": None,
        # input normalisation: "caffe" (BGR, mean subtraction; DeepLab/ADVENT weights),
        # "imagenet" (RGB/255, mean/std; torchvision weights), "per_image" (per-image mean/std)
        "input_norm": "caffe",
        # ASPP classifier: "taps" (one 1×1 conv over all 3×3 taps + shifted sum; 8× faster on a
        # CPU, same parameters), "dilated_conv" (the four dilated convs as the references write
        # them), or "auto": taps on the CPU, dilated_conv (cuDNN) on CUDA
        "aspp_impl": "auto",
        # transformer archs (daformer_mitbX / segformer_mitbX) only: the MiT stage (1-4) whose map
        # the segmentor returns as its features (what a feature discriminator and feature_distance
        # see); null = 4, stride 32 (DAFormer mmseg/models/uda/dacs.py calc_feat_dist: lay = -1).
        # DeepLab-V2 features are always layer4 (the key must stay null there)
        "feature_stage": None,
        # HRDA multi-resolution training and inference (udaseg/models/hrda.py), daformer_mitbX archs
        # only; the defaults are lhoyer/HRDA configs/hrda/gtaHR2csHR_hrda.py's
        "hrda": {
            "enabled": False,
            "scales": [1.0, 0.5],  # scales=[1, 0.5]: detail crop at full resolution, context at 0.5
            "hr_crop_size": [512, 512],  # hr_crop_size=[512, 512]: the detail crop (W, H)
            # crop_coord_divisible=8: the detail box's origin (output stride 4 × context downscale 2)
            "crop_coord_divisible": 8,
            "hr_loss_weight": 0.1,  # decode_head hr_loss_weight=0.1: lambda_d of the detail crop's loss
            # lr_loss_weight: of the (attention-weighted) context logits' loss; mmseg/models/
            # decode_heads/hrda_head.py default 0, which the config keeps
            "lr_loss_weight": 0.0,
            "attention_classwise": True,  # attention_classwise=True: one attention map per class
            "attention_embed_dim": 256,  # hrda_head.py attention_embed_dim=256
            # a constant attention instead of the learned one (the reference's ablation: 0.5); null = learned
            "fixed_attention": None,
            # inference (evaluation, predict, the teacher's pseudo-labels): the detail prediction from
            # sliding detail-crop windows (hr_slide_inference=True), overlapping by half a window
            # (mmseg/models/segmentors/hrda_encoder_decoder.py hr_slide_overlapping=True)
            "hr_slide_inference": True,
            "hr_slide_overlapping": True,
        },
    },
    "data": {
        "source": {**_dataset_defaults("gta5", "data/GTA5"),
                   # rare-class sampling (DAFormer mmseg/datasets/uda_dataset.py; udaseg/data/rcs.py)
                   "rcs": {"enabled": False, "temperature": 0.01, "min_pixels": 3000, "min_crop_ratio": 0.5}},
        "target": _dataset_defaults("cityscapes", "data/cityscapes", split="train"),
        "val": _dataset_defaults("cityscapes", "data/cityscapes", split="val"),
        # a labelled target split to choose hyper-parameters on (loss weights, checkpoints) so that
        # val is only reported: the embedded benchmark writes one; with real data, a labelled part
        # of your own target images (`udaseg evaluate --split dev`, train.validate_on=dev)
        "dev": _dataset_defaults("cityscapes", "data/cityscapes", split="dev"),
        # per domain and per process: a step sees B source + B target images on each of W processes
        "batch_size": 1,
        # if set: the global batch per domain (B·W), split across the W processes (FADA's choice),
        # so the batch — and the LR that suits it — do not change with the number of GPUs
        "global_batch_size": None,
        "workers": 2,
        "pin_memory": True,
    },
    "method": {"name": "source_only"},
    # mean-teacher self-training on top of any method with source images (udaseg/engine/mean_teacher.py)
    "self_training": {
        "enabled": False,
        "alpha": 0.999,  # EMA; DAFormer configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_*.py (DACS: 0.99)
        "tau": 0.968,  # confidence threshold; DAFormer configs/_base_/uda/dacs.py, DACS trainUDA.py
        # the pseudo-label weight, a share of confident pixels: per image (as specified here) or
        # per batch (DACS / DAFormer compute one share per batch; the same at batch 1)
        "pseudo_weight": "image",
        "weight": 1.0,  # of the ClassMix loss (DACS / DAFormer: 1)
        # DAFormer's pseudo-label crop: this many rows at the top / bottom of each target image *as
        # the network gets it* (after resize and crop) have pseudo-label weight 0. Absolute rows, not
        # rescaled with the image: DAFormer's 15 / 120 (configs/daformer/gta2cs_uda_warm_fdthings_
        # rcs_croppl_a999_*.py, experiments.py plcrop; its base uda/dacs.py: 0) are rows of a 512-high
        # crop of Cityscapes at 1024×512, i.e. 30 / 240 rows of the 1024-high frame; scale them yourself
        # for another target height
        "ignore_top": 0,  # rectification artefacts at the top
        "ignore_bottom": 0,  # the ego car
        "include_ignore": True,  # ClassMix may pick the ignore label as a class (DACS does)
        "teacher_buffers": "keep",  # keep | copy: BN statistics of the teacher (references: keep)
        # auto | eval | batch: how the teacher's BN normalises; auto = the references' train-mode
        # teacher: batch statistics when BN trains, running ones when model.bn_mode is frozen
        "teacher_bn": "auto",
        "jitter_prob": 0.8,  # strong augmentation, DAFormer mmseg/models/utils/dacs_transforms.py
        "jitter_strength": 0.2,
        "blur_prob": 0.5,
        # masked image consistency: MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py
        "mic": {"enabled": False, "block_size": 64, "ratio": 0.7, "weight": 1.0},
    },
    # DAFormer's ImageNet feature distance on source images (udaseg/engine/feature_distance.py),
    # on the segmentor's features (model.feature_stage; layer4 for DeepLab-V2)
    "feature_distance": {
        "enabled": False,
        "weight": 0.005,  # lambda_FD; DAFormer configs/_base_/uda/dacs_a999_fdthings.py imnet_feature_dist_lambda
        # trainIds of the model's class set whose feature cells count; null = every cell (DAFormer
        # imnet_feature_dist_classes=None). Default: the 19-class things of dacs_a999_fdthings.py
        # (light, sign, person, rider, car, truck, bus, train, motorcycle, bicycle); for the
        # 16-class SYNTHIA set the same classes are [6, 7, 10, 11, 12, 13, 14, 15]
        "thing_classes": [6, 7, 11, 12, 13, 14, 15, 16, 17, 18],
        # a cell takes the label that at least this share of its pixels have, else none
        # (DAFormer dacs_a999_fdthings.py imnet_feature_dist_scale_min_ratio; mmseg/utils/utils.py)
        "scale_min_ratio": 0.75,
    },
    "train": {
        "iters": 40000,
        "init_from": None,  # checkpoint to start from (e.g. the source-only stage's last.pt)
        # the paper's two stages: this many source-only iterations first, into <run>/source_only,
        # whose last checkpoint initialises the adaptation (ignored when init_from is set)
        "pretrain_iters": 0,
        # segmenter optimiser: sgd (the paper, fine-tuning ImageNet weights) | adamw (from
        # scratch) | adam; udaseg/engine/optim.py
        "optimizer": "sgd",
        "lr": 2.5e-4,
        "head_lr_mult": 10.0,
        "momentum": 0.9,  # sgd
        "betas": [0.9, 0.999],  # adam / adamw (torch's defaults)
        "weight_decay": 5e-4,  # L2 for sgd, decoupled for adamw
        "poly_power": 0.9,  # poly LR power (the paper: 0.9; DAFormer schedules/poly10warm.py: 1.0)
        # linear LR warm-up of the segmenter (DAFormer schedules/poly10warm.py: 1500, 1e-6); 0: none
        "warmup_iters": 0,
        "warmup_ratio": 1e-6,
        # weight decay 0 on normalisation weights and biases (transformer archs; udaseg/engine/
        # optim.py): auto = DAFormer's paramwise_cfg norm decay_mult 0 for the MiT encoder's
        # LayerNorms (its decoder BN keeps its decay), none on DeepLab-V2 | true | false | all (also
        # the decode head's BN, not DAFormer's). DeepLab-V2 takes auto or false only
        "no_decay_norm": "auto",
        "optimizer_d": "adam",  # discriminators: adam (FADA, ADVENT) | sgd (momentum train.momentum)
        "lr_d": 1e-4,
        "betas_d": [0.9, 0.99],
        # auto (bf16 on GPUs that have it, else fp16 with a GradScaler; fp32 on the CPU) | none |
        # bf16 | fp16 (CUDA only)
        "amp": "auto",
        "channels_last": False,
        "device": "auto",  # auto | cpu | cuda
        "val_every": 2000,
        # the split of the periodic validation and of best.pt: val (the papers' practice) | dev
        # (data.dev: then nothing during training looks at val)
        "validate_on": "val",
        "checkpoint_every": 2000,
        "keep_every": 0,  # also keep a weights-only snapshot iter_NNNNNN.pt every N iterations (0: off)
        "log_every": 20,
        "image_every": 1000,  # TensorBoard images (source/target, prediction, entropy)
        # deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG on CUDA); see README "GPUs"
        "deterministic": False,
        # keep freed memory mapped between steps (glibc mallopt; udaseg/engine/memory.py):
        # auto = on the CPU only
        "malloc_tuning": "auto",
        "cudnn_benchmark": "auto",  # auto = on CUDA unless train.deterministic
        # torch intra-op threads of the training process: an integer, or auto = the cores that
        # other processes leave free when the run starts (at least 1; engine/device_defaults.py)
        "threads": "auto",
    },
    "eval": {
        "num_classes": None,  # evaluate in another class set than the model's (e.g. 16)
        "batch_size": 1,
        "flip": False,
        "scales": [1.0],
        # sliding-window inference (evaluation, periodic validation, predict; the command line's
        # --sliding / --stride win): windows of (W, H) network-input pixels, logits averaged where
        # they overlap; null = the whole image. stride null = 2/3 of the window (HRDA: windows
        # [1024, 1024], stride [512, 512], gtaHR2csHR_hrda.py test_cfg)
        "window": None,
        "stride": None,
    },
}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_type(key: str, default, value) -> Any:
    if key in AUTO_OR_INT:
        if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"config key {key!r} must be a positive integer or auto, got {value!r}")
        return value
    if key in AUTO_OR_BOOL:
        words = AUTO_OR_BOOL_WORDS.get(key, ())
        if value != "auto" and value not in words and not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true, false, {''.join(w + ', ' for w in words)}or auto, "
                              f"got {value!r}")
        return value
    if value is None:
        return value
    if default is None:
        want = OPTIONAL_TYPES.get(key)
        ok = (want,) if want is not float else (int, float)
        if want is not None and (not isinstance(value, ok) or isinstance(value, bool)):
            what = {int: "an integer", float: "a number", list: "a list"}.get(want, "a string")
            raise ConfigError(f"config key {key!r} must be {what} (or null), got {value!r}")
        return float(value) if want is float else value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true/false, got {value!r}")
        return value
    if isinstance(default, float):
        if not _is_number(value):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        return value
    return value


def merge(base: dict, update: dict, schema: dict | None, prefix: str = "") -> dict:
    """Recursively merge ``update`` into a copy of ``base``, checking keys and types against
    ``schema`` (None: anything goes below this key)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        full = f"{prefix}{key}"
        if schema is not None and key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {full!r}{hint} (valid keys here: {', '.join(sorted(schema))})")
        sub = None if schema is None or full in FREE_FORM else schema[key]
        if isinstance(sub, dict) or (schema is None and isinstance(out.get(key), dict)):
            if value is None and full in FREE_FORM:
                out[key] = {}
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} must be a mapping, got {value!r}")
            out[key] = merge(out.get(key, {}), value, sub if isinstance(sub, dict) else None, full + ".")
        elif full in FREE_FORM:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} must be a mapping, got {value!r}")
            out[key] = copy.deepcopy(value) or {}
        else:
            out[key] = _check_type(full, sub if schema is not None else None, value)
    return out


def split_override_list(text: str) -> list[str]:
    """``"a=1,b.c=[2,3],d={x: 1, y: 2}"`` → ``["a=1", "b.c=[2,3]", "d={x: 1, y: 2}"]``: split at the
    commas outside brackets and braces (a YAML list or mapping value keeps its own)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [o for o in out if o]


def parse_override(text: str) -> dict:
    """``"a.b.c=1e-3"`` → ``{"a": {"b": {"c": 0.001}}}`` (the value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string; a user means the number
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return any(c.isdigit() for c in s)


def _fix_numbers(node):
    """YAML 1.1 (PyYAML) reads ``1e-3`` (no dot) as a string; configs mean the number."""
    if isinstance(node, dict):
        return {k: _fix_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_numbers(v) for v in node]
    if isinstance(node, str) and _looks_numeric(node) and node.strip() == node:
        return float(node)
    return node


def read_yaml_chain(path: str | Path, _chain: tuple = ()) -> dict:
    """A config file with its ``_base_`` chain merged, bases first (no validation yet). ``_base_``
    is a file or, as in mmsegmentation, a list of files merged in order (a later one overrides an
    earlier one, where mmseg refuses a key set by two bases; the file itself overrides them all);
    paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        referred = f" (the _base_ of {_chain[-1]})" if _chain else ""
        raise ConfigError(f"config file {path} not found{referred}")
    here = path.resolve()
    if here in _chain:
        # names relative to the first file's folder: two base.yaml in different folders stay apart
        cycle = " -> ".join(os.path.relpath(p, _chain[0].parent) for p in (*_chain[_chain.index(here):], here))
        raise ConfigError(f"{path}: circular _base_ chain {cycle}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    data = _fix_numbers(data)
    base = data.pop("_base_", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else base  # [] is allowed: no base, as in mmseg
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, got {base!r}")
    merged: dict = {}
    for b in bases:
        merged = _deep_update(merged, read_yaml_chain(path.parent / b, (*_chain, here)))
    return _deep_update(merged, data)


def _deep_update(base: dict, update: dict, merge_transforms: bool = False) -> dict:
    """``update`` merged into a copy of ``base``. A ``transforms`` mapping is replaced as a whole
    (a config file states a pipeline completely) unless ``merge_transforms``: a dotted override
    below it (``data.target.transforms.resize=[256,128]``) changes that one key and keeps flip
    and jitter."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and (k != "transforms" or merge_transforms):
            out[k] = _deep_update(out[k], v, merge_transforms)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(raw: dict, overrides=()) -> dict:
    """Defaults ← raw ← overrides, validated; the method section against its method's defaults."""
    from udaseg.methods import method_defaults

    update = copy.deepcopy(raw)
    for o in overrides:
        below_transforms = isinstance(o, str) and ".transforms." in o.split("=", 1)[0]
        update = _deep_update(update, parse_override(o) if isinstance(o, str) else o, merge_transforms=below_transforms)
    method_update = update.pop("method", {}) or {}
    cfg = merge(DEFAULTS, update, DEFAULTS)
    name = method_update.get("name", cfg["method"]["name"])
    try:
        mdefaults = method_defaults(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    cfg["method"] = merge({"name": name, **mdefaults}, method_update, {"name": "", **mdefaults}, "method.")
    _check_bounds(cfg)
    _check_model(cfg)
    _check_hrda(cfg)
    if cfg["eval"]["stride"] is not None and cfg["eval"]["window"] is None:
        raise ConfigError("config key 'eval.stride' is set, but eval.window is null (no sliding window to step): "
                          "set eval.window too, or leave eval.stride null")
    return cfg


def _check_hrda(cfg: dict) -> None:
    """``model.hrda`` switched on: a daformer_mitbX arch, settings whose logit grids align
    (udaseg/models/hrda.py ``check_hrda_settings``), and training crops it can cut the detail crop
    from (sides multiples of 8 and at least ``hr_crop_size``, where the transforms fix the size)."""
    from udaseg.models import TRANSFORMER_SEGMENTORS
    from udaseg.models.hrda import check_hrda_settings

    mc = cfg["model"]
    hc = mc.get("hrda") or {}
    if not hc.get("enabled"):
        return
    arch = mc["arch"]
    if TRANSFORMER_SEGMENTORS.get(arch, ("", ""))[1] != "daformer":
        raise ConfigError(f"config key 'model.hrda.enabled' is true, but {arch} has no DAFormer head: HRDA's scale "
                          f"attention is defined for DAFormerHead and DLV2Head (lhoyer/HRDA hrda_head.py), and "
                          f"udaseg supports it on daformer_mitb0..5: set model.arch=daformer_mitbX")
    w, h = hc["hr_crop_size"]
    try:
        factor = check_hrda_settings(hc["scales"], (h, w), hc["crop_coord_divisible"], hc["hr_loss_weight"],
                                     hc["lr_loss_weight"], hc["fixed_attention"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from udaseg.engine.mean_teacher import output_size

    unit = 4 * factor
    for section in ("source", "target"):
        size = output_size(cfg["data"][section].get("transforms"))
        if size and (size[0] % unit or size[1] % unit or size[0] < w or size[1] < h):
            raise ConfigError(f"config key 'data.{section}.transforms' gives {size[0]}x{size[1]} training images, but "
                              f"HRDA needs sides that are multiples of {unit} and at least model.hrda.hr_crop_size "
                              f"{w}x{h} (W x H): choose another crop, or a smaller hr_crop_size")


def _check_model(cfg: dict) -> None:
    """The model keys that depend on the arch: a transformer arch (MiT + DAFormer / SegFormer head)
    has no auxiliary head and no BN statistics to freeze; DeepLab-V2 has no MiT stages and no norm
    exemption in its optimiser groups."""
    from udaseg.models import TRANSFORMER_BN_MODES, TRANSFORMER_SEGMENTORS

    mc, tc = cfg["model"], cfg["train"]
    arch = mc["arch"]
    if arch in TRANSFORMER_SEGMENTORS:
        if mc["multi_level"]:
            raise ConfigError(f"config key 'model.multi_level' is true, but {arch} has no auxiliary head: "
                              f"set model.multi_level=false")
        if mc["bn_mode"] not in TRANSFORMER_BN_MODES:
            raise ConfigError(f"config key 'model.bn_mode' is {mc['bn_mode']!r}, but {arch} takes "
                              f"{' or '.join(TRANSFORMER_BN_MODES)} (MiT normalises with LayerNorm and the decode "
                              f"head's BN trains from scratch: no statistics to freeze); set model.bn_mode=trainable")
        if mc["pretrained"] and mc["input_norm"] != "imagenet":
            raise ConfigError(f"config key 'model.input_norm' is {mc['input_norm']!r}, but the MiT weights of "
                              f"model.pretrained expect imagenet (RGB, ImageNet mean/std): "
                              f"set model.input_norm=imagenet")
    else:
        if mc["feature_stage"] is not None:
            raise ConfigError(f"config key 'model.feature_stage' applies to the transformer archs only; {arch} "
                              f"returns its layer4 features: leave it null")
        if tc["no_decay_norm"] not in ("auto", False):
            raise ConfigError(f"config key 'train.no_decay_norm' is {tc['no_decay_norm']!r}, but {arch} has no norm "
                              f"exemption in its optimiser groups (DAFormer adds its norm decay_mult 0 for MiT "
                              f"encoders only: experiments.py): use auto or false")


def _check_bounds(cfg: dict) -> None:
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        if cfg[section][name] not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(allowed)}, got {cfg[section][name]!r}")
    for key, bounds in BOUNDS.items():
        node = _get(cfg, key)
        if key in OPTIONAL_TYPES and node is None:  # null where the default is null
            continue
        if isinstance(_get(DEFAULTS, key), list) or OPTIONAL_TYPES.get(key) is list:  # checked element by element
            want = LIST_LENGTHS.get(key)
            if not isinstance(node, list) or not node or (want and len(node) != want):
                what = f"a list of {want} numbers" if want else "a non-empty list of numbers"
                raise ConfigError(f"config key {key!r} must be {what}, got {node!r}")
            for i, v in enumerate(node):
                if key in INT_LISTS and (not isinstance(v, int) or isinstance(v, bool)):
                    raise ConfigError(f"config key {key!r} must be a list of integers, got {node!r}")
                _check_range(f"{key}[{i}]", v, *bounds)
        elif node is not None or key not in OPTIONAL_TYPES:  # null only where the default is null
            _check_range(key, node, *bounds)
    for name, value in cfg["method"].items():  # loss weights: a negative one would maximise its loss
        if _is_number(value) and not math.isfinite(value):  # first: a NaN weight is not "below 0"
            raise ConfigError(f"config key 'method.{name}' must be a finite number, got {value!r}")
        if (name.startswith("lambda_") or name == "d_weight") and not (_is_number(value) and value >= 0):
            raise ConfigError(f"config key 'method.{name}' is a loss weight and must be at least 0, got {value!r}")


def _get(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _check_range(key: str, value, low, low_ok: bool, high, high_ok: bool) -> None:
    if not _is_number(value):
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
    if high is None:  # the old one-sided wording, which users and tests know
        if value < low or (value == low and not low_ok):
            raise ConfigError(f"config key {key!r} must be {'at least' if low_ok else 'greater than'} {low}, "
                              f"got {value!r}")
    elif value < low or value > high or (value == low and not low_ok) or (value == high and not high_ok):
        raise ConfigError(f"config key {key!r} must be in {'[' if low_ok else '('}{low}, {high}{']' if high_ok else ')'}, "
                          f"got {value!r}")


def load_config(path: str | Path | None, overrides=()) -> dict:
    """Read, merge and validate a config file (or only the defaults when ``path`` is None)."""
    return resolve(read_yaml_chain(path) if path else {}, overrides)


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
