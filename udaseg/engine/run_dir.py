"""Guards on a run directory, so that nothing a user already has is overwritten or mixed silently:

- a fresh run into a directory that already holds a run is refused (``--overwrite`` clears it);
- ``--resume`` with a config that differs from the checkpoint's in a key that changes the result
  (lr, seed, a loss weight, ...) is refused, naming the keys (``--allow-config-change`` allows
  it and records the change in ``history.jsonl``);
- orphan ``.NAME.*.tmp`` files of a write that a kill interrupted are removed at start.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from udaseg.config import DEFAULTS
from udaseg.engine.checkpoint import write_error

# Keys a resumed run may change freely: how often it logs, validates or saves, where it runs, how
# fast its loader is, how it is evaluated — none changes the weights it trains.
RESUME_SAFE_KEYS = (
    "name", "output_dir", "eval.", "data.workers", "data.pin_memory", "train.device", "train.log_every",
    "train.image_every", "train.val_every", "train.checkpoint_every", "train.keep_every",
    "train.malloc_tuning", "train.cudnn_benchmark", "train.threads",
    "data.dev.", "train.validate_on",  # evaluation only (and which split picks best.pt)
)
# Files and folders of a run that a fresh run would mix with its own.
RUN_FILES = ("checkpoints", "metrics.jsonl", "train.log", "tb", "history.jsonl", "meta.json", "config.yaml")
EVAL_FILES = ("eval_*.json", "eval_*.csv")  # udaseg evaluate's results in the run folder


class RunDirError(ValueError):
    """The run directory's state and the command disagree; the message says what to do."""


def _flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and not (prefix + key).endswith("transforms"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _default(key: str, cfg: dict | None = None):
    """The default of a dotted key; a ``method.*`` key's is its method's (``cfg``'s method)."""
    if key.startswith("method.") and key != "method.name" and cfg is not None:
        from udaseg.methods import method_defaults

        try:
            return method_defaults(cfg.get("method", {}).get("name", DEFAULTS["method"]["name"])).get(key[7:])
        except KeyError:  # an unknown method: its config is refused elsewhere, by name
            return None
    node = DEFAULTS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


TEACHER_BN = "self_training.teacher_bn"


def _teacher_bn(flat: dict) -> str | None:
    """What the teacher's BN does in a flattened config: None without self-training (the key then
    changes nothing), else eval | batch — ``auto`` resolved for the model's BN mode, and a config
    from before the key existed ran an eval-mode teacher."""
    if not flat.get("self_training.enabled"):
        return None
    value = flat.get(TEACHER_BN, "eval")
    if value == "auto":
        from udaseg.engine.mean_teacher import resolve_teacher_bn

        value = resolve_teacher_bn(value, flat.get("model.bn_mode", _default("model.bn_mode")))
    return value


STAGE1_CHECKPOINT = Path("source_only", "checkpoints", "last.pt")  # stages.run_training's stage 1


def _same_init(old, new, run_dir: Path | None) -> bool:
    """Whether two ``train.init_from`` values name the same weights: equal strings, one file
    reached by other paths (relative / absolute, another working directory), or both the run's
    own stage-1 checkpoint — which ``run_training`` sets, so the key follows the run folder's path
    as it was written at each start, and a moved folder moves its stage 1 with it."""
    if old == new or old is None or new is None:
        return old == new
    try:
        if os.path.samefile(old, new):
            return True
    except OSError:
        pass
    own = run_dir is not None and Path(new).resolve() == (Path(run_dir) / STAGE1_CHECKPOINT).resolve()
    return own and Path(old).parts[-3:] == STAGE1_CHECKPOINT.parts


def config_changes(old: dict, new: dict, old_resolved: dict | None = None, new_resolved: dict | None = None,
                   run_dir: Path | None = None) -> dict:
    """``{key: (checkpoint value, config value)}`` for the keys that change the result.

    A key the checkpoint's config lacks (it predates the key) counts as its default then — a
    method's own key as that method's default. An ``auto`` value counts as what it resolved to
    (``resolved`` in the checkpoint / trainer). ``run_dir``: the run being resumed, for
    ``train.init_from`` (see :func:`_same_init`)."""
    a, b = _flatten(old), _flatten(new)
    old_resolved, new_resolved = old_resolved or {}, new_resolved or {}
    changed = {}
    ta, tb = _teacher_bn(a), _teacher_bn(b)
    if ta is not None and tb is not None and ta != tb:
        changed[TEACHER_BN] = (ta, tb)
    for key in sorted(set(a) | set(b)):
        if key.startswith(RESUME_SAFE_KEYS) or key == TEACHER_BN:
            continue
        va = a.get(key, _default(key, old))
        vb = b.get(key, _default(key, new))
        short = key.rsplit(".", 1)[-1]
        if va == "auto" and short in old_resolved:
            va = old_resolved[short]
        if vb == "auto" and short in new_resolved:
            vb = new_resolved[short]
        if key == "train.init_from" and _same_init(va, vb, run_dir):
            continue
        if va != vb:
            changed[key] = (va, vb)
    return changed


def _digest(items) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(sorted(items), sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_digest(cfg: dict) -> str:
    """A short fingerprint of the keys of ``cfg`` that change the result (not the resume-safe
    ones): two configs with the same digest train the same weights. Study results store it per
    run, so a result of an older recipe is never taken for the current one's. Keys at their
    default are left out, so a key added later with a neutral default (a config from before it
    lacks it) does not change the digest."""
    flat = _flatten(cfg)
    return _digest([(k, v) for k, v in flat.items()
                    if not k.startswith(RESUME_SAFE_KEYS) and k != TEACHER_BN and v != _default(k, cfg)]
                   + _teacher_bn_items(flat))


def _teacher_bn_items(flat: dict) -> list:
    """The teacher's BN in a digest: only a batch-statistics teacher, the one behaviour that results
    stored before the key existed (eval-mode teachers) cannot have."""
    return [(TEACHER_BN, "batch")] if _teacher_bn(flat) == "batch" else []


def legacy_config_digest(cfg: dict) -> str:
    """The digest as results stored it before defaults were left out (every key that existed then)."""
    flat = _flatten(cfg)
    return _digest([(k, v) for k, v in flat.items() if not k.startswith(RESUME_SAFE_KEYS) and k != TEACHER_BN]
                   + _teacher_bn_items(flat))


def digest_matches(stored: str | None, cfg: dict) -> bool:
    """Whether a stored digest (either form) is ``cfg``'s."""
    return stored is not None and stored in (config_digest(cfg), legacy_config_digest(cfg))


def describe_changes(changes: dict) -> str:
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())


def refuse_fresh_run_over_existing(run_dir: Path, overwrite: bool) -> list[str]:
    """A fresh (not resumed) run into ``run_dir``: refuse if it already holds a run, unless
    ``overwrite``, which removes that run's files (returned, to be logged)."""
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    holds_run = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()) \
        or (run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").stat().st_size > 0
    if not holds_run:
        return []
    if not overwrite:
        raise RunDirError(f"run directory {run_dir} already holds a run ({', '.join(present)}): pass --resume to "
                          f"continue it, --overwrite to delete it and start again, or choose another --run-dir")
    # what `udaseg evaluate` wrote about the old model goes with it
    present += sorted(p.name for pattern in EVAL_FILES for p in run_dir.glob(pattern) if p.is_file())
    for name in present:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return present


def remove_orphan_temp_files(run_dir: Path) -> list[Path]:
    """``.NAME.*.tmp`` files left by a write that a kill interrupted (the atomic writes'
    temp files, ``udaseg.engine.checkpoint``); only one process writes a run directory."""
    orphans = [p for folder in (run_dir, run_dir / "checkpoints") if folder.is_dir()
               for p in folder.glob(".*.tmp") if p.is_file()]
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans


def append_history(run_dir: Path, record: dict) -> None:
    """One JSON line in ``history.jsonl``: what happened to the run (resumes, config changes)."""
    path = run_dir / "history.jsonl"
    try:
        with open(path, "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}, default=str) + "\n")
    except OSError as exc:
        raise write_error(path, exc, "; is the disk full?") from None
