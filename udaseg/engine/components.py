"""The training components by config key, and what the run's set-up asks of them as a group
(``udaseg.engine.component`` says what a component is)."""
from __future__ import annotations

import torch

from udaseg.engine.component import Component
from udaseg.engine.feature_distance import FeatureDistance
from udaseg.engine.mean_teacher import SelfTraining

# in this order their hooks run (and their passes follow the method's)
COMPONENTS: dict[str, type[Component]] = {c.key: c for c in (SelfTraining, FeatureDistance)}


def enabled(cfg: dict) -> list[type[Component]]:
    """The component classes ``cfg`` switches on, in registry order (the order of their passes)."""
    return [c for key, c in COMPONENTS.items() if cfg.get(key, {}).get("enabled")]


def check_run_config(cfg: dict) -> None:
    """Everything about a run's components and rare-class sampling that the config alone shows —
    run before *any* stage trains, so a bad value in a two-stage config fails at once, not after
    the source-only stage (which switches them off)."""
    from udaseg.data.rcs import check_temperature

    rcs = cfg["data"]["source"].get("rcs", {})
    if rcs.get("enabled"):
        check_temperature(rcs["temperature"])
    for c in enabled(cfg):
        c.check_config(cfg)


def switch_off(cfg: dict) -> None:
    """Disable every component in ``cfg`` (in place): a plain source-only stage."""
    for key in COMPONENTS:
        if key in cfg:
            cfg[key]["enabled"] = False


def build(cfg: dict, model: torch.nn.Module, restored: dict | None, checkpoint) -> list[Component]:
    """The enabled components of ``cfg``, built on ``model``'s current weights; ``restored``: the
    checkpoint being resumed (at path ``checkpoint``), whose component states they take."""
    out = []
    for cls in enabled(cfg):
        component = cls.from_config(cfg, model)
        if restored is not None and cls.checkpoint_key is not None:
            if restored.get(cls.checkpoint_key) is None:
                raise ValueError(f"cannot resume from {checkpoint}: it has no {cls.checkpoint_key!r} entry, the "
                                 f"state of {cls.key}, which the config enables")
            component.load_state_dict(restored[cls.checkpoint_key])
        out.append(component)
    return out


def checkpoint_state(components: list[Component]) -> dict:
    """{checkpoint key: state} of every registered component, None where it is off — so a
    checkpoint's keys do not depend on the config."""
    state = {c.checkpoint_key: None for c in COMPONENTS.values() if c.checkpoint_key is not None}
    state.update({c.checkpoint_key: c.state_dict() for c in components if c.checkpoint_key is not None})
    return state


def ddp_unused_parameters(components: list[Component], method, model) -> bool:
    """``find_unused_parameters`` for the segmenter's DDP: decided by who runs the step's last
    backward, where gradients are all-reduced — the last component with passes, else the method."""
    for c in reversed(components):
        unused = c.ddp_unused_parameters(model)
        if unused is not None:
            return unused
    return method.ddp_find_unused_parameters()
