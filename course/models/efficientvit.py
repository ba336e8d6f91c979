"""The two EfficientViTs: MIT's B1 (ReLU linear attention) and MSRA's M0 (cascaded group attention).

**EfficientViT-B1** (Cai et al., "EfficientViT: Lightweight Multi-Scale Attention for
High-Resolution Dense Prediction", ICCV 2023), built from :mod:`course.blocks.linear_attention`:

* **stem**: 3x3 stride-2 conv, then depthwise-separable residual blocks;
* **stages 1-2** (strides 4, 8): a stride-2 MBConv, then residual MBConvs;
* **stages 3-4** (strides 16, 32): a stride-2 MBConv (fewer BatchNorms), then
  :class:`~course.blocks.linear_attention.EfficientViTBlock`: multi-scale ReLU linear attention
  (heads of width 16) followed by an MBConv, each residual;
* **head**: 1x1 conv (BN, hard-swish), global average pooling, linear (no bias) -> LayerNorm ->
  hard-swish -> linear classifier.

Hard-swish everywhere. Twin: timm's ``efficientvit_b1`` (``timm/models/efficientvit_mit.py``);
:func:`twin_mapping` lists the name pairs.

**Paper numbers** (the authors' table of B-series ImageNet results, repeated in their
repository, ``applications/cls.md`` of github.com/mit-han-lab/efficientvit): B1 at 224x224:
9.1M params, 0.52 G MACs, 79.39% top-1, trained from scratch on ImageNet-1K (300 + 20 warm-up
epochs, supervised, no distillation). Counted here: 9,102,024 params (twin: the same), 0.519 G
MACs (-0.2%). The repository lists no B0, so the course has none. The paper's table number
could not be confirmed in this session.

**EfficientViT-M0** (Liu et al., "EfficientViT: Memory Efficient Vision Transformer with
Cascaded Group Attention", CVPR 2023; MSRA's, a different network with the same name), built
from :mod:`course.blocks.cascaded_attention`: a 16x patch embedding (four 3x3 stride-2 convs),
three stages of sandwich blocks (64, 128, 192 channels; 1, 2, 3 blocks; 4 heads of key width 16,
7x7 windows), a patch-merging downsampling between stages (with a DW + FFN pair before and
after), global average pooling and a BatchNorm + linear head. Twin: timm's ``efficientvit_m0``.
Paper numbers (the authors' model zoo, github.com/microsoft/Cream, ``EfficientViT/classification``,
the same as the paper's ImageNet table): 63.2% top-1, 79 M FLOPs (multiply-adds), 2.3M params
at 224x224, 300 epochs, no distillation teacher in the authors' recipe. Counted here: 79.2 M
MACs (+0.3%), 2,349,436 params (the twin: the same). The paper's table number could not be
confirmed in this session.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.cascaded_attention import CascadedAttentionBlock, ConvFFN, PatchMerging, ResidualBranch
from course.blocks.conv import ConvBN, ConvBNAct, DepthwiseSeparableConv
from course.blocks.linear_attention import EfficientViTBlock, EfficientViTMBConv, Residual
from course.blocks.stage import Stage
from course.models.twins import rename_by_patterns
from course.models.zoo import Paper, register_model

__all__ = ["EfficientViT", "EfficientViTM", "twin_mapping", "twin_mapping_m"]


class EfficientViT(nn.Module):
    """EfficientViT (B series): ``(B, 3, H, W) -> (B, num_classes)``.

    Args:
        widths: stem width, then the four stages' widths.
        depths: stem blocks, then blocks per stage.
        head_dim: the attention's width per head (16 for B0-B1, 32 for B2-B3).
        head_widths: widths of the head's 1x1 conv and hidden linear layer.
        expansion: MBConv expansion (4).
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        head_dim: int,
        head_widths: Sequence[int],
        expansion: float = 4.0,
        num_classes: int = 1000,
    ):
        super().__init__()
        if len(widths) != len(depths) or len(widths) != 5:
            raise ValueError("widths and depths need 5 entries each (stem and four stages)")
        act = nn.Hardswish
        self.stem = nn.Sequential()
        self.stem.add_module("in_conv", ConvBNAct(3, widths[0], 3, 2, act=act))
        for i in range(depths[0]):
            self.stem.add_module(f"res{i}", Residual(DepthwiseSeparableConv(widths[0], widths[0], act=act,
                                                                            pointwise_act=False)))
        stages, N = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths[1:], depths[1:])):
            attention = i >= 2
            blocks = [Residual(EfficientViTMBConv(N, width, stride=2, expansion=expansion, act=act,
                                                  fewer_norm=attention), shortcut=False)]
            if attention:
                blocks += [EfficientViTBlock(width, width // head_dim, expansion, act) for _ in range(depth)]
            else:
                blocks += [Residual(EfficientViTMBConv(width, width, expansion=expansion, act=act))
                           for _ in range(depth - 1)]
            stages.append(Stage(blocks))
            N = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Module()
        self.head.in_conv = ConvBNAct(N, head_widths[0], 1, act=act)
        self.head.classifier = nn.Sequential(OrderedDict(
            fc=nn.Linear(head_widths[0], head_widths[1], bias=False),
            norm=nn.LayerNorm(head_widths[1]),
            act=act(),
            out=nn.Linear(head_widths[1], num_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        x = self.head.in_conv(x).mean((2, 3))  # (B, head_widths[0])
        return self.head.classifier(x)  # (B, num_classes)


#: Course name part -> timm name part (regular expressions, in order).
TIMM_RENAMES = [
    (r"\.bn\.", ".norm."),  # timm's ConvNormAct calls its BatchNorm "norm"
    (r"\bqkv\.weight$", "qkv.conv.weight"),  # a plain conv here, timm's ConvNormAct without norm or act
    (r"\.conv_dw\.", ".depth_conv.conv."),  # the stem's DepthwiseSeparableConv (MobileNet's names)
    (r"\.bn_dw\.", ".depth_conv.norm."),
    (r"\.conv_pw\.", ".point_conv.conv."),
    (r"\.bn_pw\.", ".point_conv.norm."),
    (r"^head\.classifier\.fc\.", "head.classifier.0."),
    (r"^head\.classifier\.norm\.", "head.classifier.1."),
    (r"^head\.classifier\.out\.", "head.classifier.4."),
]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name (:data:`TIMM_RENAMES`); otherwise timm's names."""
    return rename_by_patterns(model, TIMM_RENAMES)


_CITATION = (
    "H. Cai, J. Li, M. Hu, C. Gan, S. Han, \"EfficientViT: Lightweight Multi-Scale Attention for High-Resolution "
    "Dense Prediction\", ICCV 2023, ImageNet classification results as listed in the authors' repository "
    "(github.com/mit-han-lab/efficientvit, applications/cls.md, \"EfficientViT B series\": B1 224x224, 79.390% "
    "top-1, 9.1M params, 0.52G MACs; trained from scratch, no distillation)"
)


@register_model(
    "efficientvit_b1",
    twin="timm:efficientvit_b1",
    paper=Paper(9.1, 0.52, 79.39, _CITATION, 224, "MACs (multiply-adds); top-1 without distillation",
                distilled=False),
    family="EfficientViT",
    chapter=5,
    twin_mapping=twin_mapping,
)
def efficientvit_b1(num_classes: int = 1000) -> EfficientViT:
    """EfficientViT-B1: widths (16, 32, 64, 128, 256), depths (1, 2, 3, 3, 4), heads of width 16."""
    return EfficientViT((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600), num_classes=num_classes)


# --- MSRA's EfficientViT-M -----------------------------------------------------------------------


def _dw_ffn(dim: int) -> nn.Sequential:
    """A residual 3x3 depthwise conv, then a residual FFN (before and after each patch merging)."""
    return nn.Sequential(ResidualBranch(ConvBN(dim, dim, 3, groups=dim)), ResidualBranch(ConvFFN(dim, 2 * dim)))


class EfficientViTM(nn.Module):
    """EfficientViT-M (MSRA): ``(B, 3, 224, 224) -> (B, num_classes)``.

    Args:
        widths, depths, heads: per stage.
        key_dim: Q/K width per head (16).
        window: attention window (7).
        img_size: the input size (it fixes each stage's attention window and biases).
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 192),
        depths: Sequence[int] = (1, 2, 3),
        heads: Sequence[int] = (4, 4, 4),
        key_dim: int = 16,
        window: int = 7,
        img_size: int = 224,
        num_classes: int = 1000,
    ):
        super().__init__()
        C = widths[0]
        self.patch_embed = nn.Sequential(OrderedDict(
            conv1=ConvBN(3, C // 8, 3, 2), relu1=nn.ReLU(),
            conv2=ConvBN(C // 8, C // 4, 3, 2), relu2=nn.ReLU(),
            conv3=ConvBN(C // 4, C // 2, 3, 2), relu3=nn.ReLU(),
            conv4=ConvBN(C // 2, C, 3, 2),
        ))
        resolution, stages = img_size // 16, []
        for i, (width, depth, h) in enumerate(zip(widths, depths, heads)):
            downsample = None
            if i > 0:  # DW + FFN, patch merging, DW + FFN
                downsample = nn.Sequential(OrderedDict(res1=_dw_ffn(C), patchmerge=PatchMerging(C, width),
                                                       res2=_dw_ffn(width)))
                resolution = (resolution - 1) // 2 + 1
            blocks = [CascadedAttentionBlock(width, h, key_dim, resolution, window) for _ in range(depth)]
            stages.append(Stage(blocks, downsample))
            C = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(OrderedDict(bn=nn.BatchNorm1d(C), linear=nn.Linear(C, num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.patch_embed(x))  # (B, C3, 4, 4) at 224
        return self.head(x.mean((2, 3)))  # (B, num_classes)


def twin_mapping_m(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name for EfficientViT-M: the same names (the course
    keeps the authors' ``m``, ``qkvs``, ``dws``, ``patchmerge``, ...) except the SE's convs
    (``reduce``/``expand`` here, ``fc1``/``fc2`` in timm)."""
    return {key: key.replace(".se.reduce.", ".se.fc1.").replace(".se.expand.", ".se.fc2.") for key in model.state_dict()}


_CITATION_M = (
    "X. Liu, H. Peng, N. Zheng, Y. Yang, H. Hu, Y. Yuan, \"EfficientViT: Memory Efficient Vision Transformer with "
    "Cascaded Group Attention\", CVPR 2023, ImageNet-1K results as listed in the authors' model zoo "
    "(github.com/microsoft/Cream, EfficientViT/classification/README.md: M0 224x224, 63.2% top-1, 79 M FLOPs, "
    "2.3M params; 300 epochs, no distillation teacher in the training command)"
)


@register_model(
    "efficientvit_m0",
    twin="timm:efficientvit_m0",
    paper=Paper(2.3, 0.079, 63.2, _CITATION_M, 224, "MFLOPs (= multiply-adds); top-1 without distillation",
                distilled=False),
    family="EfficientViT",
    chapter=5,
    twin_mapping=twin_mapping_m,
)
def efficientvit_m0(num_classes: int = 1000) -> EfficientViTM:
    """EfficientViT-M0: widths (64, 128, 192), depths (1, 2, 3), 4 heads of key width 16, 7x7 windows."""
    return EfficientViTM((64, 128, 192), (1, 2, 3), (4, 4, 4), num_classes=num_classes)
