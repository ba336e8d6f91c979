"""One stage of a hierarchical network: an optional downsampling, an optional positional
encoding, then a sequence of blocks at one resolution.

The 2023-2024 networks (EfficientFormerV2, RepViT, FastViT, EfficientViT) are four stages at
strides 4, 8, 16, 32 (three for EfficientViT-M); each stage is this module, with the children
``downsample``, ``pos_emb`` and ``blocks`` (timm's and the authors' names).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

__all__ = ["Stage"]


class Stage(nn.Module):
    """``blocks(pos_emb(downsample(x)))``: ``(B, N, H, W) -> (B, C, H', W')``.

    Args:
        blocks: the stage's blocks, run in order (an ``nn.Sequential``, ``blocks``).
        downsample: the module that changes resolution and width first; ``None``: none
            (an ``nn.Identity``, which holds no tensors).
        pos_emb: a positional encoding after the downsampling (FastViT's conditional one);
            ``None``: none.
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        downsample: Optional[nn.Module] = None,
        pos_emb: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.pos_emb = pos_emb if pos_emb is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pos_emb(self.downsample(x)))
