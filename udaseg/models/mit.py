"""MiT (Mix Transformer, SegFormer's encoder) B0–B5, and a strict loader for its ImageNet weights.

Every default below is taken from ``lhoyer/DAFormer:mmseg/models/backbones/mix_transformer.py``
(a copy of ``NVlabs/SegFormer``'s ``mmseg/models/backbones/mix_transformer.py``; classes
``mit_b0`` … ``mit_b5``, ``MixVisionTransformer``, ``Attention``, ``Block``, ``OverlapPatchEmbed``,
``DWConv``), called "the reference" here:

- embed dims (32, 64, 160, 256) for B0, (64, 128, 320, 512) for B1–B5; depths B0/B1 (2, 2, 2, 2),
  B2 (3, 4, 6, 3), B3 (3, 4, 18, 3), B4 (3, 8, 27, 3), B5 (3, 6, 40, 3); heads (1, 2, 5, 8);
  spatial-reduction ratios (8, 4, 2, 1); MLP ratio 4; ``qkv_bias=True``; ``drop_path_rate=0.1``
  (the class default DAFormer's ``configs/_base_/models/daformer_sepaspp_mitb5.py`` keeps), spread
  linearly over all blocks; ``drop_rate = attn_drop_rate = 0`` (so no dropout modules here).
- Overlapping patch embedding: conv 7×7 stride 4 padding 3 (stage 1), 3×3 stride 2 padding 1
  (stages 2–4), then LayerNorm with PyTorch's default eps 1e-5.
- Block: ``x + drop_path(attn(norm1(x)))``, ``x + drop_path(mlp(norm2(x)))``; ``norm1``/``norm2``
  and the stage norms ``norm1..norm4`` are LayerNorm eps 1e-6; the attention's ``norm`` after the
  reduction conv ``sr`` (kernel = stride = sr ratio) uses eps 1e-5 and exists only when sr > 1.
- Efficient self-attention: ``q`` Linear(C, C), ``kv`` Linear(C, 2C) whose output rows [0:C] are
  the keys and [C:2C] the values, ``proj`` Linear(C, C); scale head_dim**-0.5.
- Mix-FFN: ``fc1`` → 3×3 depthwise conv (``mlp.dwconv.dwconv``) → GELU (exact) → ``fc2``.
- Init (``_init_weights``): Linear weight trunc-normal std 0.02 (cut at ±2, absolute, as timm's
  ``trunc_normal_``), bias 0; LayerNorm weight 1, bias 0; Conv2d weight N(0, sqrt(2 / fan_out)) with
  fan_out = k·k·out_channels / groups, bias 0.

Module and parameter names equal the original NVlabs keys (``patch_embed1.proj.weight``,
``block1.0.attn.q.weight``, ``block1.0.attn.kv.weight``, ``block1.0.attn.sr.weight``,
``block1.0.mlp.dwconv.dwconv.weight``, ``norm1.weight`` …), so ``mit_bX.pth`` and smp's
``mit_bX`` encoder files load by name (``/work/shared/TRANSFORMERS.md`` §5a, §5b).

Drop path (stochastic depth) is the identity in eval mode, so eval forwards are deterministic.
In train mode it draws from the global torch RNG (``torch.rand`` on the input's device), like
timm's ``DropPath`` that the reference uses: seed torch to reproduce a training step.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from udaseg.models.deeplabv2 import LoadReport, read_state_dict, sha256sum


@dataclass(frozen=True)
class MiTConfig:
    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4


_WIDE = (64, 128, 320, 512)
# lhoyer/DAFormer:mmseg/models/backbones/mix_transformer.py, classes mit_b0 … mit_b5
MIT_CONFIGS: dict[str, MiTConfig] = {
    "mit_b0": MiTConfig((32, 64, 160, 256), (2, 2, 2, 2)),
    "mit_b1": MiTConfig(_WIDE, (2, 2, 2, 2)),
    "mit_b2": MiTConfig(_WIDE, (3, 4, 6, 3)),
    "mit_b3": MiTConfig(_WIDE, (3, 4, 18, 3)),
    "mit_b4": MiTConfig(_WIDE, (3, 8, 27, 3)),
    "mit_b5": MiTConfig(_WIDE, (3, 6, 40, 3)),
}

BLOCK_LN_EPS = 1e-6  # norm_layer=partial(nn.LayerNorm, eps=1e-6) in mit_b0 … mit_b5
STRIDES = (4, 8, 16, 32)


class DropPath(nn.Module):
    """Stochastic depth per sample: in train mode zero a sample's residual branch with
    probability ``p`` and scale the kept ones by 1/(1−p) (timm ``drop_path``); identity in eval.
    Draws from the global torch RNG."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)).floor_()
        return x.div(keep) * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class OverlapPatchEmbed(nn.Module):
    """Conv (kernel k, stride s, padding k//2) → tokens (N, H·W, C) → LayerNorm (eps 1e-5)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a ``sr``×``sr`` strided-conv reduction of
    the tokens (sr > 1), followed by LayerNorm (eps 1e-5); plain attention when sr == 1.

    Shapes: (N, H·W, C) with the map's (H, W) → (N, H·W, C). Needs H, W ≥ sr.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
        else:  # no parameters, as in the reference (stage 4 files have no attn.sr / attn.norm)
            self.sr = self.norm = None

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, d).transpose(1, 2)
        if self.sr is not None:
            x = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            x = self.norm(x)
        kv = self.kv(x).reshape(b, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        # softmax(q kᵀ · d^-0.5) v — the reference's scale (qk_scale=None → head_dim ** -0.5)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """3×3 depthwise conv on tokens (the reference's ``DWConv``; key ``dwconv.dwconv``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        return self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """fc1 → depthwise 3×3 → GELU → fc2 (the reference's ``Mlp``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class Block(nn.Module):
    """Pre-norm transformer block: efficient self-attention and Mix-FFN, each with drop path."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float,
                 qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixVisionTransformer(nn.Module):
    """The MiT encoder: 4 stages of (overlapping patch embedding, blocks, LayerNorm).

    Args:
        config: a ``MiTConfig`` (see ``MIT_CONFIGS``); ``build_mit(name)`` is the usual entry.
        drop_path_rate: stochastic depth of the last block (0 for the first, linear in between).
        in_chans: input channels.
        arch: the config's name (``"mit_b5"``), reported by ``load_mit_pretrained``.

    ``forward(x)`` returns the 4 stage maps ``[(N, C_i, ⌈H/s_i⌉, ⌈W/s_i⌉)]`` for strides
    s = 4, 8, 16, 32 and C = ``embed_dims``. Inputs need H, W ≥ 32 (the stage-1 reduction conv has
    kernel 8 on the stride-4 map), exactly as the reference.
    """

    def __init__(self, config: MiTConfig, drop_path_rate: float = 0.1, in_chans: int = 3,
                 qkv_bias: bool = True, arch: str | None = None):
        super().__init__()
        self.config, self.arch = config, arch
        self.embed_dims, self.depths = tuple(config.embed_dims), tuple(config.depths)
        self.out_channels, self.strides = self.embed_dims, STRIDES
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths), device="cpu").tolist()
        cin, cur = in_chans, 0
        for i, (dim, depth) in enumerate(zip(self.embed_dims, self.depths), start=1):
            k, s = (7, 4) if i == 1 else (3, 2)
            self.add_module(f"patch_embed{i}", OverlapPatchEmbed(cin, dim, k, s))
            self.add_module(f"block{i}", nn.ModuleList(
                Block(dim, config.num_heads[i - 1], config.sr_ratios[i - 1], config.mlp_ratio, dpr[cur + j],
                      qkv_bias) for j in range(depth)))
            self.add_module(f"norm{i}", nn.LayerNorm(dim, eps=BLOCK_LN_EPS))
            cin, cur = dim, cur + depth
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{i}")(x)
            x = x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs


def _init_weights(m: nn.Module) -> None:
    """The reference's ``MixVisionTransformer._init_weights``."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)  # a=-2, b=2 absolute, as timm's trunc_normal_
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_mit(name: str, **kwargs) -> MixVisionTransformer:
    """``MixVisionTransformer`` of ``MIT_CONFIGS[name]`` (``"mit_b0"`` … ``"mit_b5"``)."""
    if name not in MIT_CONFIGS:
        raise ValueError(f"unknown MiT variant {name!r}; available: {', '.join(MIT_CONFIGS)}")
    return MixVisionTransformer(MIT_CONFIGS[name], arch=name, **kwargs)


# ---------------------------------------------------------------------------------------------
# Strict loading of the original NVlabs / smp weight files
# ---------------------------------------------------------------------------------------------

_BLOCK_KEY = re.compile(r"^block([1-4])\.(\d+)\.")
_MIT_KEY = re.compile(r"^(patch_embed[1-4]|block[1-4]|norm[1-4])\.")

# Key prefixes of layouts this loader does not read, with what to do instead (TRANSFORMERS.md §5).
_OTHER_LAYOUTS = (
    (("backbone.", "decode_head."), "a whole segmentor checkpoint (mmseg EncoderDecoder / udaseg "
                                    "'backbone.*'); load it with model.load_state_dict"),
    (("layers.0.0.projection",), "the mmseg 1.x layout ('layers.{i}.{0,1,2}', fused in_proj); "
                                 "convert it to the original NVlabs layout first"),
    (("segformer.encoder.", "encoder.patch_embeddings", "patch_embeddings.0."),
     "the HuggingFace transformers layout (split key/value); convert it to the original NVlabs layout first"),
    (("encoder.patch_embed1.",), "an smp segmentor state dict ('encoder.' prefix); take the 'encoder.' "
                                 "entries without the prefix"),
)


def _file_arch(sd: dict[str, torch.Tensor]) -> tuple[str, tuple[int, ...], tuple[int, ...] | None]:
    """(description, depths, embed dims or None) of a MiT state dict, read from its keys/shapes."""
    depths = [0, 0, 0, 0]
    for k in sd:
        m = _BLOCK_KEY.match(k)
        if m:
            depths[int(m.group(1)) - 1] = max(depths[int(m.group(1)) - 1], int(m.group(2)) + 1)
    dims = tuple(sd[f"patch_embed{i}.proj.weight"].shape[0] for i in range(1, 5)
                 if f"patch_embed{i}.proj.weight" in sd)
    dims = dims if len(dims) == 4 else None
    names = [n for n, c in MIT_CONFIGS.items() if c.depths == tuple(depths) and (dims is None or c.embed_dims == dims)]
    what = f"depths {tuple(depths)}" + (f", dims {dims}" if dims else "")
    desc = f"{names[0]} ({what})" if names else f"an unknown MiT variant ({what})"
    return desc, tuple(depths), dims


def _model_desc(enc: MixVisionTransformer) -> str:
    return f"{enc.arch or 'MiT'} (depths {enc.depths}, dims {enc.embed_dims})"


def load_mit_pretrained(model: nn.Module, path: str | os.PathLike, *, sha256: str | None = None) -> LoadReport:
    """Load an original NVlabs ``mit_bX.pth`` (or smp ``mit_bX``) file into a MiT encoder, strictly.

    ``model``: a ``MixVisionTransformer``, or a segmentor whose ``backbone`` is one (the report's
    keys then carry its ``backbone.`` prefix). The file is read with
    ``torch.load(weights_only=True, map_location="cpu")`` (no code runs); a ``state_dict`` /
    ``model`` wrapper is unwrapped (the reference's ``init_weights`` does the same) and a DDP
    ``module.`` prefix stripped. The ImageNet classifier ``head.*`` is dropped by name and listed
    in ``report.skipped``; smp's files, which already lack it, load the same way.

    Unlike the reference's ``load_state_dict(state_dict, False)``, every other key must match:
    a missing or unexpected key or a shape mismatch raises ValueError naming the file, the first
    mismatching key (in the model's order) and, when the file's depths/dims differ from the
    model's, the variant the file looks like ("looks like mit_b2 (depths …) but the model is mit_b5").

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: checksum mismatch, unreadable / non-state-dict file, other layout, or mismatch.
        TypeError: ``model`` has no MiT encoder.
    """
    if isinstance(model, MixVisionTransformer):
        enc, prefix = model, ""
    elif isinstance(getattr(model, "backbone", None), MixVisionTransformer):
        enc, prefix = model.backbone, "backbone."
    else:
        raise TypeError(f"load_mit_pretrained needs a MixVisionTransformer or a model whose .backbone is one, "
                        f"got {type(model).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    if sha256 is not None and sha256sum(path).lower() != sha256.lower():
        raise ValueError(f"{path}: SHA-256 mismatch: expected {sha256.lower()}, got {sha256sum(path)}")

    sd, _ = read_state_dict(path)  # weights_only; unwraps state_dict/model/segmentor; strips module.
    skipped = sorted(k for k in sd if k.startswith("head."))
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    if not any(_MIT_KEY.match(k) for k in sd):
        hint = next((what for prefixes, what in _OTHER_LAYOUTS if any(k.startswith(prefixes) for k in sd)), None)
        first = ", ".join(repr(k) for k in sorted(sd)[:3])
        raise ValueError(f"{path}: expected MiT weights in the original NVlabs layout ('patch_embed1.proj.weight', "
                         f"'block1.0.attn.q.weight', …), but "
                         + (f"it looks like {hint}" if hint else f"its keys match no MiT layout (first keys: {first})"))

    own = enc.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        file_desc, depths, dims = _file_arch(sd)
        bad = set(missing) | set(mismatched)
        first = next((k for k in own if k in bad), None) or unexpected[0]
        if first in missing:
            why = "in the model, missing from the file"
        elif first in mismatched:
            why = f"file {tuple(sd[first].shape)} vs model {tuple(own[first].shape)}"
        else:
            why = "in the file, not in the model"
        arch_note = ""
        if depths != enc.depths or (dims is not None and dims != enc.embed_dims):
            arch_note = f"looks like {file_desc} but the model is {_model_desc(enc)}; "
        raise ValueError(f"{path}: MiT weights do not fit the model: {arch_note}first mismatching key "
                         f"{first!r} ({why}); {len(missing)} missing, {len(unexpected)} unexpected, "
                         f"{len(mismatched)} shape mismatches")
    enc.load_state_dict(sd, strict=True)
    return LoadReport(str(path), "mit", loaded=[prefix + k for k in own], missing=[], unexpected=[], skipped=skipped)


__all__ = [
    "BLOCK_LN_EPS",
    "Block",
    "DWConv",
    "DropPath",
    "EfficientSelfAttention",
    "MIT_CONFIGS",
    "MiTConfig",
    "MixFFN",
    "MixVisionTransformer",
    "OverlapPatchEmbed",
    "STRIDES",
    "build_mit",
    "load_mit_pretrained",
]
