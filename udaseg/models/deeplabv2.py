"""DeepLab-V2: dilated ResNet + ASPP classifier(s), its BatchNorm modes, LR groups and init loaders.

Numbers (DESIGN.md §2):
- ASPP = *sum* of four 3×3 convs, dilation = padding = 6, 12, 18, 24, with bias, weights
  N(0, 0.01) (ADVENT ``ClassifierModule``, FADA ``ASPP_Classifier_V2``). AdaptSegNet's version
  returns after two branches — a bug not copied here. Biases start at 0 (the references leave
  PyTorch's default uniform init).
- Multi-level (ADVENT / AdaptSegNet): aux ASPP on layer3 (1024 ch), main ASPP on layer4 (2048 ch).
  R101, K=19: 44,601,560 parameters (single-level 43,901,068).
- LR: backbone ×1, classifier heads ×10 (paper §4.3, all three references).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from udaseg.models.aspp_taps import aspp_by_taps
from udaseg.models.frozen_bn import freeze_batchnorm


ASPP_RATES = (6, 12, 18, 24)
ASPP_IMPLS = ("taps", "dilated_conv")

# name -> (affine params trainable, running statistics updated in train mode, SyncBatchNorm)
BN_MODES: dict[str, tuple[bool, bool, bool]] = {
    "frozen": (False, False, False),  # paper setting from ImageNet weights (FADA: FrozenBatchNorm2d)
    "frozen_affine": (False, True, False),  # what ADVENT/AdaptSegNet actually do in train mode
    "trainable": (True, True, False),  # plain BN; training from scratch
    "sync": (True, True, True),  # trainable, statistics synchronised across DDP ranks
}

_BN_TYPES = (nn.BatchNorm2d, nn.SyncBatchNorm)


class ExtraPrediction(NamedTuple):
    """A further prediction a segmentor makes in training, trained with its own share of the
    segmentation loss (HRDA's detail-crop logits, ``udaseg.models.hrda``).

    name:   suffix of its loss term (``seg`` → ``seg_hr``).
    logits: (N, K, h, w) prediction of the input's ``box``.
    box:    (y1, y2, x1, x2) in input pixels that ``logits`` covers; None: the whole input.
    weight: its share of the segmentation loss; the main ``logits`` keep 1 − Σ weights
            (``udaseg.methods.base.prediction_terms``).
    """

    name: str
    logits: torch.Tensor
    box: tuple[int, int, int, int] | None
    weight: float

    def crop(self, t):
        """``t`` (N, H, W) or (N, C, H, W) cut to ``box``; anything else (a scalar weight, None)
        unchanged."""
        if self.box is None or not torch.is_tensor(t) or t.dim() < 3:
            return t
        y1, y2, x1, x2 = self.box
        return t[..., y1:y2, x1:x2]


class SegmentorOutput(NamedTuple):
    """What every segmentor returns.

    logits:     (N, K, H/8, W/8) main prediction at the network's stride (not upsampled).
    aux_logits: (N, K, H/8, W/8) prediction of the layer3 head, or None when single-level.
    features:   (N, C, H/8, W/8) layer4 features (C = 2048 for R50/R101, 512 for R18) — what
                the fine-grained discriminator of FADA / the paper sees.
    extra:      further predictions with their own loss share (:class:`ExtraPrediction`); empty
                for every segmentor but HRDA's in training mode.
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor | None
    features: torch.Tensor
    extra: tuple[ExtraPrediction, ...] = ()


class ASPPClassifier(nn.Module):
    """DeepLab-V2 ASPP classifier: ``y = Σ_r conv3x3_{dilation=r}(x)`` over ``rates``.

    Args:
        in_ch: input channels (2048 on layer4, 1024 on layer3 of R50/R101).
        num_classes: K.
        rates: dilation (= padding) of each branch; DeepLab-V2 uses (6, 12, 18, 24).
        impl: ``"taps"`` (default) computes the same sum as one 1×1 convolution over all taps
            plus a shifted sum, skipping taps that read only padding (``aspp_taps``; 8× faster
            on a CPU, float32 output); ``"dilated_conv"`` runs the four convolutions as written
            (the references' form). Same parameters, so checkpoints are interchangeable.

    Shapes: (N, in_ch, H, W) → (N, K, H, W).

    Example::

        head = ASPPClassifier(2048, 19)
        logits = head(torch.randn(2, 2048, 65, 129))  # (2, 19, 65, 129)
    """

    def __init__(self, in_ch: int, num_classes: int, rates: Sequence[int] = ASPP_RATES, impl: str = "taps"):
        super().__init__()
        if len(rates) == 0:
            raise ValueError("ASPPClassifier needs at least one rate")
        if impl not in ASPP_IMPLS:
            raise ValueError(f"unknown ASPP implementation {impl!r} (model.aspp_impl); valid: {', '.join(ASPP_IMPLS)}")
        self.rates, self.impl = tuple(rates), impl
        self.branches = nn.ModuleList(
            nn.Conv2d(in_ch, num_classes, 3, padding=r, dilation=r, bias=True) for r in rates
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "taps":
            return aspp_by_taps(x, [b.weight for b in self.branches], [b.bias for b in self.branches], self.rates)
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)  # every branch is summed (AdaptSegNet stops after two)
        return out


def _check_bn_mode(bn_mode: str) -> None:
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; valid modes: {', '.join(BN_MODES)}")


class DeepLabV2(nn.Module):
    """DeepLab-V2 segmentor: ``backbone`` → main ASPP on layer4 (+ aux ASPP on layer3).

    Args:
        backbone: a ``ResNetBackbone`` (anything returning ``.layer3`` / ``.layer4`` and exposing
            ``layer3_channels`` / ``layer4_channels``).
        num_classes: K.
        multi_level: add the auxiliary layer3 head (ADVENT / AdaptSegNet); FADA has none.
        bn_mode: one of ``BN_MODES``:
            ``"frozen"`` — BN layers always in eval mode (statistics fixed) and affine params
            frozen, whatever ``train()`` says; the paper's setting from ImageNet weights. The
            backbone's BN layers become ``FrozenBatchNorm2d`` (same state dict and parameters;
            its backward keeps no BN input: about half the saved activations, ``frozen_bn.py``).
            ``"frozen_affine"`` — affine frozen, running statistics still update in train mode
            (the references' actual behaviour). ``"trainable"`` — plain BN. ``"sync"`` —
            trainable, converted to ``nn.SyncBatchNorm`` (synchronises only under DDP; single
            process it behaves like ``"trainable"``).

    ``forward(x)`` returns ``SegmentorOutput(logits, aux_logits, features)`` at output stride 8.

    Example::

        model = DeepLabV2(ResNetBackbone(101, "caffe"), num_classes=19)
        out = model(images)  # out.logits: (N, 19, 65, 129) for 512×1024 images
        opt = torch.optim.SGD(model.param_groups(2.5e-4), lr=2.5e-4, momentum=0.9)
    """

    def __init__(self, backbone: nn.Module, num_classes: int, multi_level: bool = True,
                 bn_mode: str = "frozen", aspp_impl: str = "taps"):
        super().__init__()
        _check_bn_mode(bn_mode)
        self.num_classes = num_classes
        self.multi_level = multi_level
        self.bn_mode = bn_mode
        self.feature_channels = backbone.layer4_channels
        affine_trainable, _, sync = BN_MODES[bn_mode]
        if sync:
            # Needs no process group to build; synchronises only when one is initialised.
            backbone = nn.SyncBatchNorm.convert_sync_batchnorm(backbone)
        elif bn_mode == "frozen":
            backbone = freeze_batchnorm(backbone)  # an nn.BatchNorm2d subclass: _batchnorms() finds it
        self.backbone = backbone
        self.classifier = ASPPClassifier(backbone.layer4_channels, num_classes, impl=aspp_impl)
        self.aux_classifier = (
            ASPPClassifier(backbone.layer3_channels, num_classes, impl=aspp_impl) if multi_level else None
        )
        for m in self._batchnorms():
            for p in m.parameters():
                p.requires_grad_(affine_trainable)
        self.train(self.training)  # puts frozen BN in eval mode from the start

    def _batchnorms(self):
        return (m for m in self.modules() if isinstance(m, _BN_TYPES))

    def train(self, mode: bool = True) -> "DeepLabV2":
        """Like ``nn.Module.train``, except that in ``"frozen"`` mode BN layers stay in eval."""
        super().train(mode)
        if not BN_MODES[self.bn_mode][1]:
            for m in self._batchnorms():
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> SegmentorOutput:
        feats = self.backbone(x)
        aux = self.aux_classifier(feats.layer3) if self.aux_classifier is not None else None
        return SegmentorOutput(self.classifier(feats.layer4), aux, feats.layer4)

    def param_groups(self, base_lr: float, head_lr_mult: float = 10.0) -> list[dict[str, Any]]:
        """Optimizer parameter groups: backbone at ``base_lr``, heads at ``head_lr_mult × base_lr``.

        Each trainable parameter appears exactly once (ADVENT/AdaptSegNet's ``get_1x_lr_params``
        yields backbone params about three times, an effective 3× LR); frozen parameters are
        left out. Each group carries ``name`` ("backbone" / "head") and ``lr_mult`` (1.0 / 10.0)
        so a scheduler can set ``group["lr"] = lr_now * group["lr_mult"]``. Empty groups are
        dropped.
        """
        backbone, head = [], []
        for name, p in self.named_parameters():  # named_parameters() de-duplicates shared params
            if p.requires_grad:
                (backbone if name.startswith("backbone.") else head).append(p)
        groups = [
            {"name": "backbone", "params": backbone, "lr": base_lr, "lr_mult": 1.0},
            {"name": "head", "params": head, "lr": base_lr * head_lr_mult, "lr_mult": float(head_lr_mult)},
        ]
        return [g for g in groups if g["params"]]


# ---------------------------------------------------------------------------------------------
# Init from local weight files
# ---------------------------------------------------------------------------------------------

LAYOUTS = ("caffe", "torchvision", "udaseg")

_LAYOUT_DESCRIPTIONS = {
    "caffe": "a DeepLab Caffe-converted ResNet state dict ('Scale.' prefix, e.g. ADVENT's "
             "DeepLab_resnet_pretrained_imagenet.pth)",
    "torchvision": "a torchvision ResNet state dict ('conv1.weight', 'layer1.0.conv1.weight', 'fc.*')",
    "udaseg": "a udaseg segmentor state dict ('backbone.*', 'classifier.*')",
}

# Which backbone style each pretrained layout was trained for (udaseg fits any).
_LAYOUT_STYLE = {"caffe": "caffe", "torchvision": "torchvision"}

# Absent from files saved before PyTorch 0.4.1 (the 2017 Caffe conversions, older torchvision
# files); BN with a momentum (our case) never reads it, so a file need not provide it.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


@dataclass
class LoadReport:
    """What ``load_pretrained`` did. Keys are the model's own names unless said otherwise.

    loaded:     model keys set from the file.
    missing:    model keys the file did not provide (the fresh heads, for ImageNet inits);
                ``*.num_batches_tracked`` is never listed.
    unexpected: file keys (file's own names) that have no place in the model.
    skipped:    file keys deliberately ignored (the old classifier ``Scale.layer5.*``, ``fc.*``).
    """

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.path} ({self.layout} layout): {len(self.loaded)} tensors loaded, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.skipped)} skipped")


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _few(keys: Sequence[str], n: int = 5) -> str:
    keys = list(keys)
    more = f", … ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch.load with weights_only=True; unwrap ``{"segmentor": sd}`` / ``{"state_dict": sd}``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(e), re.S)
        detail = detail.group(1).split(". ")[0].strip() if detail else str(e).splitlines()[0]
        if "Unsupported global" in detail:  # e.g. a whole pickled nn.Module: loading it runs code
            raise ValueError(
                f"{path}: cannot be read as a weights-only state dict: it holds pickled Python "
                f"objects besides tensors ({detail}); save `model.state_dict()` instead"
            ) from e
        raise ValueError(f"{path}: not a readable torch weights file (unpickler: {detail})") from e
    except Exception as e:  # truncated zip, I/O error, …
        raise ValueError(f"{path}: not a readable torch weights file "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no details'})") from e
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("segmentor", "state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                meta = {k: v for k, v in obj.items() if k != key and isinstance(v, (str, int, float))}
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a state dict (a non-empty mapping of names to tensors), "
                         f"found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise ValueError(f"{path}: expected a state dict of tensors, found non-tensor entries {_few(bad)}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):  # saved from a DDP / DataParallel wrapper
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, meta


def detect_layout(keys: Sequence[str]) -> str | None:
    """Name the layout of a state dict from its keys: one of ``LAYOUTS``, or None if unknown."""
    keys = list(keys)
    if keys and all(k.startswith("Scale.") for k in keys):
        return "caffe"
    if any(k.startswith(("backbone.", "classifier.")) for k in keys):
        return "udaseg"
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys) and not any(
        k.startswith(("layer5.", "layer6.")) for k in keys
    ):
        return "torchvision"
    return None


def _describe_found(keys: Sequence[str]) -> str:
    layout = detect_layout(keys)
    if layout is not None:
        return f"it looks like {_LAYOUT_DESCRIPTIONS[layout]}"
    if any(k.startswith(("layer5.", "layer6.")) for k in keys):
        return ("it looks like a trained ADVENT/AdaptSegNet DeepLabMulti state dict "
                "('layer5'/'layer6' classifiers), which is not a supported init layout")
    return f"its keys match no known layout (first keys: {_few(sorted(keys))})"


def _map_keys(sd: Mapping[str, torch.Tensor], layout: str) -> tuple[dict[str, str], list[str]]:
    """file key -> model key, plus the file keys skipped on purpose."""
    mapping, skipped = {}, []
    for key in sd:
        if layout == "caffe":
            name = key[len("Scale."):]
            if name.startswith("layer5."):  # the old (VOC/COCO) classifier: K differs, re-initialised
                skipped.append(key)
                continue
            mapping[key] = "backbone." + name
        elif layout == "torchvision":
            if key.startswith("fc."):  # ImageNet classifier
                skipped.append(key)
                continue
            mapping[key] = "backbone." + key
        else:
            mapping[key] = key
    return mapping, skipped


def load_pretrained(model: DeepLabV2, path: str | os.PathLike, *, layout: str = "auto",
                    sha256: str | None = None, strict: bool = True) -> LoadReport:
    """Initialise ``model`` from a local weight file and report what was loaded.

    Supported layouts (detected from the keys when ``layout="auto"``):
    - ``"caffe"``: DeepLab Caffe-converted ResNet (``Scale.conv1.weight``,
      ``Scale.layer1.0.downsample.0.weight``, …; ``Scale.layer5.*`` = old classifier, skipped)
      → backbone of a *Caffe-style* model (ADVENT / AdaptSegNet init).
    - ``"torchvision"``: torchvision ``resnet{18,50,101}`` state dict (``fc.*`` skipped)
      → backbone of a *torchvision-style* model (FADA init).
    - ``"udaseg"``: a udaseg segmentor state dict, bare or under a ``"segmentor"`` /
      ``"state_dict"`` / ``"model"`` key; any style (names are the same, so the style cannot be
      checked from the keys — a ``"arch"`` string stored beside it is compared with ``model.arch``).
    A ``module.`` prefix (DDP) is stripped. ``*.num_batches_tracked`` is optional.

    The file is read with ``torch.load(weights_only=True, map_location="cpu")``: no code runs.

    Args:
        layout: ``"auto"`` or one of ``LAYOUTS``; a file of another layout is refused.
        sha256: expected hex digest of the file; a mismatch raises before the file is parsed.
        strict: refuse unexpected file keys and missing keys (for ImageNet layouts only missing
            *backbone* keys count; the heads are expected to be fresh). Shape mismatches and
            layout/style mismatches always raise.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: checksum mismatch, unreadable file, unknown/wrong layout, wrong backbone
            style, shape mismatch, or (strict) missing/unexpected keys — each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    if sha256 is not None:
        actual = sha256sum(path)
        if actual.lower() != sha256.lower():
            raise ValueError(f"{path}: SHA-256 mismatch: expected {sha256.lower()}, got {actual}")
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: 'auto', {', '.join(map(repr, LAYOUTS))}")

    sd, meta = read_state_dict(path)
    found = detect_layout(list(sd))
    if found is None or (layout != "auto" and found != layout):
        expected = _LAYOUT_DESCRIPTIONS[layout] if layout != "auto" else " or ".join(_LAYOUT_DESCRIPTIONS.values())
        raise ValueError(f"{path}: expected {expected}, but {_describe_found(list(sd))}")

    style = getattr(model.backbone, "style", None)
    want_style = _LAYOUT_STYLE.get(found)
    if want_style is not None and style != want_style:
        raise ValueError(
            f"{path}: looks like {_LAYOUT_DESCRIPTIONS[found]}, made for a {want_style}-style "
            f"backbone, but the model is {style} style ("
            + ("use a '*_tv' arch" if want_style == "torchvision" else "use an arch without '_tv'")
            + ")"
        )
    if found == "udaseg" and isinstance(meta.get("arch"), str) and getattr(model, "arch", None):
        if meta["arch"] != model.arch:
            raise ValueError(f"{path}: checkpoint was saved from arch {meta['arch']!r}, "
                             f"but the model is {model.arch!r}")

    mapping, skipped = _map_keys(sd, found)
    own = model.state_dict()
    unexpected = [k for k, m in mapping.items() if m not in own]
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[m].shape)}"
        for k, m in mapping.items() if m in own and sd[k].shape != own[m].shape
    ]
    if mismatched:
        raise ValueError(f"{path}: shape mismatch between {_LAYOUT_DESCRIPTIONS[found]} and the "
                         f"model (a different ResNet depth or number of classes?), "
                         f"{len(mismatched)} tensors: {'; '.join(mismatched[:5])}"
                         + (" …" if len(mismatched) > 5 else ""))
    provided = {m for k, m in mapping.items() if m in own}
    missing = [k for k in own if k not in provided and not k.endswith(_OPTIONAL_SUFFIX)]

    if strict:
        required = missing if found == "udaseg" else [k for k in missing if k.startswith("backbone.")]
        problems = []
        if required:
            problems.append(f"missing keys {_few(required)}")
        if unexpected:
            problems.append(f"unexpected keys {_few(unexpected)}")
        if problems:
            raise ValueError(f"{path} ({found} layout) does not fit the model "
                             f"(different depth or heads?): {'; '.join(problems)}; "
                             "pass strict=False to load the matching part")

    new_state = {mapping[k]: v for k, v in sd.items() if k in mapping and mapping[k] in own}
    model.load_state_dict(new_state, strict=False)
    return LoadReport(str(path), found, loaded=sorted(new_state), missing=missing,
                      unexpected=unexpected, skipped=skipped)
