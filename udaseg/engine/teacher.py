"""Mean teacher: an exponential moving average (EMA) of the segmentor, the pseudo-labeller of
DACS / DAFormer / MIC self-training.

Update rule (DACS ``trainUDA.py`` ``update_ema_variables``; DAFormer ``mmseg/models/uda/dacs.py``
``_update_ema``; MIC ``seg/mmseg/models/uda/teacher_module.py`` ``_update_ema``), for every
*parameter* θ of the student and its copy θ' in the teacher, at iteration i:

    α_i = min(1 − 1 / (i + 1), α)          # the "true" running average until it exceeds α
    θ'  ← α_i · θ' + (1 − α_i) · θ

so ``update(student, 0)`` copies the student (α_0 = 0), ``update(student, 1)`` averages with
weight ½, and from i ≥ 1 / (1 − α) − 1 the decay is α.

Defaults of α: DAFormer 0.999 (``configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_
daformer_mitb5_s0.py`` ``alpha=0.999``; its base ``configs/_base_/uda/dacs.py`` says 0.99), MIC the
same 0.999 (``seg/configs/mic/gtaHR2csHR_mic_hrda.py``: ``mask_alpha='same'`` on
``dacs_a999_fdthings``), DACS 0.99 (``trainUDA.py``: ``alpha_teacher = 0.99``, hard-coded).
:data:`DEFAULT_ALPHA` is DAFormer's.

Buffers (BatchNorm running statistics, ``num_batches_tracked``): the references EMA
``parameters()`` only and never touch buffers — the teacher keeps the buffers it was built with
(DAFormer/MIC ``_init_ema_weights`` copies parameters only, DACS ``create_ema_model`` likewise).
``buffers="keep"`` (default) does the same: the teacher's buffers are those deep-copied from the
student at construction and no update changes them. ``buffers="copy"`` instead copies the
student's buffers at every update. Buffers matter only to an ``"eval"`` teacher whose BN trains
(see the mode note below): frozen BN keeps fixed statistics, and a ``"batch"`` teacher reads none.

Mode: the references run the teacher in *train* mode (DACS calls ``ema_model.train()``; DAFormer's
whole UDA module is in train mode and only Dropout/DropPath are switched off), so any BN layer of
the teacher that is not frozen normalises with the target batch's statistics. Here the teacher's
model stays in eval mode (``train()`` on it is a no-op; DeepLab-V2 has no dropout) and ``__call__``
runs under ``torch.no_grad()``; ``bn`` says how its BN layers normalise:

- ``"eval"``: with the teacher's running statistics (``buffers`` decides which). With
  ``model.bn_mode: frozen`` (statistics fixed, udaseg's default and the paper's) this is exactly
  the references' behaviour.
- ``"batch"``: with the statistics of the batch being labelled, as the references' train-mode
  teacher does when BN trains (``frozen_affine`` / ``trainable`` / ``sync``) — without updating the
  teacher's running statistics (which a train-mode forward would; they stay what ``buffers`` made
  them, so the teacher's state, and resume, are unaffected by its forwards). ``SyncBatchNorm``
  under DDP then uses the global batch's statistics, and the teacher's forward becomes a
  collective every rank makes once a step (as DAFormer's SyncBN teacher).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from udaseg.models.frozen_bn import FrozenBatchNorm2d

DEFAULT_ALPHA = 0.999  # DAFormer configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_*.py
DACS_ALPHA = 0.99  # DACS trainUDA.py (alpha_teacher = 0.99)
BUFFER_POLICIES = ("keep", "copy")
TEACHER_BN = ("eval", "batch")  # how the teacher's BN layers normalise (module docstring)


def check_alpha(alpha: float) -> float:
    """``self_training.alpha`` must lie in [0, 1); returns it as a float."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"self_training.alpha must be a number in [0, 1), got {alpha!r}") from None
    if not 0.0 <= a < 1.0:  # also rejects NaN
        raise ValueError(f"self_training.alpha must be in [0, 1), got {alpha!r}")
    return a


def ema_decay(iteration: int, alpha: float) -> float:
    """α_i = min(1 − 1 / (i + 1), α) — DACS ``update_ema_variables`` / DAFormer ``_update_ema``."""
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    return min(1.0 - 1.0 / (iteration + 1), alpha)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (DAFormer ``get_module``)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


class EMATeacher(nn.Module):
    """An EMA copy of a segmentor that makes pseudo-labels.

    Args:
        student: the segmentor (a DDP/DataParallel wrapper is unwrapped); deep-copied, so the
            teacher starts equal to it, on its device and dtype.
        alpha: the EMA decay α in [0, 1) (``ValueError`` naming ``self_training.alpha`` else).
        buffers: ``"keep"`` (the references: buffers never updated) or ``"copy"`` (the student's
            buffers copied at every update).
        bn: ``"eval"`` (running statistics) or ``"batch"`` (the labelled batch's statistics, as the
            references' train-mode teacher); a ``FrozenBatchNorm2d`` has no batch mode.

    The teacher's parameters have ``requires_grad=False``; calling it runs the copy in eval mode
    (its BN layers in batch-statistics mode for ``bn="batch"``) under ``torch.no_grad()`` and
    returns what the segmentor returns.
    ``state_dict()`` / ``load_state_dict()`` hold the copy's parameters and buffers (exact resume:
    the update is a pure function of the teacher's state, the student and the iteration).

    Example::

        teacher = EMATeacher(model, alpha=0.999)
        for i in range(start, max_iter):
            ...  # optimiser step of the student
            teacher.update(model, i)  # DAFormer updates before the step's forward, DACS after
            logits = teacher(target_images).logits
    """

    def __init__(self, student: nn.Module, alpha: float = DEFAULT_ALPHA, buffers: str = "keep", bn: str = "eval"):
        super().__init__()
        if buffers not in BUFFER_POLICIES:
            raise ValueError(f"self_training.teacher_buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
        if bn not in TEACHER_BN:
            raise ValueError(f"self_training.teacher_bn must be one of {TEACHER_BN}, got {bn!r}")
        self.alpha = check_alpha(alpha)
        self.buffer_policy = buffers
        self.bn = bn
        self.model = copy.deepcopy(_unwrap(student))
        self.model.requires_grad_(False)
        self._norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bn == "batch" and any(isinstance(m, FrozenBatchNorm2d) for m in self._norms):
            raise ValueError("self_training.teacher_bn is batch, but the model's BN layers are frozen "
                             "(model.bn_mode frozen: statistics fixed by design); use teacher_bn eval")
        self.train(False)

    def train(self, mode: bool = True) -> "EMATeacher":
        """Keeps the teacher in eval mode whatever ``mode`` says (see the module docstring)."""
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.model.training:  # someone called .train() on the inner module directly
            self.model.train(False)
        if self.bn == "eval":
            return self.model(*args, **kwargs)
        # batch statistics without touching the running ones: a BN layer in training mode that
        # does not track statistics normalises with the batch's and updates nothing
        tracked = [m.track_running_stats for m in self._norms]
        for m in self._norms:
            m.training, m.track_running_stats = True, False
        try:
            return self.model(*args, **kwargs)
        finally:
            for m, t in zip(self._norms, tracked):
                m.training, m.track_running_stats = False, t

    @torch.no_grad()
    def update(self, student: nn.Module, iteration: int) -> float:
        """θ' ← α_i·θ' + (1 − α_i)·θ for every parameter; returns α_i.

        ``iteration`` is the step counter i of α_i = min(1 − 1/(i + 1), α); 0 copies the student.
        """
        student = _unwrap(student)
        a = ema_decay(int(iteration), self.alpha)
        ema_params = list(self.model.parameters())
        params = list(student.parameters())
        if len(ema_params) != len(params):
            raise ValueError(f"student has {len(params)} parameters, the teacher {len(ema_params)}: "
                             "not the same architecture")
        # the references' formula as written, α·θ' + (1 − α)·θ: two products and a sum, each
        # rounded once (foreach: three kernel launches for all tensors instead of three per tensor)
        scaled = torch._foreach_mul([p.detach() for p in params], 1.0 - a)
        torch._foreach_mul_(ema_params, a)
        torch._foreach_add_(ema_params, scaled)
        if self.buffer_policy == "copy":
            for eb, b in zip(self.model.buffers(), student.buffers()):
                eb.copy_(b)
        return a
