"""DAFormer's ImageNet feature distance (FD) as a component any method can switch on (config
``feature_distance``).

A frozen copy of the encoder as it was before training — the ImageNet encoder — sees each
*source* image too, and the student is pulled towards its features where the source label shows a
"thing" class (``lhoyer/DAFormer:mmseg/models/uda/dacs.py`` ``calc_feat_dist`` /
``masked_feat_dist``; ``mmseg/utils/utils.py`` ``downscale_label_ratio``)::

    F_s, F_0 = student / frozen encoder features of the source image    (N, C, h, w)
    d(i)     = ‖F_s(i) − F_0(i)‖₂                                        per feature cell i
    ŷ(i)     = the class c with share_c(i) = max, if share_c(i) ≥ r, else ignored
               (share over the label pixels of cell i; the ignore label counts as a class)
    L_FD     = λ · mean_{i : ŷ(i) ∈ things} d(i)

λ = 0.005, r = 0.75, things = the 19-class trainIds 6, 7, 11–18 (traffic light, sign, person,
rider, car, truck, bus, train, motorcycle, bicycle): ``configs/_base_/uda/dacs_a999_fdthings.py``
(``imnet_feature_dist_lambda``, ``imnet_feature_dist_scale_min_ratio``,
``imnet_feature_dist_classes``), also set in the final config
``configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py``. The features
are the last encoder stage (``lay = -1``: MiT stage 4, stride 32; ResNet layer4 for DAFormer's
DeepLab-V2 run, ``experiments.py`` id 5) — here the segmentor's ``features`` output:
``model.feature_stage`` of a transformer arch (default 4), layer4 of DeepLab-V2.

L_FD is a term of the source pass (``source_terms``), so it backpropagates with the source
segmentation loss in one backward — the sum of the reference's two backwards (source CE with
``retain_graph``, then FD), as its maintainer suggests (``lhoyer/DAFormer#42``).

Where this differs from the reference, on purpose:

- the label is pooled to the feature map's size: with an integer stride (H = s·h, W = s·w) by
  ``avg_pool2d(kernel=s)`` exactly as ``downscale_label_ratio``; otherwise (a Caffe-style
  DeepLab-V2 maps 512 px to 65 cells) by ``adaptive_avg_pool2d``, whose cells are the same ones
  whenever the stride is an integer. The reference takes ``s = W // w`` and fails on such sizes;
- no masked cell in the batch: L_FD = 0 with zero gradient. The reference's ``mean`` of an empty
  selection is NaN (its gradient is zero too), which the trainer here would stop on.

The frozen encoder — not trainable state, never in the optimiser:

- with ``model.pretrained`` set it is rebuilt from that weight file at every start, fresh or
  resumed (DAFormer's ``imnet_model``: a second segmentor built from the model config, whose
  encoder loads the ImageNet weights), also when ``train.init_from`` starts the student from
  another checkpoint (a stage-1 one). The checkpoint keeps only a SHA-256 digest of its
  tensors; a resume whose file gives other weights is refused;
- without ``model.pretrained`` (from scratch) it is a copy of the student's encoder before the
  first step (after ``train.init_from``), and the checkpoint keeps its tensors: a resumed run
  cannot recompute them.

Either way the build draws nothing from the global RNG the training uses (``fork_rng``), so a run
with FD at λ = 0 trains the weights of a run without it, and a resume stays exact.
"""
from __future__ import annotations

import copy
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from udaseg.data.labels import IGNORE_INDEX
from udaseg.engine.component import Component
from udaseg.engine.inputs import normalize_images
from udaseg.methods.base import Pass, Terms

DEFAULT_WEIGHT = 0.005  # DAFormer configs/_base_/uda/dacs_a999_fdthings.py imnet_feature_dist_lambda
DEFAULT_MIN_RATIO = 0.75  # dacs_a999_fdthings.py imnet_feature_dist_scale_min_ratio
THING_CLASSES_19 = (6, 7, 11, 12, 13, 14, 15, 16, 17, 18)  # dacs_a999_fdthings.py imnet_feature_dist_classes
# the same classes (truck and train have no SYNTHIA labels) in udaseg's 16-class set (data/labels.py)
THING_CLASSES_16 = (6, 7, 10, 11, 12, 13, 14, 15)


def downscale_label_ratio(labels: torch.Tensor, size: tuple[int, int], min_ratio: float, num_classes: int,
                          ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Labels (N, H, W) → (N, h, w) int64: each cell's majority class if at least ``min_ratio`` of
    its pixels have it, else ``ignore_index`` (DAFormer ``mmseg/utils/utils.py``).

    The ignore label takes part in the vote as a class of its own (a cell that is mostly ignored
    is ignored); a label outside [0, num_classes) counts as ignored. Cells: ``avg_pool2d`` with
    kernel s when H = s·h and W = s·w (the reference), else ``adaptive_avg_pool2d`` (module
    docstring). Example: a 4×4 label with 13 of 16 pixels "car" is one cell "car" at r = 0.75
    (13/16 ≥ 0.75), ignored at r = 0.875.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (N, H, W), got {tuple(labels.shape)}")
    (big_h, big_w), (h, w) = labels.shape[-2:], tuple(size)
    lbl = labels.long()
    lbl = torch.where((lbl >= 0) & (lbl < num_classes), lbl, torch.full_like(lbl, num_classes))
    one_hot = F.one_hot(lbl, num_classes + 1).permute(0, 3, 1, 2).float()
    s = big_w // w if w else 0
    if s >= 1 and big_h == s * h and big_w == s * w:
        share = F.avg_pool2d(one_hot, kernel_size=s) if s > 1 else one_hot
    else:
        share = F.adaptive_avg_pool2d(one_hot, (h, w))
    ratio, out = share.max(dim=1)
    out[out == num_classes] = ignore_index
    out[ratio < min_ratio] = ignore_index
    return out


def thing_mask(labels: torch.Tensor, size: tuple[int, int], classes, min_ratio: float,
               num_classes: int) -> torch.Tensor:
    """(N, h, w) bool: the cells whose downscaled label (:func:`downscale_label_ratio`) is one of
    ``classes``; every cell when ``classes`` is None (DAFormer ``imnet_feature_dist_classes=None``)."""
    if classes is None:
        return torch.ones((labels.shape[0], *size), dtype=torch.bool, device=labels.device)
    small = downscale_label_ratio(labels, size, min_ratio, num_classes)
    wanted = torch.as_tensor(list(classes), dtype=small.dtype, device=small.device)
    return (small[..., None] == wanted).any(-1)


def masked_feature_distance(student: torch.Tensor, frozen: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the cells of ``mask`` (N, h, w) of ‖student − frozen‖₂ over channels (features
    (N, C, h, w), computed in float32); all cells if ``mask`` is None; 0 (with zero gradient) when
    ``mask`` is empty (DAFormer ``masked_feat_dist``, whose empty mean is NaN)."""
    if student.shape != frozen.shape:
        raise ValueError(f"student features {tuple(student.shape)} vs frozen encoder's {tuple(frozen.shape)}")
    dist = torch.linalg.vector_norm(student.float() - frozen.float(), ord=2, dim=1)
    if mask is None:
        return dist.mean()
    if mask.shape != dist.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit features {tuple(student.shape)}")
    if not bool(mask.any()):
        return dist.sum() * 0.0
    return dist[mask].mean()


def encoder_features(model: nn.Module, encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``model(x).features`` is, computed by ``encoder`` (a copy of ``model.backbone``): the
    ``model.feature_stage`` map of a MiT encoder, layer4 of a DeepLab-V2 ResNet; for HRDA that map
    of the context input (x at 0.5: ``feature_scale=0.5``, ``lhoyer/HRDA:configs/hrda/
    gtaHR2csHR_hrda.py``; its ``dacs.py`` ``calc_feat_dist`` pools the full-resolution label to
    the LR feature grid, as :func:`thing_mask` does here)."""
    from udaseg.models import DeepLabV2, HRDASegmentor, TransformerSegmentor

    if isinstance(model, HRDASegmentor):
        return encoder(model.context_input(x))[model.feature_stage - 1]
    if isinstance(model, TransformerSegmentor):
        return encoder(x)[model.feature_stage - 1]
    if isinstance(model, DeepLabV2):
        return encoder(x).layer4
    raise TypeError(f"feature_distance: no encoder features for {type(model).__name__}")


def tensors_digest(state: dict) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_feature_distance_run(cfg: dict) -> None:
    """Bad values (the whole run config, feature distance enabled) raise, naming their key."""
    from udaseg.methods import METHODS

    fd, k = cfg["feature_distance"], cfg["model"]["num_classes"]
    method = METHODS.get(cfg["method"]["name"])
    if method is not None and not method.uses_source:
        raise ValueError(f"feature_distance works on labelled source images; method {method.name} has none")
    classes = fd["thing_classes"]
    if classes is None:
        return
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes)):
        raise ValueError(f"config key 'feature_distance.thing_classes' must be a non-empty list of class ids "
                         f"(or null: every cell), got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"config key 'feature_distance.thing_classes' lists a class twice: {classes!r}")
    bad = [c for c in classes if not 0 <= c < k]
    if bad:
        hint = f"; the things of the 16-class set are {list(THING_CLASSES_16)}" if k == 16 else ""
        raise ValueError(f"config key 'feature_distance.thing_classes' has {bad}, outside the model's {k} classes "
                         f"(0..{k - 1}){hint}")


class FeatureDistance(Component):
    """The frozen encoder and the FD term of one run."""

    key = checkpoint_key = "feature_distance"

    def __init__(self, cfg: dict, model: nn.Module, encoder: nn.Module, origin: str, *, num_classes: int,
                 input_norm: str, channels_last: bool = False):
        """``cfg``: the ``feature_distance`` section; ``model``: the student (not DDP-wrapped);
        ``encoder``: the frozen reference, a module like ``model.backbone``; ``origin``:
        ``"pretrained"`` (rebuilt from the weight file, only its digest kept) or ``"initial"``
        (the student's encoder before training, kept in checkpoints)."""
        if origin not in ("pretrained", "initial"):
            raise ValueError(f"origin must be pretrained or initial, got {origin!r}")
        self.weight, self.classes = float(cfg["weight"]), cfg["thing_classes"]
        self.min_ratio = float(cfg["scale_min_ratio"])
        self.model, self.origin, self.num_classes = model, origin, num_classes
        self.input_norm, self.channels_last = input_norm, channels_last
        ref = next((p for p in model.parameters() if p.is_floating_point()), None)
        encoder = encoder.to(device=ref.device, dtype=ref.dtype) if ref is not None else encoder
        if channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
        self.encoder = encoder.requires_grad_(False).eval()
        self.digest = tensors_digest(self.encoder.state_dict())
        self.last_cells = None  # share of the feature cells in the mask, last source pass

    @classmethod
    def from_config(cls, cfg: dict, model: nn.Module) -> "FeatureDistance":
        mc = cfg["model"]
        if mc["pretrained"]:
            from udaseg.engine.builders import segmentor_from_config

            with torch.random.fork_rng(devices=[]):  # the heads' random init: not the run's draws
                encoder, origin = segmentor_from_config(mc, "taps").backbone, "pretrained"
        else:
            encoder, origin = copy.deepcopy(model.backbone), "initial"
        return cls(cfg["feature_distance"], model, encoder, origin, num_classes=mc["num_classes"],
                   input_norm=mc["input_norm"], channels_last=cfg["train"]["channels_last"])

    check_config = staticmethod(check_feature_distance_run)

    def source_terms(self, src: Pass, batch: dict) -> Terms:
        """``{"feat_dist": (λ, mean distance)}`` on the source pass (its input: ``batch``'s images
        normalised as the step normalises them)."""
        feats = src.out.features
        x = normalize_images(batch["image"].to(feats.device, non_blocking=True), self.input_norm)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self.encoder.training:
                self.encoder.eval()
            frozen = encoder_features(self.model, self.encoder, x)
        mask = thing_mask(src.labels, tuple(feats.shape[-2:]), self.classes, self.min_ratio, self.num_classes)
        self.last_cells = float(mask.float().mean())
        return {"feat_dist": (self.weight, masked_feature_distance(feats, frozen, mask))}

    def metrics(self) -> dict:
        return {} if self.last_cells is None else {"fd_cells": self.last_cells}

    def resolved(self) -> dict:
        return {"feature_distance_encoder": self.origin}

    def state_dict(self) -> dict:
        state = {"origin": self.origin, "digest": self.digest}
        if self.origin == "initial":
            state["encoder"] = {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        if "encoder" in state:  # the run's own reference, whatever the config says now
            self.encoder.load_state_dict(state["encoder"])
            self.origin = "initial"
            self.digest = tensors_digest(self.encoder.state_dict())
            return
        if self.origin != "pretrained":
            raise ValueError("feature_distance: the checkpoint's frozen encoder came from model.pretrained, which the "
                             "config no longer sets; set it again to resume")
        if state.get("digest") != self.digest:
            raise ValueError("feature_distance: the weights of model.pretrained differ from those this run started "
                             "with (another file at that path?); its frozen ImageNet encoder cannot be rebuilt")
