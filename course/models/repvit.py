"""RepViT-M0.9 and -M1.0 (Wang et al., "RepViT: Revisiting Mobile CNN From ViT Perspective",
CVPR 2024), train-time and deploy-time, built from :mod:`course.blocks.repvit`.

Stem: two 3x3 stride-2 convs (C/2, GELU, C); four stages of :class:`~course.blocks.repvit.RepViTBlock`
(squeeze-and-excitation on every other block, starting with the first), a
:class:`~course.blocks.repvit.RepViTDownsample` before stages 2-4; global average pooling and
a classifier + distillation head (:class:`~course.blocks.repvit.DistilledClassifier`).

Train-time and deploy-time variants are separate zoo names, as for RepVGG and MobileOne:
``repvit_m0_9`` (branches, BatchNorms, two heads) and ``repvit_m0_9_deploy`` (one conv with
bias per conv-BN pair and per token mixer, one linear head), what
:func:`course.blocks.reparam.reparameterize_model` turns ``repvit_m0_9`` into.

Twins: timm's ``repvit_m0_9`` and ``repvit_m1_0`` (``timm/models/repvit.py``); the deploy twin
is timm's model re-parameterized by timm (its ``fuse()``). :func:`twin_mapping` lists the name pairs of both.

**Paper numbers** (CVPR 2024 ImageNet-1K table; the same numbers head the authors' README,
github.com/THU-MIG/RepViT, "Classification on ImageNet-1K", whose checkpoints are named
``*_distill_300e``): M0.9 5.1M params, 0.8 G MACs, 78.7% top-1 (300 epochs; 79.1% at 450);
M1.0 6.8M, 1.1 G, 80.0% (80.3%). These top-1 values are **with distillation** (a RegNetY-16GF
teacher, DeiT's recipe); without it iFormer (ICLR 2025, Table 3) reports 78.6% for M1.0. The
parameters are the deploy-time model's: counted here 5,067,056 and 6,810,312 deployed
(5,489,328 and 7,302,796 at train time, with the distillation head and every BatchNorm). MACs
counted at train time: 0.817 G and 1.108 G (deployed 0.816 G, 1.106 G). The paper's table
number could not be confirmed in this session (its values were read from the README).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from course.blocks.reparam import fuse_conv_bn_units
from course.blocks.repvit import DistilledClassifier, RepViTBlock, RepViTDownsample, conv_bn
from course.blocks.stage import Stage
from course.models.twins import rename_by_patterns
from course.models.zoo import Paper, register_train_and_deploy

__all__ = ["CONFIGS", "RepViT", "twin_mapping"]

#: name -> (widths, depths), the authors' configurations (kernel 3, FFN ratio 2 everywhere).
CONFIGS = {
    "m0_9": ((48, 96, 192, 384), (2, 2, 14, 2)),
    "m1_0": ((56, 112, 224, 448), (2, 2, 14, 2)),
}


class RepViT(nn.Module):
    """RepViT: ``(B, 3, H, W) -> (B, num_classes)``.

    Args:
        widths, depths: per stage.
        mlp_ratio: FFN hidden width / C (2).
        K: the depthwise kernel (3).
        deploy: build the deploy-time form directly.
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        mlp_ratio: int = 2,
        K: int = 3,
        num_classes: int = 1000,
        deploy: bool = False,
    ):
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError(f"widths ({len(widths)} stages) and depths ({len(depths)} stages) differ in length")
        self.stem = nn.Sequential(OrderedDict(
            conv1=conv_bn(3, widths[0] // 2, 3, 2, deploy=deploy),
            act1=nn.GELU(),
            conv2=conv_bn(widths[0] // 2, widths[0], 3, 2, deploy=deploy),
        ))
        stages, channels = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            downsample = RepViTDownsample(channels, width, mlp_ratio, K, deploy) if i > 0 else None
            blocks = [RepViTBlock(width, mlp_ratio, K, se=j % 2 == 0, deploy=deploy) for j in range(depth)]
            stages.append(Stage(blocks, downsample))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = DistilledClassifier(channels, num_classes, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        return self.head(x.mean((2, 3)))  # (B, num_classes)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every remaining conv-BN pair into one conv (the token mixers and the head fold
        themselves first: :func:`course.blocks.reparam.reparameterize_model` reaches them before
        this model-level step)."""
        fuse_conv_bn_units(self)


#: Course name part -> timm name part (regular expressions, in order), train and deploy alike.
TIMM_RENAMES = [
    (r"\.token_mixer\.reparam\.", ".token_mixer."),  # deploy: the fused token mixer is timm's module itself
    (r"\.conv\.weight$", ".c.weight"),  # a ConvBN's conv (timm's ConvNorm calls it c); deployed, no such name
    (r"\.se\.reduce\.", ".se.fc1."),
    (r"\.se\.expand\.", ".se.fc2."),
    (r"^head\.fused\.", "head."),  # deploy: one linear head
    (r"\.linear\.", ".l."),
]


def twin_mapping(model: nn.Module, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """Course tensor name -> timm tensor name (:data:`TIMM_RENAMES`). A course
    :class:`~course.blocks.conv.ConvBN` (``conv``, ``bn``) is timm's ``ConvNorm`` (``c``, ``bn``);
    deployed, both replace it by its fused conv, so ``stem.conv1.conv.weight`` maps to
    ``stem.conv1.c.weight`` at train time and ``stem.conv1.weight`` is the same name in both
    deployed models (the deploy twin is timm's re-parameterized model)."""
    return rename_by_patterns(model, TIMM_RENAMES)


_CITATION = (
    "A. Wang, H. Chen, Z. Lin, J. Han, G. Ding, \"RepViT: Revisiting Mobile CNN From ViT Perspective\", CVPR 2024, "
    "ImageNet-1K classification table, as repeated in the authors' README (github.com/THU-MIG/RepViT): 224x224, "
    "300 epochs, top-1 WITH distillation (RegNetY-16GF teacher); params of the re-parameterized model"
)
PAPER = {"m0_9": (5.1, 0.8, 78.7), "m1_0": (6.8, 1.1, 80.0)}


for _size, (_widths, _depths) in CONFIGS.items():
    _params_m, _macs_g, _top1 = PAPER[_size]
    register_train_and_deploy(
        f"repvit_{_size}",
        functools.partial(RepViT, _widths, _depths),
        f"RepViT-{_size[1:].replace('_', '.').upper()}",
        twin=f"timm:repvit_{_size}",
        paper=Paper(_params_m, _macs_g, _top1, _CITATION, 224,
                    "GMACs (multiply-adds), one decimal; params deploy-time; top-1 with distillation", distilled=True),
        family="RepViT",
        chapter=7,
        twin_mapping=twin_mapping,
    )
