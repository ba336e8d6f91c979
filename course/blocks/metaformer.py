"""MetaFormer: one block, ``x + TokenMixer(Norm(x))`` then ``x + MLP(Norm(x))``, many token mixers.

Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan, "MetaFormer Is Actually What You Need for Vision",
CVPR 2022 (PoolFormer). Every mixer here takes and returns a ``(B, C, h, w)`` map, so any of
them drops into :class:`MetaFormerBlock`:

=================  =========================================  ====================================
mixer              what each token sees                        MACs on an ``h x w x C`` map
=================  =========================================  ====================================
attention          every token (ViT)                           ``4·hw·C² + 2·(hw)²·C``
window attention   the ``M x M`` window (Swin)                 ``4·hw·C² + 2·M²·hw·C``
SRA                all tokens, K and V pooled ``R x R`` (PVT)   ``2hwC² + hwC² + 2hwC²/R² + 2(hw)²C/R²``
pooling            its ``3 x 3`` neighbourhood (PoolFormer)    0 (``9·hw·C`` additions)
spatial MLP        every token, fixed weights (ResMLP/Mixer)   ``(hw)²·C``
shift              four neighbours, by moving channels (ShiftViT)  0
depthwise conv     its ``K x K`` neighbourhood                  ``K²·hw·C``
identity           itself                                      0
=================  =========================================  ====================================
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import nn

from course.blocks.attention import Attention, SpatialReductionAttention, WindowAttention, shifted_window_attention
from course.checks import check_window_shift
from course.mixers import MIXER_NAMES, check_mixer_name

__all__ = [
    "MIXERS",
    "AttentionMixer",
    "ConvMlp",
    "DepthwiseConvMixer",
    "IdentityMixer",
    "LayerScale",
    "MetaFormerBlock",
    "PoolingMixer",
    "ShiftMixer",
    "SpatialMLPMixer",
    "SpatialReductionMixer",
    "WindowAttentionMixer",
    "make_mixer",
]


class PoolingMixer(nn.Module):
    """PoolFormer's token mixer: ``AvgPool(3 x 3, stride 1) - x`` (Yu et al. 2022, Eq. 4).

    No parameters and no MACs. The ``- x`` cancels the block's residual, so the block adds
    only the neighbourhood average. ``count_include_pad=False``: border averages use only
    real pixels.
    """

    def __init__(
        self,
        pool_size: int = 3,
    ):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return self.pool(x) - x


class AttentionMixer(nn.Module):
    """Global multi-head self-attention over the ``h·w`` tokens of the map (ViT's mixer)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        fused: bool = False,
    ):
        super().__init__()
        self.attn = Attention(dim, heads, fused=fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x.shape
        x = self.attn(x.flatten(2).transpose(1, 2))  # (B, h·w, C)
        return x.transpose(1, 2).reshape(B, C, h, w)


class WindowAttentionMixer(nn.Module):
    """Swin's (shifted-)window attention as a token mixer (``shift=0``: W-MSA)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int = 7,
        shift: int = 0,
        fused: bool = False,
    ):
        super().__init__()
        check_window_shift(window, shift)
        self.shift = shift
        self.attn = WindowAttention(dim, heads, window, fused=fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shifted_window_attention(x.permute(0, 2, 3, 1), self.attn, self.shift)  # (B, h, w, C)
        return x.permute(0, 3, 1, 2)  # (B, C, h, w)


class SpatialReductionMixer(nn.Module):
    """PVT's spatial-reduction attention as a token mixer (K, V from an ``R x R``-pooled map)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        sr_ratio: int = 1,
        fused: bool = False,
    ):
        super().__init__()
        self.attn = SpatialReductionAttention(dim, heads, sr_ratio, fused=fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x.shape
        x = self.attn(x.flatten(2).transpose(1, 2), (h, w))  # (B, h·w, C)
        return x.transpose(1, 2).reshape(B, C, h, w)


class SpatialMLPMixer(nn.Module):
    """A linear layer across the token axis (ResMLP's cross-patch layer; MLP-Mixer's token MLP
    with one layer): every token is a fixed weighted sum of all ``h·w`` tokens.

    ``(h·w)²`` parameters (+ ``h·w`` bias) and ``(h·w)²·C`` MACs; the map size is fixed when
    the layer is built (another size raises ``ValueError``).
    """

    def __init__(
        self,
        h: int,
        w: int,
    ):
        super().__init__()
        self.hw = (h, w)
        self.fc = nn.Linear(h * w, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x.shape
        if (h, w) != self.hw:
            raise ValueError(f"this spatial MLP was built for a {self.hw[0]} x {self.hw[1]} map, got {h} x {w}")
        return self.fc(x.reshape(B, C, h * w)).reshape(B, C, h, w)  # mixes along h·w


class ShiftMixer(nn.Module):
    """ShiftViT's mixer: move a ``ratio`` of the channels one pixel left, right, up and down each.

    Wang, Ma, Cheng, Jiang, Xu, Wei, "When Shift Operation Meets Vision Transformer", AAAI 2022
    (``ratio = 1/12``: a third of the channels move, the rest stay). Vacated pixels are zero.
    No parameters and no MACs: only memory traffic.
    """

    def __init__(
        self,
        ratio: float = 1 / 12,
    ):
        super().__init__()
        if not 0 < ratio <= 0.25:
            raise ValueError(f"ratio must be in (0, 1/4], got {ratio}")
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = int(x.shape[1] * self.ratio)  # channels per direction
        out = torch.zeros_like(x)
        out[:, 0 * g:1 * g, :, :-1] = x[:, 0 * g:1 * g, :, 1:]  # shift left
        out[:, 1 * g:2 * g, :, 1:] = x[:, 1 * g:2 * g, :, :-1]  # shift right
        out[:, 2 * g:3 * g, :-1, :] = x[:, 2 * g:3 * g, 1:, :]  # shift up
        out[:, 3 * g:4 * g, 1:, :] = x[:, 3 * g:4 * g, :-1, :]  # shift down
        out[:, 4 * g:] = x[:, 4 * g:]  # unchanged
        return out


class DepthwiseConvMixer(nn.Module):
    """A ``K x K`` depthwise convolution as the token mixer (as in ConvNeXt): ``K²·hw·C`` MACs."""

    def __init__(
        self,
        dim: int,
        kernel: int = 7,
    ):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class IdentityMixer(nn.Module):
    """No token mixing at all: the baseline the MetaFormer paper compares against."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LayerScale(nn.Module):
    """Multiply each channel by a learned scale, initialised small (``init``): ``(B, C, h, w)``."""

    def __init__(
        self,
        dim: int,
        init: float = 1e-5,
    ):
        super().__init__()
        self.scale = nn.Parameter(init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


class ConvMlp(nn.Module):
    """The channel MLP on a map: ``1x1 conv (C -> rC) -> GELU -> 1x1 conv (rC -> C)``: ``2r·hw·C²`` MACs."""

    def __init__(
        self,
        dim: int,
        hidden: int,
    ):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MetaFormerBlock(nn.Module):
    """``x + LS(TokenMixer(Norm(x)))``, then ``x + LS(MLP(Norm(x)))`` on a ``(B, C, h, w)`` map.

    Yu et al., CVPR 2022, Fig. 1: the norm is GroupNorm with one group (normalises over
    ``C, h, w``), as in PoolFormer; ``layer_scale`` (None: off) initialises the LayerScale.
    """

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        mlp_ratio: float = 4.0,
        layer_scale: Optional[float] = 1e-5,
    ):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = mixer
        self.layer_scale1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        x = x + self.layer_scale1(self.token_mixer(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


#: name -> ``factory(dim, heads, h, w, sr_ratio, shift) -> mixer``: the mixers one macro-architecture
#: can take, one for each of :data:`course.mixers.MIXER_NAMES` (in that order).
_FACTORIES: Dict[str, Callable[..., nn.Module]] = {
    "attention": lambda dim, heads, h, w, sr_ratio, shift: AttentionMixer(dim, heads),
    "window": lambda dim, heads, h, w, sr_ratio, shift: WindowAttentionMixer(dim, heads, 7, shift),
    "sra": lambda dim, heads, h, w, sr_ratio, shift: SpatialReductionMixer(dim, heads, sr_ratio),
    "pool": lambda dim, heads, h, w, sr_ratio, shift: PoolingMixer(3),
    "spatial_mlp": lambda dim, heads, h, w, sr_ratio, shift: SpatialMLPMixer(h, w),
    "shift": lambda dim, heads, h, w, sr_ratio, shift: ShiftMixer(1 / 12),
    "dwconv": lambda dim, heads, h, w, sr_ratio, shift: DepthwiseConvMixer(dim, 7),
    "identity": lambda dim, heads, h, w, sr_ratio, shift: IdentityMixer(),
}
MIXERS: Dict[str, Callable[..., nn.Module]] = {name: _FACTORIES[name] for name in MIXER_NAMES}


def make_mixer(name: str, dim: int, heads: int = 1, h: int = 56, w: int = 56, sr_ratio: int = 1,
               shift: int = 0) -> nn.Module:
    """Build the token mixer ``name`` (one of :data:`course.mixers.MIXER_NAMES`) for a
    ``(B, dim, h, w)`` map.

    ``heads`` is used by the attention mixers, ``h, w`` by the spatial MLP, ``sr_ratio`` by SRA,
    ``shift`` by window attention (0 or ``window // 2``).
    """
    check_mixer_name(name)
    return MIXERS[name](dim, heads, h, w, sr_ratio, shift)
