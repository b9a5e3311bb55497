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
"""
from __future__ import annotations

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


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
