"""AdaptSegNet (Tsai et al. 2018): output-space adversarial learning with binary discriminators."""
from __future__ import annotations

import torch

from udaseg import losses as L
from udaseg.methods.base import Method, Pass, Terms, binary_accuracy, upsample_like
from udaseg.models import build_discriminator


class AdaptSegNet(Method):
    """A binary D per output level on the segmenter's softmax; the segmenter learns to make its
    target softmax look like source to D (BCE with the source label 0).

    Reference defaults (AdaptSegNet / ADVENT configs): λ_adv 0.001 main, 0.0002 aux, D terms
    × 0.5 per domain, predictions upsampled to the input size before D.
    """

    name = "adaptsegnet"
    uses_target_images = True
    DEFAULTS = {
        **Method.DEFAULTS,
        "lambda_adv": 0.001,  # AdaptSegNet LAMBDA_ADV_TARGET2, ADVENT LAMBDA_ADV_MAIN
        "lambda_adv_aux": 0.0002,  # AdaptSegNet LAMBDA_ADV_TARGET1, ADVENT LAMBDA_ADV_AUX
        "d_weight": 0.5,  # each domain's D loss is halved in both references
        "upsample": True,  # D sees predictions at input size, as interp_target does
        "ndf": 64,
    }

    def levels(self):
        """(level, weight of its adversarial term) for the levels the net has."""
        lv = [("main", self.cfg["lambda_adv"])]
        if self.multi_level and self.cfg["lambda_adv_aux"] > 0:
            lv.append(("aux", self.cfg["lambda_adv_aux"]))
        return lv

    def build_discriminators(self):
        return {f"d_{lvl}": build_discriminator("binary", self.num_classes, ndf=self.cfg["ndf"]) for lvl, _ in self.levels()}

    def d_input(self, p: Pass, level: str) -> torch.Tensor:
        logits = p.out.logits if level == "main" else p.out.aux_logits
        if self.cfg["upsample"]:
            logits = upsample_like(logits, p.image_size)
        return torch.softmax(logits.float(), dim=1)

    def target_outputs(self) -> set[str]:
        return {"logits" if lvl == "main" else "aux_logits" for lvl, _ in self.levels()}

    def target_losses(self, tgt: Pass, discs) -> Terms:
        return {f"adv_{lvl}": (w, L.binary_adversarial_loss(discs[f"d_{lvl}"](self.d_input(tgt, lvl)), L.SOURCE))
                for lvl, w in self.levels()}

    def discriminator_losses(self, src: Pass, tgt: Pass, discs):
        terms, metrics = {}, {}
        for lvl, _ in self.levels():
            d = discs[f"d_{lvl}"]
            out_s, out_t = d(self.d_input(src, lvl)), d(self.d_input(tgt, lvl))
            terms[f"d_{lvl}_src"] = (self.cfg["d_weight"], L.binary_adversarial_loss(out_s, L.SOURCE))
            terms[f"d_{lvl}_tgt"] = (self.cfg["d_weight"], L.binary_adversarial_loss(out_t, L.TARGET))
            metrics[f"d_{lvl}_acc"] = binary_accuracy(out_s.detach(), out_t.detach())
        return terms, metrics
