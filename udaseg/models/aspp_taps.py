"""DeepLab-V2's ASPP classifier computed tap by tap: the same function and parameters as the
sum of four dilated 3×3 convolutions, without the work those spend on padding.

Why: with 19 output channels and dilations up to 24 on a 33×65 (or 13×25) feature map, oneDNN's
dilated convolutions run at a few per cent of the CPU's peak (measured: 4 branches 2048→19 at
33×65, bf16, forward + backward 341 ms vs 41 ms here; at 91×161 2119 ms vs 250 ms). Here every
3×3 tap (dy, dx) of every branch becomes one output block of a single 1×1 convolution
``Y = x · W_tapsᵀ`` (one large GEMM, fast), and the output is the sum of the blocks shifted by
their (dy, dx) with zeros outside the map. Taps that land entirely in the padding
(|dy| ≥ H or |dx| ≥ W) contribute exactly zero and are skipped; the four centre taps share one
shift and are merged. The shifted sum is accumulated in float32.

Numerics: float32 results equal the convolutions' to summation order (~1e-6 relative). Under
bf16 autocast each tap's block is rounded to bf16 before the float32 sum, where the convolution
rounds once at the end; ``benchmarks/train_step.py --aspp`` prints both errors against a float32
reference (the taps' is the smaller: no final bf16 rounding).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def _window(h: int, w: int, dy: int, dx: int) -> tuple[slice, slice, slice, slice]:
    """Output rows/cols that read a valid input pixel at offset (dy, dx), and those inputs."""
    oy0, oy1, ox0, ox1 = max(0, -dy), h - max(0, dy), max(0, -dx), w - max(0, dx)
    return slice(oy0, oy1), slice(ox0, ox1), slice(oy0 + dy, oy1 + dy), slice(ox0 + dx, ox1 + dx)


class _ShiftSum(torch.autograd.Function):
    """out[:, :, y, x] = Σ_t y_t[:, :, y + dy_t, x + dx_t] (zero outside), y_t = channel block t."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, shifts: tuple[tuple[int, int], ...], k: int) -> torch.Tensor:
        n, _, h, w = y.shape
        # at least float32: bf16/fp16 blocks are summed without rounding in between
        out = torch.zeros(n, k, h, w, dtype=torch.promote_types(y.dtype, torch.float32), device=y.device)
        for t, (dy, dx) in enumerate(shifts):
            oy, ox, iy, ix = _window(h, w, dy, dx)
            out[:, :, oy, ox] += y[:, t * k:(t + 1) * k, iy, ix]
        cl = y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
        ctx.meta = (shifts, k, y.shape, y.dtype, torch.channels_last if cl else torch.contiguous_format)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        shifts, k, shape, dtype, fmt = ctx.meta
        h, w = shape[-2:]
        gy = torch.zeros(shape, dtype=dtype, device=grad.device).contiguous(memory_format=fmt)
        for t, (dy, dx) in enumerate(shifts):
            oy, ox, iy, ix = _window(h, w, dy, dx)
            gy[:, t * k:(t + 1) * k, iy, ix] = grad[:, :, oy, ox]
        return gy, None, None


def tap_shifts(h: int, w: int, rates: Sequence[int]) -> list[tuple[int, int, int, int, int]]:
    """(branch, i, j, dy, dx) of every 3×3 tap that reads at least one pixel of an h×w map."""
    out = []
    for b, r in enumerate(rates):
        for i in range(3):
            for j in range(3):
                dy, dx = (i - 1) * r, (j - 1) * r
                if abs(dy) < h and abs(dx) < w:  # otherwise it reads only padding: exactly zero
                    out.append((b, i, j, dy, dx))
    return out


def aspp_by_taps(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                 rates: Sequence[int]) -> torch.Tensor:
    """Σ_r conv3x3(x, weights[r], biases[r], dilation = padding = rates[r]), summed in float32
    (float64 for float64 inputs).

    weights: (K, C, 3, 3) each; x: (N, C, H, W). Returns (N, K, H, W).
    """
    taps: dict[tuple[int, int], torch.Tensor] = {}  # the four centre taps share (0, 0)
    for b, i, j, dy, dx in tap_shifts(*x.shape[-2:], rates):
        wt = weights[b][:, :, i, j]
        taps[(dy, dx)] = taps[(dy, dx)] + wt if (dy, dx) in taps else wt
    shifts = tuple(taps)
    k = weights[0].shape[0]
    w_taps = torch.cat([taps[s] for s in shifts])[:, :, None, None]  # (T·K, C, 1, 1)
    y = F.conv2d(x, w_taps)
    out = _ShiftSum.apply(y, shifts, k)
    # Σ_r b_r by chained adds, not stack(biases).sum(0): that one's backward hands every bias a view
    # of one expanded gradient, autograd keeps those views as the biases' .grad (all four sharing
    # one buffer), and a second backward in the same step then added its gradient four times
    bias = biases[0]
    for b in biases[1:]:
        bias = bias + b
    return out + bias.to(out.dtype).view(1, -1, 1, 1)
