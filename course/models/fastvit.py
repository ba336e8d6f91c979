"""FastViT-T8 and -SA12 (Vasu et al., "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", ICCV 2023), train-time and deploy-time, built from :mod:`course.blocks.repmixer`.

* **stem**: three :class:`~course.blocks.repmixer.MobileOneConv` (3x3 stride 2; 3x3 depthwise
  stride 2; 1x1), GELU;
* **stages** at strides 4, 8, 16, 32: between stages a patch embedding (a re-parameterizable
  7x7 stride-2 conv with a parallel 3x3, then a 1x1 MobileOne conv); blocks are
  :class:`~course.blocks.repmixer.RepMixerBlock` (token mixing by RepMixer) except in the last
  stage of the SA models, which has a conditional positional encoding
  (:class:`~course.blocks.repmixer.RepCPE`) and attention blocks (run with PyTorch's fused
  ``scaled_dot_product_attention``, like the twin: same numbers up to rounding as the
  explicit ``softmax(Q Kᵀ) V``, and bit-for-bit the twin's);
* **head**: a 3x3 MobileOne conv (depthwise-grouped, ``C -> 2C``, with SE), global average
  pooling, a linear classifier.

Train-time and deploy-time variants are separate zoo names (as for RepVGG and MobileOne):
``fastvit_t8`` and ``fastvit_t8_deploy``, what :func:`course.blocks.reparam.reparameterize_model`
turns the first into. As in the authors' code, the FFN's 7x7 depthwise conv keeps its BatchNorm
when deployed.

Twins: timm's ``fastvit_t8`` and ``fastvit_sa12``; the deploy twin is timm's model after
``timm.utils.reparameterize_model``. :func:`twin_mapping` lists the name pairs.

**Paper numbers** (FastViT, ICCV 2023, ImageNet-1k comparison table; 256x256, 300 epochs,
without distillation): T8 3.6M params, 0.7 GFLOPs, 75.6% top-1; SA12 10.9M, 1.9 GFLOPs, 80.6%.
The paper's "FLOPs" are multiply-adds (0.7 G = 0.685 G MACs counted here on the deployed T8;
1.937 G for SA12). Counted parameters: T8 4,026,232 at train time, 3,996,040 deployed; SA12
11,580,968 and 11,545,320: 11% and 6% above the paper's 3.6M and 10.9M; the course and timm
models agree exactly, so the gap is between the paper's table and its released code (which the
twin reproduces), not in this port. The distilled numbers (76.7% / 81.9%) and the README's
retrained ones (76.2% / 80.9%, github.com/apple/ml-fastvit) are other rows. The table itself
could not be opened in this session; the values are those SHViT (CVPR 2024, Table 2) and
iFormer (ICLR 2025, Table 3) quote.
"""

from __future__ import annotations

import copy
import re
from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.repmixer import FastViTAttentionBlock, MobileOneConv, RepCPE, RepMixerBlock, ReparamLargeKernelConv
from course.models.twins import copy_state_by_name
from course.models.zoo import Paper, register_model

__all__ = ["CONFIGS", "FastViT", "twin_mapping"]

#: name -> (depths, widths, mlp ratio, attention in the last stage)
CONFIGS = {
    "t8": ((2, 2, 4, 2), (48, 96, 192, 384), 3.0, False),
    "sa12": ((2, 2, 6, 2), (64, 128, 256, 512), 4.0, True),
}


class PatchEmbed(nn.Module):
    """Between stages: 7x7 stride-2 re-parameterizable conv (``groups = N``), then a 1x1 MobileOne conv."""

    def __init__(self, N: int, M: int, deploy: bool = False):
        super().__init__()
        self.proj = nn.Sequential(
            ReparamLargeKernelConv(N, M, 7, 2, groups=N, deploy=deploy),
            MobileOneConv(M, M, 1, deploy=deploy),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H/2, W/2)
        return self.proj(x)


class Stage(nn.Module):
    """``downsample`` (or nothing), ``pos_emb`` (or nothing), then ``blocks``."""

    def __init__(self, downsample: nn.Module, pos_emb: nn.Module, blocks: Sequence[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.pos_emb = pos_emb
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pos_emb(self.downsample(x)))


class FastViT(nn.Module):
    """FastViT: ``(B, 3, 256, 256) -> (B, num_classes)`` (any size divisible by 32).

    Args:
        depths, widths: per stage.
        mlp_ratio: FFN hidden width / C.
        attention_last: the last stage uses RepCPE + attention blocks (the SA models).
        deploy: build the deploy-time form directly.
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        mlp_ratio: float = 3.0,
        attention_last: bool = False,
        num_classes: int = 1000,
        deploy: bool = False,
    ):
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"depths ({len(depths)} stages) and widths ({len(widths)} stages) differ in length")
        C = widths[0]
        self.stem = nn.Sequential(
            MobileOneConv(3, C, 3, 2, deploy=deploy),
            MobileOneConv(C, C, 3, 2, groups=C, deploy=deploy),
            MobileOneConv(C, C, 1, deploy=deploy),
        )
        stages = []
        for i, (depth, width) in enumerate(zip(depths, widths)):
            last = i == len(depths) - 1
            downsample = PatchEmbed(C, width, deploy) if i > 0 else nn.Identity()
            if attention_last and last:
                pos_emb = RepCPE(width, 7, deploy)
                blocks = [FastViTAttentionBlock(width, mlp_ratio, fused=True) for _ in range(depth)]
            else:
                pos_emb = nn.Identity()
                blocks = [RepMixerBlock(width, mlp_ratio, deploy=deploy) for _ in range(depth)]
            stages.append(Stage(downsample, pos_emb, blocks))
            C = width
        self.stages = nn.Sequential(*stages)
        self.final_conv = MobileOneConv(C, 2 * C, 3, groups=C, se=True, deploy=deploy)
        self.head = nn.Linear(2 * C, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        x = self.final_conv(x)  # (B, 2·C4, H/32, W/32)
        return self.head(x.mean((2, 3)))  # (B, num_classes)


#: Course name part -> timm name part (regular expressions, in order).
TIMM_RENAMES = [
    (r"\.reparam\.", ".reparam_conv."),
    (r"\.se\.reduce\.", ".se.fc1."),
    (r"\.se\.expand\.", ".se.fc2."),
    (r"^head\.", "head.fc."),
]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name (:data:`TIMM_RENAMES`); otherwise the course uses timm's names."""
    mapping = {}
    for key in model.state_dict():
        name = key
        for pattern, repl in TIMM_RENAMES:
            name = re.sub(pattern, repl, name)
        mapping[key] = name
    return mapping


def copy_twin_weights(model: nn.Module, twin: nn.Module) -> None:
    """Copy the timm twin's weights by :func:`twin_mapping`; a deploy-time ``model`` receives a
    re-parameterized copy of a train-time twin (``timm.utils.reparameterize_model``)."""
    deploy = not any(".conv_kxk." in k for k in model.state_dict())
    if deploy and any(".conv_kxk." in k for k in twin.state_dict()):
        from timm.utils import reparameterize_model

        twin = reparameterize_model(copy.deepcopy(twin).eval())
    copy_state_by_name(model, twin, twin_mapping(model, twin))


_CITATION = (
    "P. K. A. Vasu, J. Gabriel, J. Zhu, O. Tuzel, A. Ranjan, \"FastViT: A Fast Hybrid Vision Transformer using "
    "Structural Reparameterization\", ICCV 2023, ImageNet-1k comparison table (256x256, 300 epochs, WITHOUT "
    "distillation; {row}; the table could not be opened in this session: the values are those SHViT, CVPR 2024, "
    "Table 2, and iFormer, ICLR 2025, Table 3, quote)"
)
PAPER = {
    "t8": (3.6, 0.7, 75.6, "FastViT-T8: 3.6M params, 0.7 GFLOPs, 75.6%"),
    "sa12": (10.9, 1.9, 80.6, "FastViT-SA12: 10.9M params, 1.9 GFLOPs, 80.6%"),
}


def _register(size: str, deploy: bool) -> None:
    depths, widths, mlp_ratio, attention_last = CONFIGS[size]
    params_m, macs_g, top1, row = PAPER[size]
    name = f"fastvit_{size}" + ("_deploy" if deploy else "")

    def build(num_classes: int = 1000) -> FastViT:
        return FastViT(depths, widths, mlp_ratio, attention_last, num_classes=num_classes, deploy=deploy)

    build.__name__ = name
    build.__doc__ = f"FastViT-{size.upper()} ({'deploy' if deploy else 'train'}-time), 256x256."
    register_model(
        name,
        twin=f"timm:fastvit_{size}",
        paper=Paper(params_m, macs_g, top1, _CITATION.format(row=row), 256,
                    "GFLOPs (= multiply-adds), one decimal; top-1 without distillation"),
        family="FastViT",
        chapter=7,
        twin_weights=copy_twin_weights,
        deploy=deploy,
        input_size=256,
    )(build)


for _size in CONFIGS:
    _register(_size, deploy=False)
    _register(_size, deploy=True)
