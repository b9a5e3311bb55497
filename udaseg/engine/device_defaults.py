"""Settings whose best value depends on the device, resolved once per run from ``auto``.

Each was measured (or is documented) on one kind of device only, so ``auto`` picks per device and
the resolved value is written to the run's ``meta.json``:

- ``model.aspp_impl``: ``taps`` on the CPU (one GEMM + shifted sums, 7.8× faster there than
  oneDNN's dilated convolutions, BENCHMARKS.md); ``dilated_conv`` on CUDA, where cuDNN runs
  dilated 3×3 convolutions well and the taps form would launch ~66 small kernels per head
  (unmeasured on a GPU: set ``taps`` explicitly to compare).
- ``train.malloc_tuning``: on the CPU only. It keeps freed activation memory mapped in *this*
  process (DESIGN.md §6); on CUDA activations live on the GPU, and host-side it would only grow
  the resident memory.
- ``train.cudnn_benchmark``: on for CUDA (fixed input sizes: cuDNN picks the fastest algorithms
  once), off when ``train.deterministic`` asks for reproducible algorithms.
- ``train.amp``: bf16 autocast on GPUs that support it (Ampere and newer; no loss scaling
  needed), else fp16 with the GradScaler; fp32 (``none``) on the CPU, where bf16 speed depends on
  the CPU's instructions — the demo configs turn it on explicitly.
- ``train.threads``: torch's intra-op threads. On the CPU, ``auto`` = the cores this process may
  use minus those other processes keep busy when the run starts (sampled from /proc/stat for a
  quarter of a second), at least 1. Measured on 2 cores (BENCHMARKS.md "Threads"): on a quiet
  machine 2 threads run the demo step 1.5× faster than 1; with two other busy processes 2 threads
  run it 1.7× *slower* than 1 (torch's threads wait on each other whenever one is descheduled).
  Processes launched together on one machine (torchrun's ``LOCAL_WORLD_SIZE``) share its cores.
  An ``OMP_NUM_THREADS`` set in the environment is the user's choice and wins over ``auto``
  (torchrun sets it to 1). A cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``: a container's
  ``--cpus``) caps the count too. On CUDA the CPU threads hardly matter and torch's default is kept.
  The thread count changes float summation order, so a resumed run keeps the count ``auto``
  resolved to when the run started (recorded in its checkpoint; the trainer applies it).
"""
from __future__ import annotations

import math
import os
import time

import torch


def _check(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"config key {key!r} is {value!r}; expected one of {', '.join(map(str, allowed))}")


def resolve_aspp_impl(value: str, device: torch.device) -> str:
    _check("model.aspp_impl", value, ("auto", "taps", "dilated_conv"))
    if value != "auto":
        return value
    return "dilated_conv" if device.type == "cuda" else "taps"


def resolve_malloc_tuning(value, device: torch.device) -> bool:
    _check("train.malloc_tuning", value, ("auto", True, False))
    return device.type == "cpu" if value == "auto" else bool(value)


def resolve_cudnn_benchmark(value, device: torch.device, deterministic: bool) -> bool:
    _check("train.cudnn_benchmark", value, ("auto", True, False))
    if value == "auto":
        return device.type == "cuda" and not deterministic
    return bool(value)


def resolve_amp(value: str, device: torch.device) -> str:
    """``none`` | ``bf16`` | ``fp16`` for ``train.amp`` (``auto`` resolved for ``device``)."""
    _check("train.amp", value, ("auto", "none", "bf16", "fp16"))
    if value == "auto":
        if device.type != "cuda":
            return "none"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if value == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs CUDA (its GradScaler); use bf16 or none on the CPU")
    return value


def _cpu_times(cores) -> tuple[float, float] | None:
    """(busy, total) jiffies of ``cores`` from /proc/stat, or None where there is none."""
    try:
        lines = open("/proc/stat").read().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu" and int(name[3:]) in cores:
            v = [float(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(v)
            busy += sum(v) - v[3] - v[4]
    return (busy, total) if total else None


def busy_cores(cores, interval: float = 0.25) -> float:
    """How many of ``cores`` other processes keep busy now (0.0 where it cannot be measured)."""
    a = _cpu_times(cores)
    time.sleep(interval)
    b = _cpu_times(cores)
    if a is None or b is None or b[1] <= a[1]:
        return 0.0
    return len(cores) * (b[0] - a[0]) / (b[1] - a[1])


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def _cgroup_cpu_limit() -> int | None:
    """The CPUs a cgroup v2 quota allows (``"200000 100000"`` -> 2, rounded up), or None where
    there is no quota (``"max ..."``) or no readable file. The affinity mask of a container
    limited by ``--cpus`` still lists all the host's cores."""
    try:
        quota, period = open(CGROUP_CPU_MAX).read().split()[:2]
        if quota == "max":
            return None
        quota, period = int(quota), int(period)
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def resolve_threads(value, device: torch.device) -> int:
    """The intra-op thread count for ``train.threads`` (``auto`` resolved for ``device``)."""
    if value != "auto":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"config key 'train.threads' is {value!r}; expected a positive integer or auto")
        return value
    if device.type == "cuda" or os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    try:
        cores = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        cores = set(range(os.cpu_count() or 1))
    world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    free = len(cores) / world - busy_cores(cores)
    # The quota caps the count, but is not lowered by the busy cores: in a container /proc/stat
    # counts the host's processes, which use the host's cores, not this cgroup's quota.
    limit = _cgroup_cpu_limit()
    if limit is not None:
        free = min(free, limit / world)
    return max(1, int(free + 0.5))


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def apply_device_settings(cfg: dict, device: torch.device) -> dict:
    """Resolve a run's device-dependent settings (``auto``) and apply the process-wide ones;
    returns what they resolved to (recorded in meta.json and checkpoints)."""
    from udaseg.engine.memory import keep_freed_memory_mapped

    tc = cfg["train"]
    out = {"aspp_impl": resolve_aspp_impl(cfg["model"]["aspp_impl"], device),
           "amp": resolve_amp(tc["amp"], device),
           "malloc_tuning": resolve_malloc_tuning(tc["malloc_tuning"], device),
           "cudnn_benchmark": resolve_cudnn_benchmark(tc["cudnn_benchmark"], device, tc["deterministic"]),
           "deterministic": tc["deterministic"],
           "threads": resolve_threads(tc["threads"], device)}
    torch.set_num_threads(out["threads"])
    if out["malloc_tuning"]:
        keep_freed_memory_mapped()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = out["cudnn_benchmark"]
    if tc["deterministic"]:
        # cuBLAS needs a fixed workspace for deterministic GEMMs (set before its first use)
        out["cublas_workspace_config"] = os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return out
