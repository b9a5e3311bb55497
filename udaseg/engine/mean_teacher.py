"""Mean-teacher self-training as a component any method can switch on (config ``self_training``).

Per iteration, after the method's own passes (DACS ``trainUDA.py``; DAFormer
``mmseg/models/uda/dacs.py``; MIC ``masking_consistent_module.py``):

1. the EMA teacher (``udaseg.engine.teacher``) labels the un-augmented target images:
   pseudo-labels ŷ = argmax, weight = share of pixels with max probability ≥ τ. The teacher runs
   the segmentor's eval-mode forward: for HRDA (``udaseg.models.hrda``) the whole target crop as
   context and overlapping detail windows, as the reference's ``generate_pseudo_label``
   (``encode_decode``) does;
2. **ClassMix**: half the classes of each source label are pasted onto its target image, labels
   mixed the same way (``udaseg.data.mixing``), then strong augmentation (colour jitter, blur);
   the student learns the mixed labels, pasted pixels with weight 1, the rest with the pseudo
   weight — its own backward;
   Every student loss goes through ``prediction_terms``, which splits it over the segmentor's
   extra predictions (HRDA: 0.9 fused + 0.1 detail crop, each student pass with its own crop);
3. optionally **MIC**: the student sees the strongly augmented target image with random 64×64
   blocks masked and learns the teacher's pseudo-labels of the unmasked image — its own backward;
4. before the next iteration's passes the teacher takes the EMA of the student
   (α_i = min(1 − 1/(i + 1), α), DAFormer's order: updated at the start of iteration i > 0).

A training component (``udaseg.engine.component``): the step owns forward passes,
normalisation, backward and DDP; this module gets a forward function and returns loss terms. Its
random draws come from per-iteration generators (``step_generator``), so resume is exact with
only the teacher's weights in the checkpoint.
"""
from __future__ import annotations

from typing import Callable

import torch

from udaseg.data.mixing import class_mix, strong_transform
from udaseg.engine.component import Component, StepContext
from udaseg.engine.self_training import (block_mask, check_mask_ratio, check_tau, pixel_weighted_cross_entropy,
                                         pseudo_labels, step_generator)
from udaseg.engine.teacher import TEACHER_BN, EMATeacher, check_alpha
from udaseg.methods.base import Terms, prediction_terms

def check_self_training_config(cfg: dict, method) -> None:
    """Bad values name their key; self-training needs labelled source images to mix from.
    ``cfg``: the ``self_training`` section; ``method``: the method (object or class)."""
    if not cfg["enabled"]:
        return
    check_alpha(cfg["alpha"])
    check_tau(cfg["tau"])
    check_mask_ratio(cfg["mic"]["ratio"])
    if cfg["pseudo_weight"] not in ("image", "batch"):
        raise ValueError(f"config key 'self_training.pseudo_weight' is {cfg['pseudo_weight']!r}; expected image or batch")
    if cfg["teacher_bn"] not in ("auto", *TEACHER_BN):
        raise ValueError(f"config key 'self_training.teacher_bn' is {cfg['teacher_bn']!r}; expected auto, eval or batch")
    if not method.uses_source:
        raise ValueError(f"self_training needs labelled source images to mix into the target (ClassMix); "
                         f"method {method.name} has none")
    if method.uses_target_labels:
        raise ValueError(f"self_training on method {method.name}: an oracle has target labels, pseudo-labels "
                         f"make no sense there")


def check_self_training_run(cfg: dict) -> None:
    """Everything about a run's self-training that the config alone shows (the whole run config,
    self-training enabled or not)."""
    from udaseg.methods import METHODS

    st, data = cfg["self_training"], cfg["data"]
    method = METHODS.get(cfg["method"]["name"])
    if method is None or not st["enabled"]:
        return
    check_self_training_config(st, method)
    if resolve_teacher_bn(st["teacher_bn"], cfg["model"]["bn_mode"]) == "batch" and st["teacher_buffers"] == "copy":
        raise ValueError("config key 'self_training.teacher_buffers' is copy, but the teacher normalises with batch "
                         "statistics (self_training.teacher_bn batch, or auto with BN that trains) and reads no "
                         "running statistics; set teacher_bn eval to use the copied ones, or leave teacher_buffers keep")
    tgt = data["target"].get("transforms") or {}
    if tgt.get("color_jitter"):
        # the teacher labels the target image the student is given; DACS / DAFormer / MIC load
        # target images without photometric augmentation (the mixed image gets its own)
        raise ValueError("self_training: data.target.transforms.color_jitter is set, but the teacher must label "
                         "un-augmented target images (the references jitter only the mixed image); set it to null")
    src_size, tgt_size = output_size(data["source"].get("transforms")), output_size(tgt)
    if src_size and tgt_size and src_size != tgt_size:
        raise ValueError(f"self_training mixes source into target images, so both must have one size: "
                         f"data.source.transforms give {src_size[0]}x{src_size[1]}, data.target.transforms "
                         f"{tgt_size[0]}x{tgt_size[1]} (W x H); give the source a crop of the target's size")


def resolve_teacher_bn(value: str, bn_mode: str) -> str:
    """``self_training.teacher_bn`` for a model of ``bn_mode``: ``auto`` is what the references'
    train-mode teacher does — BN that trains normalises with the batch's statistics, frozen BN with
    its fixed ones (udaseg/engine/teacher.py)."""
    if value == "auto":
        return "eval" if bn_mode == "frozen" else "batch"
    if value == "batch" and bn_mode == "frozen":
        raise ValueError("config key 'self_training.teacher_bn' is batch, but model.bn_mode is frozen (BN statistics "
                         "fixed by design, in the student too); use auto or eval")
    return value


def output_size(transforms: dict | None) -> tuple[int, int] | None:
    """The (W, H) every image leaves ``transforms`` with, if the config fixes it (a crop, or a
    resize without random scaling); None when it depends on the files or on a random scale."""
    from udaseg.data.transforms import _size  # a malformed size: its error names the transform

    t = transforms or {}
    if t.get("crop"):
        return _size(t["crop"], "crop")
    if t.get("random_scale"):
        return None
    key = "resize_image" if t.get("resize_image") else "resize"
    return _size(t[key], key) if t.get(key) else None


class SelfTraining(Component):
    """The teacher and the self-training passes of one run."""

    key, checkpoint_key = "self_training", "teacher"
    needs_target_images = True  # the teacher labels them
    adapts = True  # source_only + self-training is DACS

    def __init__(self, cfg: dict, student: torch.nn.Module, seed: int, bn_mode: str):
        self.cfg, self.seed = cfg, seed
        self.teacher_bn = resolve_teacher_bn(cfg["teacher_bn"], bn_mode)
        self.teacher = EMATeacher(student, alpha=cfg["alpha"], buffers=cfg["teacher_buffers"], bn=self.teacher_bn)
        self.last_pseudo_weight = None

    @classmethod
    def from_config(cls, cfg: dict, student: torch.nn.Module) -> "SelfTraining":
        return cls(cfg["self_training"], student, cfg["seed"], bn_mode=cfg["model"]["bn_mode"])

    check_config = staticmethod(check_self_training_run)

    # -- the teacher ------------------------------------------------------------------------
    def before_step(self, student: torch.nn.Module, it: int) -> float | None:
        """EMA update at the start of iteration ``it`` > 0 (iteration 0 uses the copy)."""
        return self.teacher.update(student, it) if it > 0 else None

    def state_dict(self) -> dict:
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state)

    def resolved(self) -> dict:
        return {"teacher_bn": self.teacher_bn}  # what "auto" meant for this model

    def metrics(self) -> dict:
        return {"pseudo_weight": self.last_pseudo_weight}

    def ddp_unused_parameters(self, model) -> bool:
        return model.multi_level  # the passes train the main head only: the aux head idles

    # -- the passes -------------------------------------------------------------------------
    def passes(self, ctx: StepContext) -> list[Callable[[], Terms]]:
        """One callable a backward pass: the ClassMix pass, then the MIC pass if enabled.

        The student learns through ``ctx.forward(ctx.student, images, mask)`` (``mask``
        multiplies the normalised input, as MIC does); the teacher labels through
        ``ctx.forward(teacher, images)``. ``ctx.positions``: each sample's position in the global
        stream of the run. Every sample draws its ClassMix classes, augmentation and mask from its
        own generator, seeded by that position, so these draws are the same on 1 process with batch 2·B as on 2 with B each
        (DAFormer decides jitter and blur once per batch; here per image). What BN computes is
        not: with BN that trains (the student's, and a ``teacher_bn: batch`` teacher's) the
        statistics are per process unless ``model.bn_mode`` is ``sync``."""
        def student(x, mask=None):
            return ctx.forward(ctx.student, x, mask)

        def teacher(x):
            return ctx.forward(self.teacher, x)

        source, target, positions, device = ctx.batches["source"], ctx.batches["target"], ctx.positions, ctx.device
        c = self.cfg
        src_img = source["image"].to(device).float()
        src_lbl = source["label"].to(device)
        tgt_img = target["image"].to(device).float()
        if src_img.shape != tgt_img.shape:
            raise ValueError(f"self_training mixes source into target images, so both must have one size: "
                             f"source batch {tuple(src_img.shape[-2:])} vs target {tuple(tgt_img.shape[-2:])} "
                             f"(H, W); give data.source.transforms and data.target.transforms the same crop")
        with torch.no_grad():
            logits = teacher(tgt_img).logits
        labels, weight = pseudo_labels(logits, c["tau"], ignore_top=c["ignore_top"], ignore_bottom=c["ignore_bottom"],
                                       per_image=c["pseudo_weight"] == "image", size=tgt_img.shape[-2:])
        self.last_pseudo_weight = float(weight.mean())
        aug = {"jitter_prob": c["jitter_prob"], "jitter_strength": c["jitter_strength"], "blur_prob": c["blur_prob"]}

        def mix_pass() -> Terms:
            images, mixed_labels, weights = [], [], []
            for j, pos in enumerate(positions):
                g = step_generator(self.seed, pos, 0)
                s = slice(j, j + 1)
                mix = class_mix(src_img[s], src_lbl[s], tgt_img[s], labels[s], weight[s], g,
                                include_ignore=c["include_ignore"])
                images.append(strong_transform(mix.images, g, **aug))
                mixed_labels.append(mix.labels)
                weights.append(mix.weights)
            out = student(torch.cat(images))
            return prediction_terms("st_mix", c["weight"], out, torch.cat(mixed_labels), pixel_weighted_cross_entropy,
                                    torch.cat(weights))

        def mic_pass() -> Terms:
            m = c["mic"]
            images, masks = [], []
            for j, pos in enumerate(positions):
                x = strong_transform(tgt_img[j:j + 1], step_generator(self.seed, pos, 1), **aug)
                images.append(x)
                masks.append(block_mask(x.shape, m["block_size"], m["ratio"], step_generator(self.seed, pos, 2),
                                        device=device))
            out = student(torch.cat(images), mask=torch.cat(masks))
            return prediction_terms("st_mic", m["weight"], out, labels, pixel_weighted_cross_entropy, weight)

        return [mix_pass, mic_pass] if c["mic"]["enabled"] else [mix_pass]
