"""The paper's two stages: source-only first, then the method from that stage's last checkpoint."""
from __future__ import annotations

import copy
import os
from pathlib import Path

from udaseg.engine import components, run_lock
from udaseg.engine.builders import check_splits
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.run_dir import RunDirError, config_changes, describe_changes
from udaseg.engine.trainer import LAST, Trainer


def stage_configs(cfg: dict) -> list[tuple[str, dict]]:
    """[(sub-directory, config)] of the stages to run: a source-only stage of
    ``train.pretrain_iters`` first when the method adapts (source_only with self-training does)
    and no ``init_from`` is given, whose last checkpoint then initialises the method's stage."""
    from udaseg.methods import method_defaults

    tc = cfg["train"]
    adapts = (cfg["method"]["name"] not in ("source_only", "target_only")
              or any(c.adapts for c in components.enabled(cfg)))
    if not adapts or tc["pretrain_iters"] <= 0 or tc["init_from"]:
        return [("", cfg)]
    pre = copy.deepcopy(cfg)
    components.switch_off(pre)  # stage 1 is plain source-only training
    pre["data"]["source"]["rcs"]["enabled"] = False
    pre["method"] = {"name": "source_only", **method_defaults("source_only"),
                     "lambda_seg_aux": cfg["method"].get("lambda_seg_aux", 0.1)}
    pre["train"]["iters"] = tc["pretrain_iters"]
    return [("source_only", pre), ("", cfg)]


def run_training(cfg: dict, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, allow_config_change: bool = False) -> dict:
    """Run all stages of ``cfg`` into ``run_dir`` (stage 1 in ``run_dir/source_only``). With
    ``resume``, a finished stage is skipped and an interrupted one continues from its last
    checkpoint; ``overwrite`` and ``allow_config_change``: see :class:`Trainer`."""
    components.check_run_config(cfg)  # stage 1 switches the components off: check the method's stage now
    stages = stage_configs(cfg)
    check_splits([c for _, c in stages])
    run_dir = Path(run_dir)
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 writes (and locks) the run
    if main:  # held across both stages, so that no other writer slips in between them
        run_lock.acquire(run_dir)
    try:
        return _run_stages(stages, run_dir, resume, progress, overwrite, allow_config_change)
    finally:
        if main:
            run_lock.release(run_dir)


def _run_stages(stages, run_dir: Path, resume: bool, progress: bool, overwrite: bool, allow_config_change: bool) -> dict:
    results = {}
    init_from = None
    for sub, stage_cfg in stages:
        stage_dir = run_dir / sub if sub else run_dir
        if init_from is not None:
            stage_cfg = copy.deepcopy(stage_cfg)
            stage_cfg["train"]["init_from"] = str(init_from)
        last = stage_dir / "checkpoints" / LAST
        if resume and _finished(last, stage_cfg, allow_config_change):
            results[sub or "main"] = {"last": last, "skipped": True}
        else:
            trainer = Trainer(stage_cfg, stage_dir, resume=resume, progress=progress, overwrite=overwrite,
                              allow_config_change=allow_config_change)
            results[sub or "main"] = trainer.train()
        init_from = last
    return results


def _finished(last: Path, cfg: dict, allow_config_change: bool = False) -> bool:
    """Whether ``last`` is a finished run of ``cfg``. A finished run of another config (a key that
    changes the result differs: an older recipe, another weight) is refused, not taken for this
    one's result — unless ``allow_config_change``."""
    if not last.is_file():
        return False
    state = load_checkpoint(last)
    if int(state["iteration"]) < cfg["train"]["iters"]:
        return False
    run_dir = last.parent.parent
    changes = config_changes(state.get("config", {}), cfg, run_dir=run_dir)
    if changes and not allow_config_change:
        raise RunDirError(f"{run_dir} holds a finished run of another config ({describe_changes(changes)}); "
                          f"remove that folder to train this config there, or choose "
                          f"another run directory")
    return True
