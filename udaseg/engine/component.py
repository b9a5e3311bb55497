"""What a training component is: a capability any method can switch on by config (self-training
and DAFormer's feature distance today), with hooks that the step calls for every component in turn —
so any method × any component runs without a branch in the trainer.

A component has a config section ``<key>`` with ``enabled``; built after the weights are loaded
(a teacher starts as a copy of the student), it may:

- ``before_step(student, it)``: act before iteration ``it``'s passes (the EMA teacher update);
- ``source_terms(src, batch)``: extra loss terms on the method's source pass, in its backward;
- ``passes(ctx)``: extra backward passes after the method's, each a callable returning terms;
- ``metrics()``: values logged with the iteration (never optimised);
- ``state_dict`` / ``load_state_dict``: its state, kept in checkpoints under ``checkpoint_key``;
- ``resolved()``: what its ``auto`` settings meant on this run (recorded in meta.json).

Set-up facts (class attributes, read from the config before anything is built):
``needs_target_images`` (the target loader is built for it), ``adapts`` (a source-only method
with it adapts, so it gets the two-stage schedule); and ``ddp_unused_parameters(model)``, what DDP
must know when the component's pass is the step's last backward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from udaseg.methods.base import Pass, Terms

# forward(model, images in [0, 255], mask=None) -> SegmentorOutput: the trainer's normalisation,
# memory format and autocast region, so a component's passes see what the method's see
Forward = Callable[..., object]


@dataclass
class StepContext:
    """What a component's passes get from the step."""

    it: int
    batches: dict  # {"source": ..., "target": ...}: the step's batches (uint8 images, labels)
    positions: list[int]  # each sample's position in the run's global sample stream
    device: torch.device
    student: torch.nn.Module  # the segmenter being trained (DDP-wrapped when distributed)
    forward: Forward


class Component:
    key: ClassVar[str] = ""  # its config section
    checkpoint_key: ClassVar[str | None] = None  # None: no state to keep
    needs_target_images: ClassVar[bool] = False
    adapts: ClassVar[bool] = False

    @classmethod
    def from_config(cls, cfg: dict, model: torch.nn.Module) -> "Component":
        """The component of run config ``cfg``, built on ``model``'s current weights."""
        raise NotImplementedError(f"{cls.__name__}.from_config")

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Bad values (the whole run config, the component enabled) raise, naming their key."""

    def before_step(self, student: torch.nn.Module, it: int) -> None:
        pass

    def source_terms(self, src: Pass, batch: dict) -> Terms:
        return {}

    def passes(self, ctx: StepContext) -> list[Callable[[], Terms]]:
        return []

    def ddp_unused_parameters(self, model) -> bool | None:
        """For a component with passes: whether its last pass (then the step's last backward, where
        DDP all-reduces) leaves parameters of ``model`` without a gradient. None: no passes."""
        return None

    def metrics(self) -> dict:
        return {}

    def resolved(self) -> dict:
        return {}

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass
