"""ADVENT (Vu et al. 2019): MinEnt (direct entropy minimisation) and AdvEnt (adversarial
alignment of self-information maps), as two named methods."""
from __future__ import annotations

import torch

from udaseg import losses as L
from udaseg.methods.adaptsegnet import AdaptSegNet
from udaseg.methods.base import Method, Pass, Terms, upsample_like


class MinEnt(Method):
    """L_seg on source + λ_ent · L_ent on target (paper eq. 6; ADVENT's MinEnt).

    Reference defaults (ADVENT ``minent`` config): λ_ent 0.001 main, 0.0002 aux; the entropy is
    computed on predictions upsampled to the input size and averaged over pixels.
    """

    name = "minent"
    uses_target_images = True
    DEFAULTS = {
        **Method.DEFAULTS,
        "lambda_ent": 0.001,  # ADVENT LAMBDA_ENT_MAIN
        "lambda_ent_aux": 0.0002,  # ADVENT LAMBDA_ENT_AUX
        "upsample": True,
    }

    def target_outputs(self) -> set[str]:
        return entropy_outputs(self.cfg, self.multi_level)

    def target_losses(self, tgt: Pass, discs) -> Terms:
        return entropy_terms(tgt, self.cfg, self.multi_level)


def entropy_outputs(cfg: dict, multi_level: bool) -> set[str]:
    """The outputs :func:`entropy_terms` differentiate."""
    return {"logits", "aux_logits"} if multi_level and cfg["lambda_ent_aux"] > 0 else {"logits"}


def entropy_terms(tgt: Pass, cfg: dict, multi_level: bool) -> Terms:
    """λ_ent · L_ent (eq. 5) on the main head, λ_ent_aux · L_ent on the aux head."""
    heads = [("ent", tgt.out.logits, cfg["lambda_ent"])]
    if multi_level and tgt.out.aux_logits is not None and cfg["lambda_ent_aux"] > 0:
        heads.append(("ent_aux", tgt.out.aux_logits, cfg["lambda_ent_aux"]))
    terms = {}
    for name, logits, weight in heads:
        if cfg["upsample"]:
            logits = upsample_like(logits, tgt.image_size)
        terms[name] = (weight, L.entropy_loss(torch.softmax(logits.float(), dim=1)))
    return terms


class AdvEnt(AdaptSegNet):
    """AdaptSegNet's scheme with D fed AdvEnt's weighted self-information maps −p·log p / log K
    instead of the softmax (same λ_adv 0.001 / 0.0002 and D settings as ADVENT's AdvEnt)."""

    name = "advent"

    def d_input(self, p: Pass, level: str) -> torch.Tensor:
        logits = p.out.logits if level == "main" else p.out.aux_logits
        if self.cfg["upsample"]:
            logits = upsample_like(logits, p.image_size)
        return L.self_information_map(torch.softmax(logits.float(), dim=1))
