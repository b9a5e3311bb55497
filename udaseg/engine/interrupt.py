"""Stopping a run cleanly on Ctrl-C (SIGINT) or a scheduler's SIGTERM: the step in progress
finishes, ``last.pt`` is written, and the command exits 128 + the signal's number (130 / 143)
after printing how to resume. A second signal acts at once (the previous handlers are back).
Under DDP every rank stops after the same iteration (the request is all-reduced each step)."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after ``iteration``, its state saved in ``checkpoint``."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path | None):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        self.exit_code = 128 + signum
        where = f"; saved {checkpoint}" if checkpoint else ""
        super().__init__(f"interrupted by {signal.Signals(signum).name} after iteration {iteration}{where}")


class StopOnSignal:
    """Context manager: while inside, SIGINT / SIGTERM only set :attr:`signum` (main thread only:
    elsewhere signals cannot be caught, and nothing is installed). A signal the process ignores
    stays ignored: ``nohup`` and a non-interactive shell's ``&`` ignore SIGINT on purpose."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()  # a second Ctrl-C interrupts at once

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in SIGNALS
                              if signal.getsignal(sig) is not signal.SIG_IGN}
            for sig in self._previous:
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        self._restore()
        return False

    def requested(self, dist, device) -> int:
        """The signal to stop on (0: none), the same on every rank (``device``: NCCL's is CUDA)."""
        if not dist.enabled:
            return self.signum
        flag = torch.tensor([self.signum], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())


def end_loader_workers(iterators: Iterable) -> None:
    """End the worker processes of DataLoader iterators now. Loader workers ignore SIGINT / SIGTERM
    (``builders.loader_worker_init``: the main process decides), so when an exception (a stop
    signal's included) leaves a traceback holding their iterators, Python's exit terminates them
    with a SIGTERM they ignore and then waits for them forever."""
    for it in iterators:
        shutdown = getattr(it, "_shutdown_workers", None)  # torch's multi-process iterator only
        if shutdown is not None:
            shutdown()


@contextmanager
def loader_iteration(loader) -> Iterator:
    """``iter(loader)``, whose workers end if an exception leaves the block (``end_loader_workers``)."""
    it = iter(loader)
    try:
        yield it
    except BaseException:
        end_loader_workers([it])
        raise


def study_exit_code(main, *args) -> int:
    """Run a resumable study's ``main(*args)`` (``benchmarks/recipe.py``, ``ablation.py``,
    ``dev_grid.py``): a stop signal ends it with one line saying that re-running resumes, and the
    exit code 128 + the signal's number, as ``udaseg train`` — not a traceback."""
    try:
        main(*args)
    except TrainingInterrupted as exc:
        print(f"{exc}; run the same command again to resume", file=sys.stderr)
        return exc.exit_code
    return 0
