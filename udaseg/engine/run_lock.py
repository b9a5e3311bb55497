"""One writer per run directory: an exclusive lock, taken before anything in the folder is touched.

Two ``udaseg train`` into one folder at once interleaved ``metrics.jsonl``, left ``config.yaml``
and ``last.pt`` from different runs, and a ``--resume`` started beside a live run deleted the
live run's checkpoint temp file (it took it for the orphan of a kill). The lock is an ``flock``
on ``RUN_DIR/.udaseg.lock``: the kernel releases it when the holder exits, however it exits, so
a lock left by a killed process is never stale. The file keeps the holder's PID and command, to
name it when another process is refused, and is emptied on a clean release: a successor that
finds it filled knows the previous writer was killed (the run's log says so).

Within one process the lock is re-entrant (the two stages of ``run_training``, a test's several
``Trainer`` objects on one folder); it is released when the last holder releases it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".udaseg.lock"
_held: dict[str, list] = {}  # resolved folder -> [file descriptor, holders in this process]


class RunDirLockedError(RuntimeError):
    """Another process writes this run directory."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"process {info['pid']} on {info['host']} (`{' '.join(info['command'])}`, since "
                f"{info['started']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def acquire(run_dir: str | os.PathLike) -> str | None:
    """Lock ``run_dir`` (created if missing) for this process. Raises RunDirLockedError naming the
    holder if another process has it. Returns a note when the lock file named a previous holder
    that is gone (a killed run), else None."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    try:  # creating the folder and the lock file is also the check that the run can write there
        run_dir.mkdir(parents=True, exist_ok=True)
        key = str(run_dir.resolve())
        if key in _held:
            _held[key][1] += 1
            return None
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OSError(f"output directory {run_dir} is not writable ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirLockedError(
                f"run directory {run_dir} is in use by {_holder(path)}: one run directory takes one writer. "
                f"Wait for it to finish, or stop it (Ctrl-C or SIGTERM: it saves last.pt and exits), "
                f"then --resume") from None
        # a file system without flock (some network mounts): run unguarded rather than not at all
        print(f"udaseg: warning: cannot lock {path} ({exc.strerror}); nothing stops a second writer", file=sys.stderr)
        _held[key] = [None, 1]
        return None
    previous = _holder(path) if os.fstat(fd).st_size else None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": sys.argv,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _held[key] = [fd, 1]
    return f"took over the lock of {previous}, which no longer runs" if previous else None


def release(run_dir: str | os.PathLike) -> None:
    """Drop one hold of this process's lock on ``run_dir``; the last one unlocks the folder."""
    key = str(Path(run_dir).resolve())
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        if entry[0] is not None:
            os.ftruncate(entry[0], 0)  # a clean exit leaves no holder to report; a killed one does
            os.close(entry[0])  # closing the descriptor releases the flock


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) inherits the descriptors, and an flock lives while any
    copy is open: a killed run's workers would hold its folder for seconds after it died. The
    child closes its copies (without unlocking: the parent's copy keeps the lock)."""
    for fd, _ in _held.values():
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def held(run_dir: str | os.PathLike) -> bool:
    """Whether this process holds ``run_dir``'s lock."""
    return str(Path(run_dir).resolve()) in _held
