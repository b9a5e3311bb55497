"""One training iteration, top to bottom. Methods (``udaseg.methods``) turn outputs into losses;
components (``udaseg.engine.component``) add terms, passes and state; this module owns the
forward passes, backward, optimiser steps, AMP and DDP's gradient sync.

One iteration (batch = B source + B target images per process):

0. every component's ``before_step`` (the EMA teacher update);
1. segmenter step — source forward → ``method.source_losses`` + components' ``source_terms`` →
   backward; target forward → ``method.target_losses`` (discriminators frozen, called without
   their DDP wrapper so no gradient sync happens for them) → backward; each component's passes →
   backward each; ``train.optimizer`` step (SGD by default). A backward per pass, as FADA and
   ADVENT do, keeps one pass's activations in memory at a time;
2. discriminator step — ``method.discriminator_losses`` on detached outputs → backward →
   ``train.optimizer_d`` step (Adam by default).

Poly LR ``lr·(1 − it/iters)^power`` for both optimisers, the segmenter's heads at 10×.
"""
from __future__ import annotations

import contextlib
import weakref

import torch

from udaseg.engine.builders import poly_lr
from udaseg.engine.component import StepContext
from udaseg.engine.inputs import normalize_images
from udaseg.methods.base import Pass, Terms


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; raised before it can touch the weights."""


class Step:
    """The iteration of a run's state (``udaseg.engine.run_state.RunState``): models, method,
    components, optimisers, scaler, device and DDP wrappers are read from it at each call."""

    def __init__(self, run):
        # a proxy, not a reference: the run owns its step, and a cycle would keep a finished run
        # (its loader workers included) alive until the garbage collector or interpreter exit,
        # where joining persistent workers can hang
        self.run = weakref.proxy(run)
        self.iteration = None  # the iteration in progress (error messages)
        self.last = None  # (batches, source pass, target pass) of the last step: the logged images

    def __call__(self, it: int, batches: dict) -> tuple[dict, dict]:
        """Iteration ``it``; returns (raw loss values, metrics)."""
        r = self.run
        r.model_ddp.train()
        r.discs.train()
        self.iteration = it
        lr = self.set_lr(it)
        logs, metrics = {}, {"lr": lr}
        r.opt_g.zero_grad(set_to_none=True)
        r.discs.requires_grad_(False)
        for c in r.components:
            c.before_step(r.model, it)
        passed = {}
        # One autocast region for all segmenter passes: autocast caches the bf16/fp16 copies of
        # the weights until its outermost region exits, so they are cast once per step, not once
        # per pass (the casts were 13% of a demo step). The weights do not change inside it.
        with self.autocast():
            passes = self.segmenter_passes(batches, it, passed)
            for i, run_pass in enumerate(passes):
                # DDP: one gradient all-reduce a step, in the last backward
                last = i == len(passes) - 1
                with r.model_ddp.no_sync() if r.dist.enabled and not last else contextlib.nullcontext():
                    self.backward(run_pass(), logs)
            if r.method.uses_target_images and not r.method.target_needs_grad:
                with torch.no_grad():  # BN-only control: train-mode statistics update, no graph, no loss
                    passed["target"] = self.forward(batches["target"], r.model_ddp)
        src, tgt = passed.get("source"), passed.get("target")
        for c in r.components:
            metrics.update(c.metrics())
        r.scaler.step(r.opt_g)
        if r.opt_d is not None:
            r.discs.requires_grad_(True)
            r.opt_d.zero_grad(set_to_none=True)
            with self.autocast():
                terms, d_metrics = r.method.discriminator_losses(src, tgt, dict(r.discs_ddp))
                self.backward(terms, logs)
            r.scaler.step(r.opt_d)
            metrics.update(d_metrics)
        r.scaler.update()
        self.last = (batches, src, tgt)
        return logs, metrics

    def segmenter_passes(self, batches: dict, it: int, passed: dict) -> list:
        """The step's segmenter backward passes, in order, each a callable returning loss terms:
        source, target (the method's), then each component's. ``passed`` receives the detached
        source / target passes the discriminator step needs."""
        r = self.run
        m, passes = r.method, []
        if m.uses_source:
            def source():
                p = self.forward(batches["source"], r.model_ddp)
                passed["source"] = p.detached()
                terms = m.source_losses(p)
                for c in r.components:
                    terms.update(c.source_terms(p, batches["source"]))
                return terms
            passes.append(source)
        if m.uses_target_images and m.target_needs_grad:
            def target():
                p = self.forward(batches["target"], r.model_ddp)
                passed["target"] = p.detached()
                return m.target_losses(p, dict(r.discs))
            passes.append(target)
        if r.components:
            ctx = StepContext(it, batches, self.stream_positions(it), r.device, r.model_ddp,
                              lambda model, x, mask=None: self.forward({"image": x}, model, mask).out)
            for c in r.components:
                passes += c.passes(ctx)
        return passes

    def stream_positions(self, it: int) -> list[int]:
        """Global stream positions of this rank's samples in iteration ``it`` (as the sampler's)."""
        bs, w, rank = self.run.batch_size, self.run.dist.world_size, self.run.dist.rank
        return [it * bs * w + rank + j * w for j in range(bs)]

    def set_lr(self, it: int) -> float:
        r, tc = self.run, self.run.cfg["train"]
        lr = poly_lr(tc["lr"], it, tc["iters"], tc["poly_power"], tc["warmup_iters"], tc["warmup_ratio"])
        for g in r.opt_g.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        if r.opt_d is not None:
            lr_d = poly_lr(tc["lr_d"], it, tc["iters"], tc["poly_power"])
            for g in r.opt_d.param_groups:
                g["lr"] = lr_d
        return lr

    def autocast(self):
        r = self.run
        if r.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(r.device.type, dtype=r.amp_dtype)

    def forward(self, batch: dict, model, mask: torch.Tensor | None = None) -> Pass:
        """``model`` on the batch's images (uint8, or float in [0, 255]), normalised here; ``mask``
        multiplies the normalised input (MIC's masked pixels become the mean colour)."""
        r = self.run
        x = normalize_images(batch["image"].to(r.device, non_blocking=True), r.cfg["model"]["input_norm"])
        if mask is not None:
            x = x * mask.to(x.device, x.dtype)
        if r.cfg["train"]["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = batch["label"].to(r.device, non_blocking=True) if "label" in batch else None
        return Pass(model(x), labels, tuple(x.shape[-2:]))  # inside the step's autocast region

    def backward(self, terms: Terms, logs: dict) -> None:
        if not terms:
            return
        # Checked before backward: the weights stay those of the last finite step, and the last
        # checkpoint on disk stays the last good one.
        bad = [name for name, (_, v) in terms.items() if not bool(torch.isfinite(v.detach()))]
        if bad:
            values = ", ".join(f"{n} = {float(terms[n][1].detach()):.4g}" for n in bad)
            raise NonFiniteLossError(f"iteration {self.iteration + 1}: non-finite loss ({values}); training stopped; "
                                     f"{self.run.last_good_checkpoint()}")
        total = sum(w * v for w, v in terms.values())
        # backward outside autocast (as torch recommends); a nested disabled region keeps the cache
        with torch.autocast(self.run.device.type, enabled=False):
            self.run.scaler.scale(total).backward()
        for name, (_, v) in terms.items():
            logs[name] = v.detach()
