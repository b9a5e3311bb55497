"""Source-only training, the BN-only control, and the target-trained oracle."""
from __future__ import annotations

from udaseg.methods.base import Method, Pass, Terms


class SourceOnly(Method):
    """L_seg on labelled source images (main + λ_seg_aux · aux). Target images are never seen."""

    name = "source_only"


class BNControl(SourceOnly):
    """The BN-only control (DESIGN.md §2, lesson 1): source-only losses, but every target batch
    also passes through the segmenter in training mode, without gradient and without any loss.

    With trainable BN this alone moves the BN statistics towards the target — in the prototype it
    was worth +7 mIoU — so every adaptation method is measured against this, not against "train
    longer". With frozen BN it is identical to source-only.
    """

    name = "bn_control"
    uses_target_images = True
    target_needs_grad = False


class TargetOnly(Method):
    """ORACLE: supervised training on the *labelled target* train split. An upper bound for
    benchmarking only — it uses target labels, which domain adaptation never has."""

    name = "target_only"
    uses_source = False
    uses_target_images = True
    uses_target_labels = True

    def target_outputs(self) -> set[str]:
        return self.segmentation_outputs()

    def target_losses(self, tgt: Pass, discs) -> Terms:
        return self.segmentation_terms(tgt.out, tgt.labels)
