"""Keep freed memory mapped between training steps (glibc malloc tuning).

A training step frees and re-allocates the same large activation buffers every iteration. By
default glibc serves blocks over 32 MiB-ish with mmap and returns them to the kernel on free, so
every step pays for page faults and zeroing again; on this CPU class that was a third of the CPU
time of a 512×1024 R101 step (DESIGN.md §6). Setting ``M_MMAP_MAX = 0`` (heap only), a large
trim threshold and top pad — the run-time equivalent of ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=… MALLOC_TOP_PAD_=…`` — keeps those pages. No-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # from glibc's malloc.h
_done = False


def _mallopt():
    """glibc's ``mallopt``, or None off glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory_mapped(trim_threshold: int = 1 << 32, top_pad: int = 1 << 28) -> bool:
    """Apply the tuning once per process; True if glibc accepted it."""
    global _done
    if _done:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)), (_M_TOP_PAD, top_pad)))
    _done = ok
    return ok


def restore_malloc_defaults() -> None:
    """Undo the tuning in a process that inherited it by fork (DataLoader workers), with glibc's
    documented defaults (mallopt(3): M_MMAP_MAX 65536, M_TRIM_THRESHOLD and M_TOP_PAD 128 KiB)."""
    global _done
    if not _done:
        return
    mallopt = _mallopt()
    if mallopt is None:
        return
    for param, value in ((_M_MMAP_MAX, 65536), (_M_TRIM_THRESHOLD, 128 * 1024), (_M_TOP_PAD, 128 * 1024)):
        mallopt(param, value)
    _done = False
