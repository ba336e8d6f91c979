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
is timm's model after its ``fuse()``. :func:`twin_mapping` lists the name pairs of both.

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

import re
from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.convnorm import ConvNorm
from course.blocks.repvit import DistilledClassifier, RepViTBlock, RepViTDownsample
from course.models.twins import copy_state_by_name
from course.models.zoo import Paper, register_model

__all__ = ["CONFIGS", "RepViT", "twin_mapping"]

#: name -> (widths, depths), the authors' configurations (kernel 3, FFN ratio 2 everywhere).
CONFIGS = {
    "m0_9": ((48, 96, 192, 384), (2, 2, 14, 2)),
    "m1_0": ((56, 112, 224, 448), (2, 2, 14, 2)),
}


class Stage(nn.Module):
    """``downsample`` (or nothing) then ``blocks``."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


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
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvNorm(3, widths[0] // 2, 3, 2, act=nn.GELU, deploy=deploy))
        self.stem.add_module("conv2", ConvNorm(widths[0] // 2, widths[0], 3, 2, deploy=deploy))
        stages, channels = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            downsample = RepViTDownsample(channels, width, mlp_ratio, K, deploy) if i > 0 else nn.Identity()
            blocks = [RepViTBlock(width, mlp_ratio, K, se=j % 2 == 0, deploy=deploy) for j in range(depth)]
            stages.append(Stage(downsample, blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = DistilledClassifier(channels, num_classes, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        return self.head(x.mean((2, 3)))  # (B, num_classes)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every remaining conv-BN pair (the token mixers and heads fold themselves)."""
        for module in self.modules():
            if isinstance(module, ConvNorm):
                module.fuse()


#: Course name part -> timm name part (regular expressions, in order), train and deploy.
TIMM_RENAMES = [
    (r"\.token_mixer\.reparam\.", ".token_mixer."),  # deploy: the fused token mixer is timm's module itself
    (r"\.conv\.conv\.weight$", ".conv.c.weight"),  # the token mixer's K x K branch (train)
    (r"\.se\.reduce\.", ".se.fc1."),
    (r"\.se\.expand\.", ".se.fc2."),
    (r"^head\.fused\.", "head."),  # deploy: one linear head
    (r"\.linear\.", ".l."),
]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name. A course :class:`ConvNorm` (``conv``, ``bn``) is
    timm's ``ConvNorm`` (``c``, ``bn``); deployed, timm replaces it by its fused conv, so
    ``stem.conv1.conv.weight`` maps to ``stem.conv1.c.weight`` at train time and to
    ``stem.conv1.weight`` deployed. The rest is :data:`TIMM_RENAMES`."""
    deploy = not any(k.endswith("running_mean") for k in model.state_dict())
    mapping = {}
    for key in model.state_dict():
        name = key
        for pattern, repl in TIMM_RENAMES:
            name = re.sub(pattern, repl, name)
        if not re.search(r"token_mixer\.conv1\.", name) and not name.startswith("head"):
            if deploy:
                name = re.sub(r"\.conv\.(weight|bias)$", r".\1", name)  # ConvNorm -> its fused conv
            else:
                name = re.sub(r"\.conv\.weight$", ".c.weight", name)
        mapping[key] = name
    return mapping


def copy_twin_weights(model: nn.Module, twin: nn.Module) -> None:
    """Copy the timm twin's weights by :func:`twin_mapping`; a deploy-time ``model`` receives a
    fused copy of a train-time twin (timm's ``fuse()``)."""
    import copy

    if not any(k.endswith("running_mean") for k in model.state_dict()) and \
            any(k.endswith("running_mean") for k in twin.state_dict()):
        twin = copy.deepcopy(twin).eval().fuse()
    copy_state_by_name(model, twin, twin_mapping(model, twin))


_CITATION = (
    "A. Wang, H. Chen, Z. Lin, J. Han, G. Ding, \"RepViT: Revisiting Mobile CNN From ViT Perspective\", CVPR 2024, "
    "ImageNet-1K classification table, as repeated in the authors' README (github.com/THU-MIG/RepViT): 224x224, "
    "300 epochs, top-1 WITH distillation (RegNetY-16GF teacher); params of the re-parameterized model"
)
PAPER = {"m0_9": (5.1, 0.8, 78.7), "m1_0": (6.8, 1.1, 80.0)}


def _register(size: str, deploy: bool) -> None:
    widths, depths = CONFIGS[size]
    params_m, macs_g, top1 = PAPER[size]
    name = f"repvit_{size}" + ("_deploy" if deploy else "")

    def build(num_classes: int = 1000) -> RepViT:
        return RepViT(widths, depths, num_classes=num_classes, deploy=deploy)

    build.__name__ = name
    build.__doc__ = f"RepViT-{size[1:].replace('_', '.').upper()} ({'deploy' if deploy else 'train'}-time)."
    register_model(
        name,
        twin=f"timm:repvit_{size}",
        paper=Paper(params_m, macs_g, top1, _CITATION, 224,
                    "GMACs (multiply-adds), one decimal; params deploy-time; top-1 with distillation"),
        family="RepViT",
        chapter=7,
        twin_weights=copy_twin_weights,
        deploy=deploy,
    )(build)


for _size in CONFIGS:
    _register(_size, deploy=False)
    _register(_size, deploy=True)
