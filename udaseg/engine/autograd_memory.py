"""What autograd keeps for backward: bytes per distinct storage saved by a forward pass, and the
same for the inputs of chosen layers (benchmarks/saved_activations.py, tests/test_frozen_bn.py).

Every tensor autograd saves goes through ``torch.autograd.graph.saved_tensors_hooks``; storages
are keyed by their C++ address (``untyped_storage()._cdata``), which meta tensors have too, so a
view or a tensor saved by several ops counts once, on the meta device as on the CPU.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def saved_storages(model: nn.Module, x: torch.Tensor, layers=(), autocast_dtype=None) -> tuple[dict, dict]:
    """(bytes of each distinct storage saved for backward by ``model(x)``, bytes of each distinct
    storage that is an input of one of ``layers``). Inputs are kept alive until counted, so no
    later tensor reuses their storage's address."""
    saved, inputs, keep = {}, {}, []

    def pack(t):
        st = t.untyped_storage()
        saved[st._cdata] = st.nbytes()
        return t

    def pre_hook(_module, args):
        keep.append(args[0])
        st = args[0].untyped_storage()
        inputs[st._cdata] = st.nbytes()

    hooks = [m.register_forward_pre_hook(pre_hook) for m in layers]
    amp = contextlib.nullcontext() if autocast_dtype is None else torch.autocast(x.device.type, autocast_dtype)
    try:
        with amp, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)  # noqa: F841  (keeps the graph, hence the storages, alive while counting)
    finally:
        for h in hooks:
            h.remove()
    return saved, inputs
