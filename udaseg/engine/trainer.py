"""The training loop: batches in, one ``Step`` each, logs, validation, checkpoints and images
at their intervals, and a clean stop on SIGINT / SIGTERM (``last.pt`` saved, ``interrupt``).

The run's state — set-up, checkpoints, resume — is ``udaseg.engine.run_state``; one iteration
is ``udaseg.engine.step``; methods (``udaseg.methods``) only turn outputs into losses and
components (``udaseg.engine.component``) add passes, terms and state.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from udaseg.engine.builders import build_val_loader, evaluate_model
from udaseg.engine.distributed import DistInfo, barrier
from udaseg.engine.evaluation import EvalResult
from udaseg.engine.interrupt import StopOnSignal, TrainingInterrupted, end_loader_workers
from udaseg.engine.run_logger import prediction_images
from udaseg.engine.run_state import BEST, LAST, RunState
from udaseg.engine.step import NonFiniteLossError, Step  # noqa: F401  (NonFiniteLossError: importable here, as before)


class Trainer(RunState):
    """Trains one stage (one method, ``train.iters`` iterations) into ``run_dir``."""

    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, dist: DistInfo | None = None,
                 progress: bool = True, overwrite: bool = False, allow_config_change: bool = False):
        """``resume``: continue from ``run_dir``'s last checkpoint (refused if the config changed
        in a key that changes the result, unless ``allow_config_change``); without it, a run
        directory that already holds a run is refused unless ``overwrite`` (which deletes it)."""
        super().__init__(cfg, run_dir, resume=resume, dist=dist, overwrite=overwrite,
                         allow_config_change=allow_config_change)
        self.progress = progress and self.dist.is_main and sys.stderr.isatty()
        self.stepper = Step(self)
        self._iters = {name: iter(loader) for name, loader in self.loaders.items()}
        self.restore_rng()  # resumed: the iterators' seed draws are not the run's (RunState.restore_rng)
        self._iter = None  # the iteration in progress
        self._paused_at = None  # where train(stop_at) returned, that iteration's periodic actions not run

    def step(self, it: int, batches: dict) -> tuple[dict, dict]:
        """Iteration ``it`` (``udaseg.engine.step``): (raw loss values, metrics). The loop calls
        it through the instance, so a test or benchmark can wrap it."""
        self._iter = it
        return self.stepper(it, batches)

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
        try:
            return self._train(stop_at)
        except BaseException:
            self.end_loader_workers()
            raise

    def end_loader_workers(self) -> None:
        """End the loader workers now (``interrupt.end_loader_workers``: with a traceback holding
        their iterators, Python's exit would wait for them forever — a study script,
        ``benchmarks/recipe.py``, hung so after a scheduler's SIGTERM)."""
        end_loader_workers(self._iters.values())
        self._iters = {}

    def _train(self, stop_at: int | None) -> dict:
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
        if self._val_loader is None:
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
        if self.dist.is_main and self.logger.tb is not None and self.stepper.last is not None:
            batches, src, tgt = self.stepper.last
            self.logger.images(it, prediction_images(batches, {"source": src, "target": tgt},
                                                     self.cfg["model"]["num_classes"]))
