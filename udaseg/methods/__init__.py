"""The methods of the paper's ablation, by name. Each is a small class of losses (see base.py)."""
from __future__ import annotations

from udaseg.methods.adaptsegnet import AdaptSegNet
from udaseg.methods.advent import AdvEnt, MinEnt
from udaseg.methods.base import Method
from udaseg.methods.fada import FADA
from udaseg.methods.fgd_ent import FGDEnt
from udaseg.methods.source_only import BNControl, SourceOnly, TargetOnly

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (SourceOnly, BNControl, AdaptSegNet, MinEnt, AdvEnt, FADA, FGDEnt, TargetOnly)
}


def _get(name: str) -> type[Method]:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name]


def method_defaults(name: str) -> dict:
    """The config keys (with reference defaults) of method ``name``."""
    return dict(_get(name).DEFAULTS)


def build_method(cfg: dict, num_classes: int, feature_channels: int, multi_level: bool) -> Method:
    """``cfg`` is the resolved ``method`` config section (``name`` plus the method's keys)."""
    return _get(cfg["name"])(cfg, num_classes, feature_channels, multi_level)
