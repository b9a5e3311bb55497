"""Checkpoints that survive a kill: written to a temp file in the same folder, fsynced, then
renamed over the old one (a rename is atomic on POSIX), so a reader sees the old or the new file,
never half of one.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch


def _process_umask() -> int:
    try:  # Linux: read it without changing it (os.umask would briefly race other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error(path, exc: OSError, hint: str = "") -> OSError:
    """``exc`` as an error naming ``path`` (Python's own for a full disk names no file)."""
    return OSError(exc.errno, f"could not write {path} ({exc.strerror or exc}{hint})")


def _atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temp file beside ``path``, fsync, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a full or read-only disk: say which file could not be written
        raise write_error(path, exc) from None
    try:
        # mkstemp makes the file owner-only (0600); give it the mode a plain open() would, so
        # checkpoints and reports stay readable by the group on a shared cluster
        os.fchmod(fd, 0o666 & ~_process_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and str(path) not in str(exc):
            raise write_error(path, exc) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, then an atomic rename."""
    _atomic_write(path, lambda f: torch.save(state, f))


# torch's advice on a refused load: reload with weights_only=False, or allowlist the file's
# globals. Both run whatever code the file holds, so udaseg never passes either on.
_UNSAFE_ADVICE = re.compile(r"weights_only|WeightsUnpickler|re-running `torch\.load`|safe_globals|trust|"
                            r"file an issue|Check the documentation|two options", re.I)


def _load_reason(exc: BaseException) -> str:
    """torch.load's failure in one line, without its advice to retry with ``weights_only=False``
    or to allowlist the file's globals (which runs whatever code the file holds: never to be
    suggested for a file that failed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch bolds part of its advice with ANSI codes
    if "weights_only" in text or "WeightsUnpickler" in text:
        # the unpickler's own reason follows "WeightsUnpickler error:"; drop every advising sentence
        detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
        detail = detail.split("Check the documentation", 1)[0]  # a pointer to the weights_only docs
        sentences = re.split(r"(?<=[.:])\s+", " ".join(detail.split()))
        detail = " ".join(s for s in sentences if s and not _UNSAFE_ADVICE.search(s)).rstrip(" .:")
        return f"not a plain tensor file: {detail or 'content a safe load refuses'}; udaseg never runs code from a file"
    lines = [line.strip() for line in text.strip().splitlines() if not _UNSAFE_ADVICE.search(line)]
    if lines:
        return lines[0]
    # an empty message (EOFError from an empty file, say) says nothing; say what it means
    return "the file is empty or ends early" if isinstance(exc, EOFError) else "no reason given"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a udaseg checkpoint without executing code from it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol asks the user to "file an issue"
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds pickled code
        raise ValueError(f"{path}: not a readable udaseg checkpoint ({type(exc).__name__}: {_load_reason(exc)})") from None
    if not isinstance(state, dict) or "segmentor" not in state:
        raise ValueError(f"{path}: not a udaseg checkpoint (no 'segmentor' entry)")
    return state


def describe_last_good(path: Path) -> str:
    """What the run's last checkpoint is worth after a failure: its path only if its weights
    are finite and not exploded (trained weights stay O(1); |w| > 1e6 means the run had
    diverged before it was written, as at train.lr=1e30: max |w| = 5.7e30)."""
    if not path.is_file():
        return "no checkpoint was written before it"
    try:
        state = load_checkpoint(path)
    except ValueError as exc:
        return f"{path} is not readable ({exc})"
    tensors = {k: v for k, v in state["segmentor"].items() if v.is_floating_point()}
    it = state["iteration"]
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        return f"{path} (iteration {it}) holds non-finite weights: no good checkpoint; start again with a lower LR"
    # parameters only: BN running variances of un-normalised inputs can be large legitimately
    peak = max(float(v.abs().max()) for k, v in tensors.items() if v.numel() and ".running_" not in k)
    if peak > 1e6:
        return (f"{path} (iteration {it}) holds weights up to {peak:.3g}: it had diverged already; start again "
                f"with a lower LR or loss weight")
    return f"the last good checkpoint is {path} (iteration {it}; lower the LR or a loss weight, then --resume)"
