"""The training loop: data, forward passes, backward, optimiser steps, AMP, DDP, checkpoints,
validation and logs. Methods (``udaseg.methods``) only turn outputs into losses.

One iteration (batch = B source + B target images per process):

1. segmenter step — source forward → ``method.source_losses`` → backward; target forward →
   ``method.target_losses`` (discriminators frozen, called without their DDP wrapper so no
   gradient sync happens for them) → backward; ``train.optimizer`` step (SGD by default). A
   backward per domain, as FADA and ADVENT do, keeps one domain's activations in memory at a time.
2. discriminator step — ``method.discriminator_losses`` on detached outputs → backward →
   ``train.optimizer_d`` step (Adam by default).

Poly LR ``lr·(1 − it/iters)^power`` for both optimisers, the segmenter's heads at 10×.

A run directory has one writer (``run_lock``, taken before anything in it is touched), and
SIGINT / SIGTERM stop the loop after the step in progress, with ``last.pt`` saved (``interrupt``).
"""
from __future__ import annotations

import contextlib
import copy
import os
import random
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from udaseg.config import dump_config
from udaseg.engine.builders import (_worker_init, build_split, build_val_loader, evaluate_model,
                                    git_revision, per_process_batch, poly_lr, rank_device, resolve_device,
                                    seed_everything)
from udaseg.engine.checkpoint import (atomic_write_json, atomic_write_text, describe_last_good, load_checkpoint,
                                      save_checkpoint)
from udaseg.engine.device_defaults import (AMP_DTYPES, resolve_amp, resolve_aspp_impl, resolve_cudnn_benchmark,
                                           resolve_malloc_tuning, resolve_threads)
from udaseg.engine.distributed import DistInfo, barrier, init_from_env
from udaseg.engine import run_lock
from udaseg.engine.evaluation import EvalResult
from udaseg.engine.interrupt import StopOnSignal, TrainingInterrupted
from udaseg.engine.inputs import normalize_images
from udaseg.data.rcs import RareClassCropDataset, RareClassSampler, class_pixel_stats
from udaseg.engine.mean_teacher import SelfTraining, check_self_training_run
from udaseg.engine.memory import keep_freed_memory_mapped
from udaseg.engine.optim import build_optimizer
from udaseg.engine.run_dir import (RunDirError, append_history, config_changes, describe_changes,
                                   refuse_fresh_run_over_existing, remove_orphan_temp_files)
from udaseg.engine.run_logger import RunLogger, prediction_images
from udaseg.engine.sampler import InfiniteBatchSampler
from udaseg.methods import build_method
from udaseg.methods.base import Pass, Terms
from udaseg.models import build_segmentor, resolve_pretrained

LAST, BEST = "last.pt", "best.pt"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; raised before it can touch the weights."""


class Trainer:
    """Trains one stage (one method, ``train.iters`` iterations) into ``run_dir``."""

    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, dist: DistInfo | None = None,
                 progress: bool = True, overwrite: bool = False, allow_config_change: bool = False):
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
        self.progress = progress and self.dist.is_main and sys.stderr.isatty()
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
        self.resolved = self._apply_device_settings()
        seed_everything(cfg["seed"])

        if mc["pretrained"] and self.dist.enabled:  # a named file: rank 0 downloads it, the others wait
            if self.dist.is_main:
                resolve_pretrained(mc["pretrained"], mc["arch"], input_norm=mc["input_norm"],
                                   sha256=mc["pretrained_sha256"])
            barrier(self.dist)
        self.model = build_segmentor(mc["arch"], mc["num_classes"], mc["multi_level"], mc["bn_mode"],
                                     mc["pretrained"], pretrained_sha256=mc["pretrained_sha256"],
                                     aspp_impl=self.resolved["aspp_impl"], input_norm=mc["input_norm"]).to(self.device)
        self.method = build_method(cfg["method"], mc["num_classes"], self.model.feature_channels, mc["multi_level"])
        self.discs = torch.nn.ModuleDict(self.method.build_discriminators()).to(self.device)
        if tc["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
            self.discs.to(memory_format=torch.channels_last)
        self.amp_dtype = AMP_DTYPES[self.resolved["amp"]]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.resolved["amp"] == "fp16")

        self.opt_g = build_optimizer(tc["optimizer"], self.model.param_groups(tc["lr"], tc["head_lr_mult"]),
                                     lr=tc["lr"], momentum=tc["momentum"], betas=tuple(tc["betas"]),
                                     weight_decay=tc["weight_decay"])
        self.opt_d = (build_optimizer(tc["optimizer_d"], self.discs.parameters(), lr=tc["lr_d"],
                                      momentum=tc["momentum"], betas=tuple(tc["betas_d"]), key="train.optimizer_d")
                      if len(self.discs) else None)

        self.start_iter = 0
        self.config_changes = {}
        self._paused_at = None  # where train(stop_at) returned, that iteration's periodic actions not run
        # the split is part of the best: validate_on is resume-safe, and a dev mIoU is no match for a val one
        self.best = {"miou": -1.0, "iter": None, "split": tc["validate_on"]}
        check_self_training_run(cfg)  # includes check_self_training_config for this method
        restored = load_checkpoint(last) if resume and last.is_file() else None
        if restored is not None:
            self._restore(restored)
        elif tc["init_from"]:
            self._init_from(tc["init_from"])
        # the teacher starts as a copy of the student's (initial or resumed) weights
        self.st = (SelfTraining(cfg["self_training"], self.model, cfg["seed"], bn_mode=mc["bn_mode"])
                   if cfg["self_training"]["enabled"] else None)
        if self.st is not None:
            self.resolved["teacher_bn"] = self.st.teacher_bn  # what "auto" meant for this model, recorded with the run
        if self.st is not None and restored is not None:
            if restored.get("teacher") is None:
                raise ValueError(f"cannot resume from {last}: it has no teacher weights, the config enables self_training")
            self.st.load_state_dict(restored["teacher"])

        # DDP after loading weights, so every rank starts from rank 0's (identical) state.
        self.model_ddp, self.discs_ddp = self.model, self.discs
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Gradients are all-reduced once a step, in the last segmenter backward (step() runs
            # the source pass under no_sync when a target backward follows); a head that this
            # backward does not reach (e.g. FADA's classifiers) needs find_unused_parameters.
            # (self-training's passes, the last, train the main head only: the aux head idles)
            unused = self.model.multi_level if self.st is not None else self.method.ddp_find_unused_parameters()
            self.model_ddp = DDP(self.model, device_ids=ids, find_unused_parameters=unused)
            self.discs_ddp = torch.nn.ModuleDict({k: DDP(d, device_ids=ids) for k, d in self.discs.items()})

        self._build_data()
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main)
        if self.dist.is_main:
            self._write_run_files(resume)
            for note in self.notes:
                self.logger.text(note)
                print(f"udaseg: {note}", file=sys.stderr)

    # ------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------
    def _apply_device_settings(self) -> dict:
        """Resolve the device-dependent settings (``auto``) and apply the process-wide ones."""
        tc, dev = self.cfg["train"], self.device
        out = {"aspp_impl": resolve_aspp_impl(self.cfg["model"]["aspp_impl"], dev),
               "amp": resolve_amp(tc["amp"], dev),
               "malloc_tuning": resolve_malloc_tuning(tc["malloc_tuning"], dev),
               "cudnn_benchmark": resolve_cudnn_benchmark(tc["cudnn_benchmark"], dev, tc["deterministic"]),
               "deterministic": tc["deterministic"],
               "threads": resolve_threads(tc["threads"], dev)}
        torch.set_num_threads(out["threads"])
        if out["malloc_tuning"]:
            keep_freed_memory_mapped()
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = out["cudnn_benchmark"]
        if tc["deterministic"]:
            # cuBLAS needs a fixed workspace for deterministic GEMMs (set before its first use)
            out["cublas_workspace_config"] = os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)
        return out

    def _build_data(self) -> None:
        cfg, m = self.cfg, self.method
        k, bs, seed = cfg["model"]["num_classes"], self.batch_size, cfg["seed"]
        self.loaders = {}
        if m.uses_source:
            src = build_split(cfg["data"]["source"], k, seed)
            rcs = cfg["data"]["source"]["rcs"]
            sampler = None
            if rcs["enabled"]:  # rare-class sampling: class statistics counted once, cached beside the data
                if self.dist.is_main:
                    class_pixel_stats(src)
                barrier(self.dist)
                sampler = RareClassSampler(class_pixel_stats(src), bs, temperature=rcs["temperature"],
                                           min_pixels=rcs["min_pixels"], seed=seed, start_batch=self.start_iter,
                                           rank=self.dist.rank, world_size=self.dist.world_size)
                src = RareClassCropDataset(src, min_pixels=rcs["min_pixels"], min_crop_ratio=rcs["min_crop_ratio"])
            self.loaders["source"] = self._loader(src, bs, seed, sampler)
        if m.uses_target_images or self.st is not None:
            tgt = build_split(cfg["data"]["target"], k, seed + 1, with_labels=m.uses_target_labels)
            self.loaders["target"] = self._loader(tgt, bs, seed + 1)
        self._iters = {name: iter(loader) for name, loader in self.loaders.items()}
        if cfg["train"]["val_every"]:  # now, so a missing val / dev split fails at the start, not hours in
            self._val_loader = build_val_loader(cfg, self.dist, cfg["train"]["validate_on"])

    def _loader(self, ds, batch_size: int, seed: int, sampler=None) -> DataLoader:
        sampler = sampler or InfiniteBatchSampler(len(ds), batch_size, seed=seed, start_batch=self.start_iter,
                                                  rank=self.dist.rank, world_size=self.dist.world_size)
        workers = self.cfg["data"]["workers"]
        return DataLoader(ds, batch_sampler=sampler, num_workers=workers, worker_init_fn=_worker_init,
                          pin_memory=self.cfg["data"]["pin_memory"] and self.device.type == "cuda",
                          persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)

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

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------
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
            "teacher": None if self.st is None else self.st.state_dict(),
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
        rng = state["rng"]
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
        heavy = ("discriminators", "opt_g", "opt_d", "scaler", "rng", "teacher")
        state = {k: v for k, v in self.state_dict(it).items() if k not in heavy} if self.dist.is_main else {}
        return self.save(f"iter_{it:06d}.pt", it, state)

    def last_good_checkpoint(self) -> str:
        """What the run's last checkpoint is worth after a failure (see ``describe_last_good``)."""
        return describe_last_good(self.run_dir / "checkpoints" / LAST)

    # ------------------------------------------------------------------------------------------
    # one iteration
    # ------------------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _forward(self, batch: dict, model, mask: torch.Tensor | None = None) -> Pass:
        """``model`` on the batch's images (uint8, or float in [0, 255]), normalised here; ``mask``
        multiplies the normalised input (MIC's masked pixels become the mean colour)."""
        x = normalize_images(batch["image"].to(self.device, non_blocking=True), self.cfg["model"]["input_norm"])
        if mask is not None:
            x = x * mask.to(x.device, x.dtype)
        if self.cfg["train"]["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = batch["label"].to(self.device, non_blocking=True) if "label" in batch else None
        return Pass(model(x), labels, tuple(x.shape[-2:]))  # inside step()'s autocast region

    def _backward(self, terms: Terms, logs: dict) -> None:
        if not terms:
            return
        # Checked before backward: the weights stay those of the last finite step, and the last
        # checkpoint on disk stays the last good one.
        bad = [name for name, (_, v) in terms.items() if not bool(torch.isfinite(v.detach()))]
        if bad:
            values = ", ".join(f"{n} = {float(terms[n][1].detach()):.4g}" for n in bad)
            raise NonFiniteLossError(f"iteration {self._iter + 1}: non-finite loss ({values}); training stopped; "
                                     f"{self.last_good_checkpoint()}")
        total = sum(w * v for w, v in terms.values())
        # backward outside autocast (as torch recommends); a nested disabled region keeps the cache
        with torch.autocast(self.device.type, enabled=False):
            self.scaler.scale(total).backward()
        for name, (_, v) in terms.items():
            logs[name] = v.detach()

    def set_lr(self, it: int) -> float:
        tc = self.cfg["train"]
        lr = poly_lr(tc["lr"], it, tc["iters"], tc["poly_power"], tc["warmup_iters"], tc["warmup_ratio"])
        for g in self.opt_g.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        if self.opt_d is not None:
            lr_d = poly_lr(tc["lr_d"], it, tc["iters"], tc["poly_power"])
            for g in self.opt_d.param_groups:
                g["lr"] = lr_d
        return lr

    def step(self, it: int, batches: dict) -> tuple[dict, dict]:
        """One iteration; returns (raw loss values, metrics)."""
        self.model_ddp.train()
        self.discs.train()
        self._iter = it
        lr = self.set_lr(it)
        logs, metrics = {}, {"lr": lr}
        self.opt_g.zero_grad(set_to_none=True)
        self.discs.requires_grad_(False)
        if self.st is not None:
            self.st.before_step(self.model, it)
        passed = {}
        # One autocast region for all segmenter passes: autocast caches the bf16/fp16 copies of
        # the weights until its outermost region exits, so they are cast once per step, not once
        # per pass (the casts were 13% of a demo step). The weights do not change inside it.
        with self._autocast():
            passes = self._segmenter_passes(batches, it, passed)
            for i, run_pass in enumerate(passes):
                # DDP: one gradient all-reduce a step, in the last backward
                last = i == len(passes) - 1
                with self.model_ddp.no_sync() if self.dist.enabled and not last else contextlib.nullcontext():
                    self._backward(run_pass(), logs)
            if self.method.uses_target_images and not self.method.target_needs_grad:
                with torch.no_grad():  # BN-only control: train-mode statistics update, no graph, no loss
                    passed["target"] = self._forward(batches["target"], self.model_ddp)
        src, tgt = passed.get("source"), passed.get("target")
        if self.st is not None:
            metrics["pseudo_weight"] = self.st.last_pseudo_weight
        self.scaler.step(self.opt_g)
        if self.opt_d is not None:
            self.discs.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                terms, d_metrics = self.method.discriminator_losses(src, tgt, dict(self.discs_ddp))
                self._backward(terms, logs)
            self.scaler.step(self.opt_d)
            metrics.update(d_metrics)
        self.scaler.update()
        self._last = (batches, src, tgt)
        return logs, metrics

    def _segmenter_passes(self, batches: dict, it: int, passed: dict) -> list:
        """The step's segmenter backward passes, in order, each a callable returning loss terms:
        source, target (the method's), then self-training's. ``passed`` receives the detached
        source / target passes the discriminator step needs."""
        m, passes = self.method, []
        if m.uses_source:
            def source():
                p = self._forward(batches["source"], self.model_ddp)
                passed["source"] = p.detached()
                return m.source_losses(p)
            passes.append(source)
        if m.uses_target_images and m.target_needs_grad:
            def target():
                p = self._forward(batches["target"], self.model_ddp)
                passed["target"] = p.detached()
                return m.target_losses(p, dict(self.discs))
            passes.append(target)
        if self.st is not None:
            passes += self.st.passes(lambda x, mask=None: self._forward({"image": x}, self.model_ddp, mask).out,
                                     lambda x: self._forward({"image": x}, self.st.teacher).out,
                                     batches["source"], batches["target"], self._stream_positions(it), self.device)
        return passes

    def _stream_positions(self, it: int) -> list[int]:
        """Global stream positions of this rank's samples in iteration ``it`` (as the sampler's)."""
        bs, w, r = self.batch_size, self.dist.world_size, self.dist.rank
        return [it * bs * w + r + j * w for j in range(bs)]

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def _next_batches(self) -> dict:
        return {name: next(it) for name, it in self._iters.items()}

    def _after_iteration(self, it: int) -> None:
        """The periodic actions that follow iteration ``it``'s step (and its log record)."""
        tc = self.cfg["train"]
        if tc["val_every"] and it % tc["val_every"] == 0 and it < tc["iters"]:
            self._validate(it)
        if tc["checkpoint_every"] and it % tc["checkpoint_every"] == 0 and it < tc["iters"]:
            self.save(LAST, it)
            barrier(self.dist)
        if tc["keep_every"] and it % tc["keep_every"] == 0:
            self.save_snapshot(it)

    def train(self, stop_at: int | None = None) -> dict:
        """Run to ``train.iters`` (or stop after iteration ``stop_at``'s step, as a kill would:
        without that iteration's validation, checkpoint or snapshot; calling ``train`` again on
        this trainer runs them, then continues, the loaders going on: the uninterrupted run).
        Returns {"last": path, "best": path or None, "best_miou", "iter"}."""
        tc = self.cfg["train"]
        total = tc["iters"]
        it = self.start_iter
        if self._paused_at == it:  # what stop_at skipped (not on resume: last.pt was written after them)
            self._after_iteration(it)
        self._paused_at = None
        bs, world = self.batch_size, self.dist.world_size
        self.logger.text(f"start {self.method.name} at iteration {it}/{total} on {self.device} (world size {world}); "
                         f"batch per domain: {bs} per process x {world} process(es) = {bs * world} global; "
                         f"resolved {self.resolved}")
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=it, desc=self.method.name, dynamic_ncols=True, smoothing=0.05)
        running: dict[str, float] = {}
        n_running, t_last = 0, time.time()
        with StopOnSignal() as stop:  # Ctrl-C / SIGTERM: finish the step, save, exit
            while it < total:
                batches = self._next_batches()
                logs, metrics = self.step(it, batches)
                it += 1
                for k, v in {**logs, **metrics}.items():
                    running[k] = running.get(k, 0.0) + float(v)
                n_running += 1
                if bar is not None:
                    bar.update(1)
                if it % tc["log_every"] == 0 or it == total:
                    avg = {k: v / n_running for k, v in running.items()}
                    sec = (time.time() - t_last) / n_running
                    self.logger.log({"kind": "train", "iter": it, **avg, "sec_per_iter": sec})
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in avg.items() if not k.endswith("_acc")}, refresh=False)
                    running, n_running, t_last = {}, 0, time.time()
                if tc["image_every"] and it % tc["image_every"] == 0:
                    self._log_images(it)
                if stop_at is not None and it >= stop_at:
                    if bar is not None:
                        bar.close()
                    self.start_iter = self._paused_at = it
                    return {"last": None, "iter": it}
                self._after_iteration(it)
                signum = stop.requested(self.dist, self.device)
                if signum and it < total:
                    raise self._interrupted(signum, it, bar)
        if bar is not None:
            bar.close()
        result = self._validate(it) if tc["val_every"] else None
        last = self.save(LAST, it)
        barrier(self.dist)
        self.logger.text(f"done at iteration {it}; last checkpoint {last}")
        self.logger.close()
        if self.dist.is_main:
            self.release_lock()
        best = self.run_dir / "checkpoints" / BEST
        return {"last": last, "best": best if best.is_file() else None, "best_miou": self.best["miou"],
                "iter": it, "val": result}

    def _interrupted(self, signum: int, it: int, bar) -> TrainingInterrupted:
        """After a stop signal: save ``last.pt`` at ``it`` (the step is complete), close the logs."""
        if bar is not None:
            bar.close()
        last = self.save(LAST, it)
        barrier(self.dist)
        error = TrainingInterrupted(signum, it, last)
        self.logger.text(str(error))
        self.logger.close()
        if self.dist.is_main:
            self.release_lock()
        return error

    # ------------------------------------------------------------------------------------------
    # validation and images
    # ------------------------------------------------------------------------------------------
    def evaluate(self) -> EvalResult:
        if not hasattr(self, "_val_loader"):
            self._val_loader = build_val_loader(self.cfg, self.dist, self.cfg["train"]["validate_on"])
        return evaluate_model(self.model, self.cfg, self.device, self._val_loader, self.dist)

    def _validate(self, it: int) -> EvalResult:
        result = self.evaluate()  # every rank evaluates its shard; all get the reduced result
        if self.dist.is_main:
            d = result.to_dict()
            self.logger.log({"kind": "val", "iter": it, "split": self.cfg["train"]["validate_on"], **{k: v for k, v in d.items() if k.startswith("mIoU")},
                             "pixel_accuracy": d["pixel_accuracy"], "iou": d["iou"],
                             "predicted_fractions": d["predicted_fractions"]})
            self.logger.text(f"{self.cfg['train']['validate_on']} @ {it}: " + ", ".join(f"{k} {100 * v:.2f}" for k, v in result.miou.items()))
        if result.main_miou > self.best["miou"]:  # on every rank, so all keep the same best
            self.best = {"miou": result.main_miou, "iter": it, "split": self.cfg["train"]["validate_on"]}
            self.save(BEST, it)  # written by rank 0
        barrier(self.dist)
        return result

    def _log_images(self, it: int) -> None:
        if self.dist.is_main and self.logger.tb is not None and hasattr(self, "_last"):
            batches, src, tgt = self._last
            self.logger.images(it, prediction_images(batches, {"source": src, "target": tgt},
                                                     self.cfg["model"]["num_classes"]))
