"""FastViT-T8 and -SA12 (Vasu et al., "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", ICCV 2023), train-time and deploy-time, built from :mod:`course.blocks.repmixer`.

* **stem**: three MobileOne units (:class:`~course.blocks.reparam.MobileOneUnit` with GELU:
  3x3 stride 2; 3x3 depthwise stride 2; 1x1);
* **stages** at strides 4, 8, 16, 32: between stages a patch embedding (a re-parameterizable
  7x7 stride-2 conv with a parallel 3x3, then a 1x1 MobileOne conv); blocks are
  :class:`~course.blocks.repmixer.RepMixerBlock` (token mixing by RepMixer) except in the last
  stage of the SA models, which has a conditional positional encoding
  (:class:`~course.blocks.repmixer.RepCPE`) and attention blocks (run with PyTorch's fused
  ``scaled_dot_product_attention``, like the twin: same numbers up to rounding as the
  explicit ``softmax(Q Kᵀ) V``);
* **head**: a 3x3 MobileOne conv (depthwise-grouped, ``C -> 2C``, with SE), global average
  pooling, a linear classifier.

Train-time and deploy-time variants are separate zoo names (as for RepVGG and MobileOne):
``fastvit_t8`` and ``fastvit_t8_deploy``, what :func:`course.blocks.reparam.reparameterize_model`
turns the first into. As in the authors' code, the FFN's 7x7 depthwise conv keeps its BatchNorm
when deployed.

Twins: timm's ``fastvit_t8`` and ``fastvit_sa12``; the deploy twin is timm's model after
``timm.utils.reparameterize_model``. :func:`twin_mapping` lists the name pairs. The deployed
models compute the twin's numbers bit for bit; the train-time ones to float rounding (~1e-6 on
outputs of order one): a :class:`~course.blocks.reparam.MobileOneUnit` adds its identity branch
last, FastViT's code adds it second, and float addition is not associative.

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

import functools
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from course.blocks.reparam import MobileOneUnit
from course.blocks.repmixer import FastViTAttentionBlock, RepCPE, RepMixerBlock, ReparamLargeKernelConv
from course.blocks.stage import Stage
from course.models.twins import rename_by_patterns
from course.models.zoo import Paper, register_train_and_deploy

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
            MobileOneUnit(M, M, 1, deploy=deploy, act=nn.GELU),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H/2, W/2)
        return self.proj(x)


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
            MobileOneUnit(3, C, 3, 2, deploy=deploy, act=nn.GELU),
            MobileOneUnit(C, C, 3, 2, groups=C, deploy=deploy, act=nn.GELU),
            MobileOneUnit(C, C, 1, deploy=deploy, act=nn.GELU),
        )
        stages = []
        for i, (depth, width) in enumerate(zip(depths, widths)):
            last = i == len(depths) - 1
            downsample = PatchEmbed(C, width, deploy) if i > 0 else None
            if attention_last and last:
                pos_emb = RepCPE(width, 7, deploy)
                blocks = [FastViTAttentionBlock(width, mlp_ratio, fused=True) for _ in range(depth)]
            else:
                pos_emb = None
                blocks = [RepMixerBlock(width, mlp_ratio, deploy=deploy) for _ in range(depth)]
            stages.append(Stage(blocks, downsample, pos_emb))
            C = width
        self.stages = nn.Sequential(*stages)
        # SE of width 2C/16 (MobileOne's M // 16; timm rounds 2C/16, the same for T8's and SA12's widths)
        self.final_conv = MobileOneUnit(C, 2 * C, 3, groups=C, se=True, deploy=deploy, act=nn.GELU)
        self.head = nn.Linear(2 * C, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        x = self.final_conv(x)  # (B, 2·C4, H/32, W/32)
        return self.head(x.mean((2, 3)))  # (B, num_classes)


#: Course name part -> timm name part (regular expressions, in order), train and deploy alike.
TIMM_RENAMES = [
    (r"\.reparam\.", ".reparam_conv."),  # a re-parameterized conv
    (r"\.branches\.", ".conv_kxk."),  # MobileOneUnit's K x K branches
    (r"\.scale\.", ".conv_scale."),  # ... and its 1x1 branch
    (r"token_mixer\.norm\.", "token_mixer.norm.identity."),  # RepMixer's BatchNorm (timm: a MobileOne block, BN only)
    (r"\.(layer_scale(?:_\d)?)\.scale$", r".\1.gamma"),
    (r"\.se\.reduce\.", ".se.fc1."),
    (r"\.se\.expand\.", ".se.fc2."),
    (r"^head\.", "head.fc."),
]


def twin_mapping(model: nn.Module, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """Course tensor name -> timm tensor name (:data:`TIMM_RENAMES`); otherwise the course uses
    timm's names (train-time and deploy-time models alike: the deploy twin is timm's
    re-parameterized model, :func:`course.models.twins.create_twin`)."""
    return rename_by_patterns(model, TIMM_RENAMES)


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


for _size, (_depths, _widths, _mlp_ratio, _attention_last) in CONFIGS.items():
    _params_m, _macs_g, _top1, _row = PAPER[_size]
    register_train_and_deploy(
        f"fastvit_{_size}",
        functools.partial(FastViT, _depths, _widths, _mlp_ratio, _attention_last),
        f"FastViT-{_size.upper()} (256x256)",
        twin=f"timm:fastvit_{_size}",
        paper=Paper(_params_m, _macs_g, _top1, _CITATION.format(row=_row), 256,
                    "GFLOPs (= multiply-adds), one decimal; top-1 without distillation", distilled=False),
        family="FastViT",
        chapter=7,
        twin_mapping=twin_mapping,
        input_size=256,
    )
