"""Attention blocks for vision: global (ViT), window (Swin) and spatial-reduction (PVT) attention.

Token layouts: a sequence is ``(B, T, C)`` with ``T = h·w`` tokens of ``C`` channels; a feature
map in channels-last form is ``(B, h, w, C)`` (Swin's layout). Every attention module takes a
``fused`` switch: ``False`` writes the two matrix products ``Q Kᵀ`` and ``A V`` explicitly (what
you read in the papers), ``True`` calls ``torch.nn.functional.scaled_dot_product_attention``
(one fused kernel, the same numbers up to rounding, less memory).

Papers:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (ViT).
    Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
    Wang et al., "Pyramid Vision Transformer", ICCV 2021 (PVT); "PVT v2", CVMJ 2022.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_window_shift, require_divides, require_positive

__all__ = [
    "Attention",
    "DWConvMlp",
    "LinearSpatialReductionAttention",
    "Mlp",
    "PatchEmbed",
    "PatchMerging",
    "PVTBlock",
    "ReducedKVAttention",
    "SpatialReductionAttention",
    "SwinBlock",
    "TransformerBlock",
    "WindowAttention",
    "attend",
    "merge_heads",
    "relative_position_index",
    "shifted_window_attention",
    "shifted_window_mask",
    "split_heads",
    "window_partition",
    "window_reverse",
    "windows_for",
]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor] = None,
           fused: bool = False) -> torch.Tensor:
    """``softmax(Q Kᵀ / sqrt(d) + bias) V`` for Q ``(..., L, d)``, K, V ``(..., S, d)`` -> ``(..., L, d)``.

    ``fused=False``: two explicit matmuls, ``L·S·d`` MACs each, and an ``(..., L, S)`` score
    tensor in memory. ``fused=True``: ``F.scaled_dot_product_attention`` (same MACs; the fused
    kernels avoid storing the scores). ``bias`` is added to the scores (relative position bias,
    shifted-window mask), broadcast over the leading dims.
    """
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (..., L, S)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v  # (..., L, d)


def split_heads(x: torch.Tensor, heads: int, parts: int = 1) -> torch.Tensor:
    """Cut ``parts`` projections side by side into heads: ``(B, T, parts·C)`` ->
    ``(parts, B, heads, T, C/heads)`` (a view: nothing is copied)."""
    B, T, _ = x.shape
    return x.reshape(B, T, parts, heads, -1).permute(2, 0, 3, 1, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """The heads side by side again: ``(B, heads, T, d)`` -> ``(B, T, heads·d)``."""
    B, heads, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, heads * d)


class Attention(nn.Module):
    """Multi-head self-attention over all ``T`` tokens (ViT), Vaswani et al. 2017.

    MACs on ``T`` tokens: ``4·T·C²`` (the Q, K, V and output projections) ``+ 2·T²·C`` (``Q Kᵀ``
    and ``A V``): quadratic in the number of tokens.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        fused: bool = False,
    ):
        super().__init__()
        require_divides("heads", heads, dim=dim)
        self.heads = heads
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        q, k, v = split_heads(self.qkv(x), self.heads, 3).unbind(0)  # each (B, heads, T, d)
        x = attend(q, k, v, fused=self.fused)  # (B, heads, T, d)
        return self.proj(merge_heads(x))


class Mlp(nn.Module):
    """The transformer's feed-forward network: ``Linear(C, hidden) -> GELU -> Linear(hidden, C)``.

    MACs on ``T`` tokens: ``2·T·C·hidden``.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
    ):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (..., C) -> (..., hidden) -> (..., C)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block (ViT): ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        fused: bool = False,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias, fused)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Cut the image into patches and embed each: ``Conv2d(N, C, kernel=patch, stride)``.

    ``stride`` defaults to ``patch`` (non-overlapping patches: ViT, Swin, PVT); PVTv2 uses
    overlapping patches (``patch=7, stride=4, padding=3``). With ``norm=True`` a LayerNorm
    follows. Output: channels-last map ``(B, h, w, C)`` with ``h = floor((H + 2p - patch)/stride) + 1``.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        patch: int,
        stride: Optional[int] = None,
        padding: int = 0,
        norm: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride or patch, padding)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, C, h, w)
        return self.norm(x.permute(0, 2, 3, 1))  # (B, h, w, C)


# --- window attention (Swin) -----------------------------------------------------------------


Window = Union[int, Tuple[int, int]]  # M, or (M_h, M_w) where a small map shrinks the window


def _pair(window: Window) -> Tuple[int, int]:
    return (window, window) if isinstance(window, int) else tuple(window)


def window_partition(x: torch.Tensor, window: Window) -> torch.Tensor:
    """Cut a map into non-overlapping ``window x window`` windows.

    Args:
        x: ``(B, h, w, C)`` with ``h`` and ``w`` multiples of ``window``.
        window: the window size ``M`` (or ``(M_h, M_w)``).

    Returns:
        ``(B · h/M · w/M, M, M, C)``: windows in row-major order, image by image.
    """
    B, h, w, C = x.shape
    Mh, Mw = _pair(window)
    if h % Mh or w % Mw:
        raise ValueError(f"window={window} must divide the map size h={h}, w={w} (pad first)")
    x = x.view(B, h // Mh, Mh, w // Mw, Mw, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, Mh, Mw, C)


def window_reverse(windows: torch.Tensor, window: Window, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B · h/M · w/M, M, M, C)`` -> ``(B, h, w, C)``."""
    Mh, Mw = _pair(window)
    C = windows.shape[-1]
    x = windows.view(-1, h // Mh, w // Mw, Mh, Mw, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, C)


def relative_position_index(window_h: int, window_w: int, table_window: int) -> torch.Tensor:
    """Index into a ``(2·table_window - 1)²``-row bias table for every pair of tokens of a window.

    Token ``i`` at ``(y_i, x_i)`` and token ``j`` at ``(y_j, x_j)`` get row
    ``(y_i - y_j + table_window - 1) · (2·table_window - 1) + (x_i - x_j + table_window - 1)``.
    A window smaller than the table's (a map smaller than ``M``) uses a subset of the rows.

    Returns:
        ``(window_h·window_w, window_h·window_w)`` long tensor.
    """
    ys, xs = torch.meshgrid(torch.arange(window_h), torch.arange(window_w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + table_window - 1
    dx = xs[:, None] - xs[None, :] + table_window - 1
    return dy * (2 * table_window - 1) + dx


def shifted_window_mask(h: int, w: int, window: Tuple[int, int], shift: Tuple[int, int],
                        device=None, dtype=torch.float32) -> torch.Tensor:
    """The attention mask of shifted windows, Liu et al. 2021, Fig. 4.

    After the cyclic shift by ``-shift``, a window at the bottom or right edge holds tokens
    from opposite sides of the image. Label the (padded) map's regions 0..8 (three bands per
    axis: ``[0, h-M)``, ``[h-M, h-shift)``, ``[h-shift, h)``); two tokens of a window may attend
    to each other only when their labels agree.

    Args:
        h, w: the padded map size (multiples of the window).
        window, shift: ``(M_h, M_w)`` and ``(s_h, s_w)``.

    Returns:
        ``(num_windows, M_h·M_w, M_h·M_w)`` with 0 where allowed and -100 where masked
        (softmax turns -100 into ~0; Swin's convention).

    Not stored as a buffer (timm stores it): the mask depends on the map size, which the
    course's blocks learn only when they run (they take any resolution). Building it costs
    ``O(h·w)`` element-wise work beside attention's ``O(h·w·M²·C)`` MACs.
    """
    labels = torch.zeros(1, h, w, 1, device=device, dtype=dtype)
    bands_h = (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None))
    bands_w = (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None))
    label = 0
    for sh in bands_h:
        for sw in bands_w:
            labels[:, sh, sw, :] = label
            label += 1
    win = window_partition(labels, window).reshape(-1, window[0] * window[1])  # (nW, M²)
    diff = win[:, None, :] - win[:, :, None]  # (nW, M², M²)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``M x M`` windows, with relative position bias (Swin W-MSA).

    Each token attends only to the ``M²`` tokens of its window, so on an ``h x w`` map the
    MACs are ``4·h·w·C² + 2·M²·h·w·C`` (Liu et al. 2021, Eq. 2): linear in ``h·w``.
    The learned bias table has ``(2M-1)²`` rows (one per relative offset) and ``heads`` columns;
    which row each pair of tokens reads (:func:`relative_position_index`) is a non-persistent
    buffer, computed once (as in timm; a smaller window, on a small map, computes its own).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int = 7,
        qkv_bias: bool = True,
        fused: bool = False,
    ):
        super().__init__()
        require_divides("heads", heads, dim=dim)
        self.heads = heads
        self.window = window
        self.fused = fused
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window, window, window),
                             persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self, window_h: int, window_w: int) -> torch.Tensor:
        """``(heads, window_h·window_w, window_h·window_w)`` bias from the table."""
        if (window_h, window_w) == (self.window, self.window):
            index = self.relative_position_index
        else:
            index = relative_position_index(window_h, window_w, self.window)
        index = index.to(self.relative_position_bias_table.device)
        area = window_h * window_w
        return self.relative_position_bias_table[index.view(-1)].view(area, area, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, window_hw: Optional[Tuple[int, int]] = None,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``(B · nW, M_h·M_w, C)`` windows; ``mask``: ``(nW, M², M²)`` or None."""
        Bw, T, C = x.shape
        window_h, window_w = window_hw or (self.window, self.window)
        q, k, v = split_heads(self.qkv(x), self.heads, 3).unbind(0)  # each (B·nW, heads, M², d)
        bias = self.position_bias(window_h, window_w).unsqueeze(0)  # (1, heads, M², M²)
        if mask is not None:
            nW = mask.shape[0]
            bias = (bias.unsqueeze(1) + mask.view(1, nW, 1, T, T))  # (1, nW, heads, M², M²)
            bias = bias.expand(Bw // nW, -1, -1, -1, -1).reshape(Bw, self.heads, T, T)
        x = attend(q, k, v, bias.to(q.dtype), fused=self.fused)  # (B·nW, heads, M², d)
        return self.proj(merge_heads(x))


def windows_for(h: int, w: int, window: int, shift: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """``((M_h, M_w), (s_h, s_w))`` used on an ``h x w`` map: on an axis where the map is no
    larger than the window, the window shrinks to the map and that axis is not shifted."""
    return (min(window, h), min(window, w)), (0 if h <= window else shift, 0 if w <= window else shift)


def shifted_window_attention(x: torch.Tensor, attn: "WindowAttention", shift: int = 0) -> torch.Tensor:
    """(Shifted-)window attention on a channels-last map ``(B, h, w, C) -> (B, h, w, C)``.

    Steps: cyclic shift by ``-shift`` (when ``shift > 0``), zero-pad bottom/right to a multiple
    of the window, cut windows, attend inside each (with the shift mask), paste back, crop,
    shift back. See :class:`SwinBlock` for the rules on small maps.
    """
    h, w, C = x.shape[1:]
    (Mh, Mw), (sh, sw) = windows_for(h, w, attn.window, shift)
    if sh or sw:
        x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))  # cyclic shift
    pad_h, pad_w = (-h) % Mh, (-w) % Mw
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, C)
    Hp, Wp = h + pad_h, w + pad_w
    mask = shifted_window_mask(Hp, Wp, (Mh, Mw), (sh, sw), x.device, x.dtype) if (sh or sw) else None
    windows = window_partition(x, (Mh, Mw)).reshape(-1, Mh * Mw, C)  # (B·nW, M², C)
    windows = attn(windows, (Mh, Mw), mask)  # (B·nW, M², C)
    x = window_reverse(windows.reshape(-1, Mh, Mw, C), (Mh, Mw), Hp, Wp)  # (B, Hp, Wp, C)
    x = x[:, :h, :w, :]  # crop the padding
    if sh or sw:
        x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))  # undo the shift
    return x


class SwinBlock(nn.Module):
    """Swin Transformer block: (shifted-)window attention, then MLP, each pre-norm and residual.

    Liu et al., ICCV 2021. ``shift = 0`` gives W-MSA, ``shift = M // 2`` gives SW-MSA (the
    map is rolled by ``-shift`` before the windows are cut, a mask keeps tokens from
    different image regions apart, and the result is rolled back).

    Maps whose size is not a multiple of ``M`` are padded at the bottom and right after the
    shift and cropped afterwards (as timm's Swin does); the shift mask is built on the padded
    map. On an axis where the map is no larger than the window, the window shrinks to the map
    and that axis is not shifted (as in Swin's last stage, a 7 x 7 map with ``M = 7``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int = 7,
        shift: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        fused: bool = False,
    ):
        super().__init__()
        check_window_shift(window, shift)
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, qkv_bias, fused)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def window_attention(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_window_attention(x, self.attn, self.shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, h, w, C) -> (B, h, w, C)
        x = x + self.window_attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Swin's downsampling: concatenate each 2 x 2 group of tokens (4C), LayerNorm, Linear to 2C.

    ``(B, h, w, C) -> (B, ceil(h/2), ceil(w/2), 2C)``; an odd size is zero-padded first.
    MACs: ``(h/2)·(w/2)·4C·2C = 2·h·w·C²``.
    """

    def __init__(
        self,
        dim: int,
        out_dim: Optional[int] = None,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim or 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x0 = x[:, 0::2, 0::2, :]  # top-left of each 2 x 2 group, (B, h/2, w/2, C)
        x1 = x[:, 1::2, 0::2, :]  # bottom-left
        x2 = x[:, 0::2, 1::2, :]  # top-right
        x3 = x[:, 1::2, 1::2, :]  # bottom-right
        x = torch.cat([x0, x1, x2, x3], dim=-1)  # (B, h/2, w/2, 4C)
        return self.reduction(self.norm(x))  # (B, h/2, w/2, 2C)


# --- spatial-reduction attention (PVT) -------------------------------------------------------


class ReducedKVAttention(nn.Module):
    """Attention whose keys and values come from fewer tokens than its queries (PVT's family).

    Queries keep all ``h·w`` tokens (so the output has the input's size); keys and values are
    computed from :meth:`reduce`'s tokens, which a subclass defines. ``q``, ``kv`` and ``proj``
    are the three linear layers (named as in PVT and timm).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool,
        fused: bool,
    ):
        super().__init__()
        require_divides("heads", heads, dim=dim)
        self.heads = heads
        self.fused = fused
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def reduce(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The tokens keys and values are computed from: ``(B, h·w, C) -> (B, S, C)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:  # (B, h·w, C) -> (B, h·w, C)
        q = split_heads(self.q(x), self.heads)[0]  # (B, heads, h·w, d)
        k, v = split_heads(self.kv(self.reduce(x, *hw)), self.heads, 2).unbind(0)  # each (B, heads, S, d)
        return self.proj(merge_heads(attend(q, k, v, fused=self.fused)))


class SpatialReductionAttention(ReducedKVAttention):
    """PVT's spatial-reduction attention (SRA), Wang et al., ICCV 2021, Eq. 3-4.

    Queries keep all ``h·w`` tokens, so the output has the input's size; keys and values come
    from a map shrunk ``R`` times per side by ``Conv2d(C, C, kernel=R, stride=R)`` then
    LayerNorm. With ``h' = floor(h/R)``, ``w' = floor(w/R)``: MACs
    ``= 2·h·w·C²`` (Q, output) ``+ h'·w'·R²·C²`` (reduction conv) ``+ 2·h'·w'·C²`` (K, V)
    ``+ 2·h·w·h'·w'·C`` (attention): the quadratic term is divided by ``R²``.
    ``sr_ratio=1`` is plain global attention (no conv, no norm), as in PVT's last stage.

    Raises:
        ValueError: at run time, when ``R`` is larger than the map (no token would be left).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        sr_ratio: int = 1,
        qkv_bias: bool = True,
        fused: bool = False,
    ):
        super().__init__(dim, heads, qkv_bias, fused)
        require_positive(sr_ratio=sr_ratio)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def reduce(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, h·w, C) -> (B, h'·w', C)``: a stride-``R`` conv, then LayerNorm (``R = 1``: ``x``)."""
        if self.sr_ratio == 1:
            return x
        if self.sr_ratio > min(h, w):
            raise ValueError(f"sr_ratio={self.sr_ratio} is larger than the {h} x {w} map: no token left for K and V")
        B, T, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)
        x = self.sr(x).flatten(2).transpose(1, 2)  # (B, h'·w', C)
        return self.norm(x)


class LinearSpatialReductionAttention(ReducedKVAttention):
    """PVTv2's linear SRA: keys and values from a map average-pooled to a fixed ``P x P``.

    Wang et al., "PVT v2", CVMJ 2022, Sec. 3.2: ``AdaptiveAvgPool2d(P)``, ``Conv2d(C, C, 1)``,
    LayerNorm, GELU, then K and V. The attention term is ``2·h·w·P²·C``: linear in ``h·w``.
    MACs ``= 2·h·w·C² + P²·C² + 2·P²·C² + 2·h·w·P²·C``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        pool_size: int = 7,
        qkv_bias: bool = True,
        fused: bool = False,
    ):
        super().__init__(dim, heads, qkv_bias, fused)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.sr = nn.Conv2d(dim, dim, kernel_size=1)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def reduce(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, h·w, C) -> (B, P², C)``: average pool, 1x1 conv, LayerNorm, GELU."""
        B, T, C = x.shape
        r = self.sr(self.pool(x.transpose(1, 2).reshape(B, C, h, w)))  # (B, C, P, P)
        return self.act(self.norm(r.flatten(2).transpose(1, 2)))  # (B, P², C)


class DWConvMlp(nn.Module):
    """PVTv2's feed-forward network: ``Linear -> depthwise 3x3 conv -> GELU -> Linear``.

    The depthwise conv on the ``(h, w)`` map gives the tokens a position signal (PVTv2 drops
    the position embeddings). MACs: ``2·h·w·C·hidden + 9·h·w·hidden``. ``relu=True`` adds a
    ReLU after the first Linear (PVTv2's linear variant).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        relu: bool = False,
    ):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, T, _ = x.shape
        x = self.relu(self.fc1(x))  # (B, h·w, hidden)
        x = x.transpose(1, 2).reshape(B, -1, hw[0], hw[1])  # (B, hidden, h, w)
        x = self.dwconv(x).flatten(2).transpose(1, 2)  # (B, h·w, hidden)
        return self.fc2(self.act(x))


class PVTBlock(nn.Module):
    """PVT block: ``x + SRA(LN(x))``, then ``x + FFN(LN(x))``.

    ``version=1``: PVT (MLP feed-forward); ``version=2``: PVTv2 (:class:`DWConvMlp`);
    ``linear=True``: PVTv2's linear SRA with ``pool_size`` (and the extra ReLU in the FFN).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        sr_ratio: int = 1,
        mlp_ratio: float = 4.0,
        version: int = 2,
        linear: bool = False,
        pool_size: int = 7,
        fused: bool = False,
    ):
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {version}")
        if linear and version == 1:
            raise ValueError("linear spatial-reduction attention is PVTv2's: use version=2")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if linear:
            self.attn = LinearSpatialReductionAttention(dim, heads, pool_size, fused=fused)
        else:
            self.attn = SpatialReductionAttention(dim, heads, sr_ratio, fused=fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = Mlp(dim, hidden) if version == 1 else DWConvMlp(dim, hidden, relu=linear)
        self.version = version

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:  # (B, h·w, C)
        x = x + self.attn(self.norm1(x), hw)
        mlp = self.mlp(self.norm2(x)) if self.version == 1 else self.mlp(self.norm2(x), hw)
        return x + mlp
