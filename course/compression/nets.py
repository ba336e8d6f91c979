"""The chapter's small classifiers for 32x32 images (every conv followed by BatchNorm, no bias).

* :class:`ResNetLite` -- a ResNet-style CNN: a 3x3 stem, stages of basic residual blocks
  (two 3x3 convs and a shortcut; the first block of each later stage halves H and W), global
  average pooling and a linear classifier. The teacher and the baseline of Chapter 9 are
  ResNetLites of two widths; its residual additions are what channel pruning must follow.
* :class:`SearchNet` -- a stem and a list of inverted-residual blocks given by a *spec*, one
  ``[K, expansion, M, stride, se]`` row per block (MnasNet's search space, simplified): the
  search space of Section 5 and the design task of Exercise 9.7.
* :class:`EarlyExitNet` -- a :class:`ResNetLite` with an extra classifier (an *exit head*) after
  one stage: confident images stop there.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from course.blocks.bottleneck import InvertedResidual
from course.blocks.conv import ConvBNAct

__all__ = ["BasicBlock", "EarlyExitNet", "ResNetLite", "SearchNet", "check_spec"]


class BasicBlock(nn.Module):
    """ResNet's basic block: 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, plus the
    shortcut (identity, or a strided 1x1 conv + BN when the shape changes), then ReLU.
    ``(B, N, H, W) -> (B, M, H/stride, W/stride)``."""

    def __init__(self, N: int, M: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(N, M, 3, stride)
        self.conv2 = ConvBNAct(M, M, 3, act=None)
        self.shortcut = ConvBNAct(N, M, 1, stride, act=None) if stride != 1 or N != M else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:  # (B, N, H, W)
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))  # (B, M, H', W')


class ResNetLite(nn.Module):
    """A small ResNet for ``(B, 3, 32, 32)`` images: stem ``ConvBNAct(3, widths[0], 3)`` at full
    resolution, then for each stage ``i`` ``blocks[i]`` :class:`BasicBlock` s of width
    ``widths[i]``, the first of them at stride 2 (32x32 -> 16 -> 8 -> 4 for three stages), global
    average pooling, ``Linear(widths[-1], classes)``.

    Children: ``stem``, ``stages`` (an ``nn.ModuleList`` of ``nn.Sequential``), ``pool``, ``fc``.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] = (1, 1, 1), num_classes: int = 10):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths and blocks need the same non-zero length, got {list(widths)} and {list(blocks)}")
        for name, values in (("widths", widths), ("blocks", blocks)):
            if not all(isinstance(v, int) and v >= 1 for v in values):
                raise ValueError(f"{name} must be positive ints, got {list(values)}")
        self.widths, self.blocks = tuple(widths), tuple(blocks)
        self.stem = ConvBNAct(3, widths[0], 3)
        stages, N = [], widths[0]
        for i, (M, n) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(N if j == 0 else M, M, stride=2 if j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*layers))
            N = M
        self.stages = nn.ModuleList(stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(widths[-1], num_classes)

    def features(self, x: Tensor, upto: int = -1) -> Tensor:
        """The feature map after stage ``upto`` (``-1``: the last), ``(B, widths[upto], h, w)``."""
        x = self.stem(x)
        last = upto % len(self.stages)
        for stage in self.stages[: last + 1]:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, classes)
        return self.fc(self.pool(self.features(x)))


# --- the search space ---------------------------------------------------------------------------

STEM = 16  #: stem width of every SearchNet


def check_spec(spec) -> List[Tuple[int, int, int, int, int]]:
    """Validate a :class:`SearchNet` spec and return it as a list of int 5-tuples.

    A spec is a non-empty list of blocks ``[K, expansion, M, stride, se]``: depthwise kernel
    ``K`` in {3, 5, 7}, ``expansion`` in 1..6 (the block's inner width is ``expansion * N``),
    ``M`` output channels (1..256), ``stride`` 1 or 2, ``se`` 0 or 1 (squeeze-and-excitation).
    """
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f"spec must be a non-empty list of [K, expansion, M, stride, se] blocks, got {spec!r}")
    if len(spec) > 16:
        raise ValueError(f"spec: at most 16 blocks, got {len(spec)}")
    rows = []
    for i, block in enumerate(spec):
        if not isinstance(block, (list, tuple)) or len(block) != 5 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in block):
            raise ValueError(f"spec block {i}: expected five ints [K, expansion, M, stride, se], got {block!r}")
        K, e, M, stride, se = block
        if K not in (3, 5, 7):
            raise ValueError(f"spec block {i}: K must be 3, 5 or 7, got {K}")
        if not 1 <= e <= 6:
            raise ValueError(f"spec block {i}: expansion must be in 1..6, got {e}")
        if not 1 <= M <= 256:
            raise ValueError(f"spec block {i}: M must be in 1..256, got {M}")
        if stride not in (1, 2):
            raise ValueError(f"spec block {i}: stride must be 1 or 2, got {stride}")
        if se not in (0, 1):
            raise ValueError(f"spec block {i}: se must be 0 or 1, got {se}")
        rows.append((K, e, M, stride, se))
    return rows


def se_width(N: int) -> int:
    """Squeeze width of a block's SE: a quarter of the block's input channels, at least 4 (MnasNet)."""
    return max(4, N // 4)


def search_block(N: int, K: int, e: int, M: int, stride: int, se: int) -> nn.Module:
    """One searchable block: ``InvertedResidual(N, M, mid=e*N, K, stride, ReLU, R)``."""
    return InvertedResidual(N, M, e * N, K, stride, act=nn.ReLU, R=se_width(N) if se else 0)


class SearchNet(nn.Module):
    """Stem ``ConvBNAct(3, 16, 3)``, the blocks of ``spec`` (see :func:`check_spec`), global
    average pooling and ``Linear(M_last, classes)``.

    Children: ``stem``, ``blocks`` (``nn.Sequential``), ``pool``, ``fc``; ``spec`` is kept.
    """

    def __init__(self, spec, num_classes: int = 10):
        super().__init__()
        self.spec = check_spec(spec)
        self.stem = ConvBNAct(3, STEM, 3)
        layers, N = [], STEM
        for K, e, M, stride, se in self.spec:
            layers.append(search_block(N, K, e, M, stride, se))
            N = M
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(N, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, classes)
        return self.fc(self.pool(self.blocks(self.stem(x))))


# --- early exit -------------------------------------------------------------------------------


class EarlyExitNet(nn.Module):
    """A :class:`ResNetLite` with an exit head after stage ``exit_after``: a strided 3x3
    ``ConvBNAct`` to ``exit_width`` channels, global average pooling and a linear classifier.

    ``forward(x)`` returns ``(exit_logits, final_logits)`` (both heads, for training with the sum
    of their losses and for analysis). ``infer(x, threshold)`` is the dynamic inference: every
    image goes through the ``front`` (stem and stages up to ``exit_after``) and the exit head;
    those whose top softmax probability is at least ``threshold`` stop there, the others go on
    through the ``back`` (remaining stages and the final classifier).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] = (1, 1, 1),
                 exit_after: int = 0, exit_width: int = 32, num_classes: int = 10):
        super().__init__()
        self.backbone = ResNetLite(widths, blocks, num_classes)
        if not 0 <= exit_after < len(widths) - 1:
            raise ValueError(f"exit_after must be a stage index in 0..{len(widths) - 2}, got {exit_after}")
        if not isinstance(exit_width, int) or exit_width < 1:
            raise ValueError(f"exit_width must be a positive int, got {exit_width!r}")
        self.exit_after = exit_after
        self.exit_head = nn.Sequential(ConvBNAct(widths[exit_after], exit_width, 3, 2), nn.AdaptiveAvgPool2d(1),
                                       nn.Flatten(), nn.Linear(exit_width, num_classes))

    def front(self, x: Tensor) -> Tensor:
        return self.backbone.features(x, self.exit_after)

    def back(self, h: Tensor) -> Tensor:
        for stage in self.backbone.stages[self.exit_after + 1:]:
            h = stage(h)
        return self.backbone.fc(self.backbone.pool(h))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.front(x)
        return self.exit_head(h), self.back(h)

    @torch.no_grad()
    def infer(self, x: Tensor, threshold: float) -> Tuple[Tensor, Tensor]:
        """``(logits (B, classes), exited (B,) bool)``: the exit head's logits for the images
        that stopped early, the final head's for the others (computed only for those)."""
        h = self.front(x)
        logits = self.exit_head(h)
        exited = logits.softmax(1).amax(1) >= threshold
        if not exited.all():
            logits = logits.clone()
            logits[~exited] = self.back(h[~exited])
        return logits, exited
