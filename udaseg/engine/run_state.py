"""A training run's state: set-up (device, model, method, discriminators, components,
optimisers, DDP, data), its checkpoints (save, resume, initialise from) and its run files.

A run directory has one writer (``run_lock``, taken before anything in it is touched).
"""
from __future__ import annotations

import copy
import os
import random
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import torch

from udaseg.config import dump_config
from udaseg.engine import components, run_lock
from udaseg.engine.builders import (git_revision, per_process_batch, rank_device, resolve_device, seed_everything,
                                   segmentor_from_config)
from udaseg.engine.checkpoint import (atomic_write_json, atomic_write_text, describe_last_good, load_checkpoint,
                                      save_checkpoint)
from udaseg.engine.device_defaults import AMP_DTYPES, apply_device_settings
from udaseg.engine.distributed import DistInfo, barrier, init_from_env
from udaseg.engine.optim import build_optimizer, segmenter_param_groups
from udaseg.engine.run_dir import (RunDirError, append_history, config_changes, describe_changes,
                                   refuse_fresh_run_over_existing, remove_orphan_temp_files)
from udaseg.engine.run_logger import RunLogger
from udaseg.engine.train_data import train_loaders, validation_loader
from udaseg.methods import build_method
from udaseg.models import resolve_pretrained

LAST, BEST = "last.pt", "best.pt"


class RunState:
    """One stage's run (one method, ``train.iters`` iterations) in ``run_dir``, built and restored."""

    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, dist: DistInfo | None = None,
                 overwrite: bool = False, allow_config_change: bool = False):
        """``resume``: continue from ``run_dir``'s last checkpoint (refused if the config changed
        in a key that changes the result, unless ``allow_config_change``); without it, a run
        directory that already holds a run is refused unless ``overwrite`` (which deletes it)."""
        self.cfg = copy.deepcopy(cfg)
        self.run_dir = Path(run_dir)
        self.allow_config_change = allow_config_change
        device = resolve_device(cfg["train"]["device"])
        self.dist = dist if dist is not None else init_from_env(device.type)
        self.device = rank_device(device, self.dist)
        self.notes = []  # what set-up did that the run's log must say
        last = self.run_dir / "checkpoints" / LAST
        if self.dist.is_main:  # one writer per run directory, before anything in it is touched
            note = run_lock.acquire(self.run_dir)
            self.release_lock = weakref.finalize(self, run_lock.release, self.run_dir)
            self.notes += [note] if note else []
        try:
            self._set_up(cfg, resume, overwrite, last)
        except BaseException:
            if self.dist.is_main:
                self.release_lock()
            raise

    def _set_up(self, cfg: dict, resume: bool, overwrite: bool, last: Path) -> None:
        if self.dist.is_main:
            if not resume and refuse_fresh_run_over_existing(self.run_dir, overwrite):
                self.notes.append(f"--overwrite: deleted the run that was in {self.run_dir}")
            orphans = remove_orphan_temp_files(self.run_dir)
            if orphans:
                self.notes.append(f"removed {len(orphans)} temp file(s) of an interrupted write: "
                                  + ", ".join(p.name for p in orphans))
            if resume and not last.is_file():
                self.notes.append(f"--resume: no checkpoint at {last}; starting from iteration 0")
        tc, mc = cfg["train"], cfg["model"]
        if mc["bn_mode"] == "sync" and self.dist.enabled and self.device.type != "cuda":
            raise ValueError("model.bn_mode=sync needs CUDA (torch's SyncBatchNorm runs on GPUs only); "
                             "use model.bn_mode=trainable for multi-process CPU runs")
        self.batch_size = per_process_batch(cfg["data"], self.dist.world_size)
        self.resolved = apply_device_settings(cfg, self.device)
        seed_everything(cfg["seed"])

        if mc["pretrained"] and self.dist.enabled:  # a named file: rank 0 downloads it, the others wait
            if self.dist.is_main:
                resolve_pretrained(mc["pretrained"], mc["arch"], input_norm=mc["input_norm"],
                                   sha256=mc["pretrained_sha256"])
            barrier(self.dist)
        self.model = segmentor_from_config(mc, self.resolved["aspp_impl"]).to(self.device)
        self.method = build_method(cfg["method"], mc["num_classes"], self.model.feature_channels, mc["multi_level"])
        self.discs = torch.nn.ModuleDict(self.method.build_discriminators()).to(self.device)
        if tc["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
            self.discs.to(memory_format=torch.channels_last)
        self.amp_dtype = AMP_DTYPES[self.resolved["amp"]]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.resolved["amp"] == "fp16")

        self.opt_g = build_optimizer(tc["optimizer"], segmenter_param_groups(self.model, mc["arch"], tc),
                                     lr=tc["lr"], momentum=tc["momentum"], betas=tuple(tc["betas"]),
                                     weight_decay=tc["weight_decay"])
        self.opt_d = (build_optimizer(tc["optimizer_d"], self.discs.parameters(), lr=tc["lr_d"],
                                      momentum=tc["momentum"], betas=tuple(tc["betas_d"]), key="train.optimizer_d")
                      if len(self.discs) else None)

        self.start_iter = 0
        self.config_changes = {}
        # the split is part of the best: validate_on is resume-safe, and a dev mIoU is no match for a val one
        self.best = {"miou": -1.0, "iter": None, "split": tc["validate_on"]}
        components.check_run_config(cfg)
        restored = load_checkpoint(last) if resume and last.is_file() else None
        if restored is not None:
            self._restore(restored)
        elif tc["init_from"]:
            self._init_from(tc["init_from"])
        # built on the initial or resumed weights (a teacher starts as a copy of the student)
        self.components = components.build(cfg, self.model, restored, last)
        for c in self.components:
            self.resolved.update(c.resolved())

        # DDP after loading weights, so every rank starts from rank 0's (identical) state.
        self.model_ddp, self.discs_ddp = self.model, self.discs
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Gradients are all-reduced once a step, in the last segmenter backward (the step runs
            # the earlier passes under no_sync); a head that this backward does not reach (e.g.
            # FADA's classifiers) needs find_unused_parameters.
            unused = components.ddp_unused_parameters(self.components, self.method, self.model)
            self.model_ddp = DDP(self.model, device_ids=ids, find_unused_parameters=unused)
            self.discs_ddp = torch.nn.ModuleDict({k: DDP(d, device_ids=ids) for k, d in self.discs.items()})

        self.loaders = train_loaders(cfg, self.method, self.components, self.dist, self.batch_size, self.start_iter,
                                     self.device)
        self._val_loader = validation_loader(cfg, self.dist)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main)
        if self.dist.is_main:
            self._write_run_files(resume)
            for note in self.notes:
                self.logger.text(note)
                print(f"udaseg: {note}", file=sys.stderr)

    def _write_run_files(self, resume: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        revision = git_revision()  # two git subprocesses: once per start
        # history.jsonl keeps each start, meta.json the latest
        append_history(self.run_dir, {"event": "resume" if self.start_iter else "start", "iteration": self.start_iter,
                                      "git_revision": revision, "config_changes": self.config_changes})
        atomic_write_text(self.run_dir / "config.yaml", dump_config(self.cfg))
        meta = {
            "git_revision": revision, "torch": torch.__version__, "python": sys.version.split()[0],
            "command": sys.argv, "world_size": self.dist.world_size, "device": str(self.device),
            "method": self.method.name, "oracle_uses_target_labels": self.method.uses_target_labels,
            "bn_mode": self.cfg["model"]["bn_mode"], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "batch_per_process": self.batch_size, "global_batch": self.batch_size * self.dist.world_size,
            "resolved": self.resolved,
            "resumed_from_iter": self.start_iter if resume else None,
            "init_from": self.cfg["train"]["init_from"],
            "init_report": None if self.model.init_report is None else self.model.init_report.summary(),
        }
        atomic_write_json(self.run_dir / "meta.json", meta)
        if resume:
            # a killed run logged iterations past its last checkpoint; they are logged again now
            self.logger.drop_after(self.start_iter)
        if self.method.uses_target_labels:
            self.logger.text("ORACLE: this run trains on TARGET LABELS (an upper bound, not adaptation)")

    def state_dict(self, it: int) -> dict:
        return {
            "format": "udaseg-checkpoint-1",
            "iteration": it,
            "arch": self.cfg["model"]["arch"],
            "num_classes": self.cfg["model"]["num_classes"],
            "method": self.method.name,
            "input_norm": self.cfg["model"]["input_norm"],
            "config": self.cfg,
            "resolved": self.resolved,  # what the config's "auto" values were on this device
            "segmentor": self.model.state_dict(),
            **components.checkpoint_state(self.components),  # "teacher": self-training's
            "discriminators": self.discs.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": None if self.opt_d is None else self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best": dict(self.best),
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                    "python_pos": random.getstate()[2],
                    "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                    "numpy_pos": int(np.random.get_state()[2])},
        }

    def _restore(self, state: dict) -> None:
        want = (self.cfg["model"]["arch"], self.cfg["model"]["num_classes"], self.method.name)
        have = (state["arch"], state["num_classes"], state["method"])
        if have != want:
            raise ValueError(f"cannot resume from {self.run_dir / 'checkpoints' / LAST}: it is {have[0]} with "
                             f"{have[1]} classes trained by {have[2]}; the config is {want[0]} with {want[1]} "
                             f"classes and method {want[2]}")
        changes = config_changes(state["config"], self.cfg, state.get("resolved"), self.resolved, run_dir=self.run_dir)
        if changes and not self.allow_config_change:
            raise RunDirError(f"cannot resume from {self.run_dir / 'checkpoints' / LAST}: the config differs from the "
                              f"checkpoint's in {describe_changes(changes)} (pass the run's own overrides again, or "
                              f"--allow-config-change to continue with the new values; the change is recorded in "
                              f"history.jsonl)")
        self.config_changes = {k: list(v) for k, v in changes.items()}
        threads = (state.get("resolved") or {}).get("threads")
        if self.cfg["train"]["threads"] == "auto" and threads is not None and threads != self.resolved["threads"]:
            # auto is re-measured at each start, and another count changes float summation: the
            # resumed run keeps the count it started with (an integer train.threads still wins)
            now = (f"OMP_NUM_THREADS gives {self.resolved['threads']}" if os.environ.get("OMP_NUM_THREADS")
                   else f"measured now: {self.resolved['threads']}")
            torch.set_num_threads(threads)
            self.notes.append(f"train.threads=auto: keeping the checkpoint's {threads} thread(s) ({now}) so the "
                              f"resume is exact; set an integer to change it")
            self.resolved["threads"] = threads
        self.model.load_state_dict(state["segmentor"])
        self.discs.load_state_dict(state["discriminators"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        self.scaler.load_state_dict(state["scaler"])
        split, old = self.cfg["train"]["validate_on"], dict(state["best"])
        old.setdefault("split", "val")  # checkpoints from before the key: validate_on was val
        if old["split"] == split:
            self.best = old
        elif old["iter"] is not None:  # the new split's first validation writes best.pt again
            self.notes.append(f"train.validate_on changed from {old['split']} to {split}: the best checkpoint starts "
                              f"again (the {old['split']} best was {100 * old['miou']:.2f} mIoU at iteration {old['iter']})")
        self.start_iter = int(state["iteration"])
        self._resumed_rng = state["rng"]
        self.restore_rng()

    def restore_rng(self) -> None:
        """A resumed run's global RNGs as its checkpoint saved them: at set-up, and again by the
        trainer once its loader iterators exist (each draws a seed from torch's RNG, which the uncut
        run did before its first step), so the first resumed step draws what the uncut run's did
        (dropout, drop path). Nothing for a fresh run."""
        rng = getattr(self, "_resumed_rng", None)
        if rng is None:
            return
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and rng.get("cuda") is not None:  # rank 0's state, as for the CPU's
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        random.setstate((3, tuple(rng["python"]), rng["python_pos"]))
        np.random.set_state(("MT19937", rng["numpy"].numpy().astype(np.uint32), rng["numpy_pos"]))

    def _init_from(self, path: str) -> None:
        state = load_checkpoint(path)
        if state.get("num_classes") != self.cfg["model"]["num_classes"] or state.get("arch") != self.cfg["model"]["arch"]:
            raise ValueError(f"{path}: checkpoint is {state.get('arch')} with {state.get('num_classes')} classes; "
                             f"the config wants {self.cfg['model']['arch']} with {self.cfg['model']['num_classes']}")
        weights = state["segmentor"]
        if not self.model.multi_level:  # a multi-level checkpoint initialises a single-level net
            weights = {k: v for k, v in weights.items() if not k.startswith("aux_classifier.")}
        self.model.load_state_dict(weights)

    def save(self, name: str, it: int, state: dict | None = None) -> Path:
        path = self.run_dir / "checkpoints" / name
        if self.dist.is_main:
            before = f"the previous {name} is intact" if path.is_file() else f"no {name} was written"
            try:
                save_checkpoint(path, self.state_dict(it) if state is None else state)
            except (OSError, RuntimeError) as exc:  # disk full, read-only: the previous file is untouched
                # torch.save reports a failed write as RuntimeError ("[enforce fail at
                # inline_container.cc:...]" / "PytorchStreamWriter failed writing ..."); other
                # RuntimeErrors are not about the disk
                if isinstance(exc, RuntimeError) and not any(s in str(exc) for s in ("inline_container", "PytorchStreamWriter")):
                    raise
                reason = exc if isinstance(exc, OSError) else str(exc).splitlines()[0]
                raise OSError(f"could not write checkpoint {path} at iteration {it} ({reason}; is the disk full?); "
                              f"{before}") from None
        return path

    def save_snapshot(self, it: int) -> Path:
        """A weights-only ``iter_NNNNNN.pt`` (no optimiser or RNG state): enough to evaluate,
        predict or initialise from, so ``udaseg evaluate RUN_DIR`` can tabulate a run's history."""
        heavy = ("discriminators", "opt_g", "opt_d", "scaler", "rng", *components.checkpoint_state([]))
        state = {k: v for k, v in self.state_dict(it).items() if k not in heavy} if self.dist.is_main else {}
        return self.save(f"iter_{it:06d}.pt", it, state)

    def last_good_checkpoint(self) -> str:
        """What the run's last checkpoint is worth after a failure (see ``describe_last_good``)."""
        return describe_last_good(self.run_dir / "checkpoints" / LAST)

