"""FADA (Wang et al. 2020): the fine-grained, class-aware discriminator with domain encoding."""
from __future__ import annotations

import torch

from udaseg import losses as L
from udaseg.methods.base import Method, Pass, Terms, upsample_like
from udaseg.models import build_discriminator


class FADA(Method):
    """Fine-grained adversarial adaptation (paper eq. 2–3).

    D has 2K outputs; it learns source pixels as [a_s; 0] and target pixels as [0; a_t], with a
    the segmenter's detached softmax at temperature T, clipped at ``clip``. The segmenter learns
    to make D read target class-k pixels as source class k ([a_t; 0]).

    Defaults from FADA's ``train_adv.py``: D on layer4 features, λ_adv 0.001, D loss 0.5 per
    domain, T 1.8, clip 0.9 (not renormalised). Named choices where we differ from that script:

    - ``loss_resolution: feature`` — D's logits and a are compared at the feature resolution
      (stride 8, where both are computed). FADA upsamples both to the input size first (64×
      more 2K-channel work for the same signal); ``input`` reproduces that.

    Transformer segmentors (``TransformerSegmentor``, e.g. ``daformer_mitb5``) give logits at
    stride 4 and ``features`` of ``model.feature_stage`` at stride 4·2^(stage−1) (stage 4: 32).
    With ``loss_resolution: feature`` a is then made at D's coarser size by area-averaging
    softmax(logits / T) over each D cell before clipping (``losses.class_probabilities``: the
    cell's class shares, not one subsampled logit pixel); with ``input`` both are upsampled to the
    input size as in FADA. No auxiliary head: ``lambda_adv_aux`` needs ``multi_level``.
    - ``seg_temperature: 1.0`` — FADA's script also divides the *segmentation* logits by T
      before L_seg. We keep L_seg identical to every other method of the ablation; set 1.8 to
      reproduce the script.
    - ``lambda_adv_aux`` (default 0: FADA's one D) — with ``d_input: softmax``, a second
      fine-grained D on the auxiliary (conv4) head's softmax, AdaptSegNet's one-D-per-level scheme
      (its ratio: 0.0002 aux with 0.001 main). An axis to investigate, not FADA's method.
    """

    name = "fada"
    uses_target_images = True
    DEFAULTS = {
        **Method.DEFAULTS,
        "lambda_adv": 0.001,  # FADA train_adv: 0.001 * soft_label_cross_entropy(...)
        "d_weight": 0.5,  # FADA: 0.5 * loss_D_src, 0.5 * loss_D_tgt
        "temperature": 1.8,  # FADA: src_pred.div(1.8) before the softmax of the soft labels
        "clip": 0.9,  # FADA: soft_label[soft_label > 0.9] = 0.9
        "d_input": "features",  # features (layer4, FADA) | softmax (output space)
        "loss_resolution": "feature",  # feature | input (FADA upsamples to the input size)
        "seg_temperature": 1.0,  # FADA's script uses 1.8 on L_seg too; see the class docstring
        "lambda_adv_aux": 0.0,  # > 0: one more D on the aux head (output space only); see the docstring
    }

    def __init__(self, cfg, num_classes, feature_channels, multi_level):
        super().__init__(cfg, num_classes, feature_channels, multi_level)
        if self.cfg["d_input"] not in ("features", "softmax"):
            raise ValueError(f"method.d_input must be 'features' or 'softmax', got {self.cfg['d_input']!r}")
        if self.cfg["loss_resolution"] not in ("feature", "input"):
            raise ValueError(f"method.loss_resolution must be 'feature' or 'input', got {self.cfg['loss_resolution']!r}")
        if self.cfg["lambda_adv_aux"] > 0 and self.cfg["d_input"] != "softmax":
            raise ValueError("method.lambda_adv_aux > 0 puts a second D on the auxiliary head's output, which needs "
                             f"method.d_input: softmax (got {self.cfg['d_input']!r}; the segmenter exposes no conv4 features)")

    def levels(self) -> list[tuple[str, str, float]]:
        """(discriminator name, segmenter output it reads, weight of its adversarial term)."""
        lv = [("d_fine", "logits", self.cfg["lambda_adv"])]
        if self.multi_level and self.cfg["lambda_adv_aux"] > 0:
            lv.append(("d_fine_aux", "aux_logits", self.cfg["lambda_adv_aux"]))
        return lv

    def build_discriminators(self):
        in_ch = self.feature_channels if self.cfg["d_input"] == "features" else self.num_classes
        return {name: build_discriminator("fine_grained", in_ch, self.num_classes) for name, _, _ in self.levels()}

    def source_losses(self, src: Pass) -> Terms:
        t = self.cfg["seg_temperature"]
        if t == 1.0:
            return super().source_losses(src)
        o = src.out
        scaled = o._replace(logits=o.logits / t, aux_logits=None if o.aux_logits is None else o.aux_logits / t)
        return self.segmentation_terms(scaled, src.labels)

    # -- pieces --------------------------------------------------------------------------------
    def _d_in(self, p: Pass, head: str = "logits") -> torch.Tensor:
        if self.cfg["d_input"] == "features":
            return p.out.features
        return torch.softmax(getattr(p.out, head).float(), dim=1)

    def _d_logits(self, d, p: Pass, head: str = "logits") -> torch.Tensor:
        out = d(self._d_in(p, head))
        return upsample_like(out, p.image_size) if self.cfg["loss_resolution"] == "input" else out

    def _probs(self, p: Pass, size, head: str = "logits") -> torch.Tensor:
        # each level's soft labels come from its own head (AdaptSegNet's levels are independent)
        logits = getattr(p.out, head)
        if self.cfg["loss_resolution"] == "input":
            logits = upsample_like(logits, p.image_size)
        return L.class_probabilities(logits, self.cfg["temperature"], self.cfg["clip"], size=size)

    # -- the method ----------------------------------------------------------------------------
    def target_outputs(self) -> set[str]:
        # a_t is detached: only what D sees carries gradient
        return {"features"} if self.cfg["d_input"] == "features" else {head for _, head, _ in self.levels()}

    def target_losses(self, tgt: Pass, discs) -> Terms:
        terms = {}
        for name, head, weight in self.levels():
            d_out = self._d_logits(discs[name], tgt, head)
            a_t = self._probs(tgt, d_out.shape[-2:], head)
            terms["adv" + name[1:]] = (weight, L.fine_grained_adversarial_loss(d_out, a_t))  # adv_fine, adv_fine_aux
        return terms

    def discriminator_losses(self, src: Pass, tgt: Pass, discs):
        terms, metrics = {}, {}
        w = self.cfg["d_weight"]
        for name, head, _ in self.levels():
            d = discs[name]
            d_s, d_t = self._d_logits(d, src, head), self._d_logits(d, tgt, head)
            a_s, a_t = self._probs(src, d_s.shape[-2:], head), self._probs(tgt, d_t.shape[-2:], head)
            terms[f"{name}_src"] = (w, L.soft_label_cross_entropy(d_s, L.domain_encoding(a_s, L.SOURCE)))
            terms[f"{name}_tgt"] = (w, L.soft_label_cross_entropy(d_t, L.domain_encoding(a_t, L.TARGET)))
            metrics[f"{name}_acc"] = domain_accuracy(d_s.detach(), d_t.detach(), self.num_classes)
        return terms, metrics


def domain_accuracy(d_logits_s: torch.Tensor, d_logits_t: torch.Tensor, k: int) -> float:
    """Fraction of pixels whose D probability mass lies on the right domain half (of 2K)."""
    src_mass_s = torch.softmax(d_logits_s.float(), 1)[:, :k].sum(1)
    src_mass_t = torch.softmax(d_logits_t.float(), 1)[:, :k].sum(1)
    right = (src_mass_s > 0.5).sum() + (src_mass_t < 0.5).sum()
    return float(right) / (src_mass_s.numel() + src_mass_t.numel())
