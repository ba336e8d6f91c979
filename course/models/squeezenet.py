"""SqueezeNet 1.0 and 1.1, built from :class:`course.blocks.conv.Fire`.

Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size", arXiv:1602.07360, 2016. Version 1.0 is the paper's
Table 1; version 1.1 is from the authors' release notes (github.com/forresti/SqueezeNet,
"SqueezeNet_v1.1"): conv1 becomes 64 filters of 3x3 and the max-pools move earlier (after
conv1, fire3, fire5 instead of conv1, fire4, fire8), for 2.4x less computation at the same
accuracy.

Layer names follow the paper (``conv1``, ``maxpool1``, ``fire2``, ..., ``conv10``). The
network has no fully connected layer: ``conv10`` (1x1, 512 -> 1000 classes) then global
average pooling.

**Twins**: torchvision's ``squeezenet1_0`` and ``squeezenet1_1``. Name mapping
(:func:`twin_mapping`): the paper-named layers of ``features`` and ``classifier`` map, in
order, to torchvision's numbered ones (``features.conv1`` -> ``features.0``,
``features.fire2`` -> ``features.3``, ..., ``classifier.conv10`` -> ``classifier.1``); inside
a Fire module the names are the same (``squeeze``, ``expand1x1``, ``expand3x3``).

**Published numbers** (the ``Paper`` entries): parameters 1,248,424 for v1.0 (paper Table 1);
top-1 57.5% for v1.0 (paper Table 2). The paper prints no total MACs. The release notes give
1.72 and 0.72 "GFLOPS/image" for v1.0 and v1.1 (inputs 227x227, counting convention not
stated; the course counter finds 2 x 0.833 = 1.67 and 2 x 0.388 = 0.78 G there, 3% and 8% off,
so those numbers are not used). The MACs are torchvision's published ``_ops`` for these
networks at 224x224 (0.819 and 0.349 "GFLOPS", i.e. G multiply-adds, in torchvision's model
docs), and v1.1's parameters and top-1 are torchvision's (1,235,496; 58.178% for the weights
ported from the authors' Caffe model).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from course.blocks.conv import Fire
from course.models.zoo import Paper, register_model

__all__ = ["SqueezeNet", "squeezenet1_0", "squeezenet1_1", "twin_mapping"]


def _maxpool() -> nn.MaxPool2d:
    # 3x3, stride 2, rounding up (Caffe's pooling): 111 -> 55 -> 27 -> 13 at input 227.
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """SqueezeNet: a stem conv, Fire modules with max-pools between them, a 1x1 classifier conv.

    Shapes: ``(B, 3, H, W) -> (B, num_classes)``.

    Args:
        features: the ``conv1 ... fire9`` layers, named as in the paper.
        num_classes: ImageNet's 1000 by default.
        dropout: the dropout before ``conv10`` (paper: 50% after fire9).
    """

    def __init__(
        self,
        features: "OrderedDict[str, nn.Module]",
        num_classes: int = 1000,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.features = nn.Sequential(features)
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("dropout", nn.Dropout(p=dropout)),
                    ("conv10", nn.Conv2d(512, num_classes, kernel_size=1)),
                    ("relu10", nn.ReLU(inplace=True)),
                    ("avgpool10", nn.AdaptiveAvgPool2d(1)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.features(x)  # (B, 512, H/16, W/16) roughly: 13x13 at 224 and 227
        x = self.classifier(x)  # (B, num_classes, 1, 1)
        return torch.flatten(x, 1)  # (B, num_classes)


def _features_1_0() -> "OrderedDict[str, nn.Module]":
    """Paper Table 1: conv1 7x7/2, 96; pools after conv1, fire4, fire8."""
    return OrderedDict(
        [
            ("conv1", nn.Conv2d(3, 96, kernel_size=7, stride=2)),
            ("relu1", nn.ReLU(inplace=True)),
            ("maxpool1", _maxpool()),
            ("fire2", Fire(96, 16, 64, 64)),
            ("fire3", Fire(128, 16, 64, 64)),
            ("fire4", Fire(128, 32, 128, 128)),
            ("maxpool4", _maxpool()),
            ("fire5", Fire(256, 32, 128, 128)),
            ("fire6", Fire(256, 48, 192, 192)),
            ("fire7", Fire(384, 48, 192, 192)),
            ("fire8", Fire(384, 64, 256, 256)),
            ("maxpool8", _maxpool()),
            ("fire9", Fire(512, 64, 256, 256)),
        ]
    )


def _features_1_1() -> "OrderedDict[str, nn.Module]":
    """Release notes v1.1: conv1 3x3/2, 64; pools after conv1, fire3, fire5."""
    return OrderedDict(
        [
            ("conv1", nn.Conv2d(3, 64, kernel_size=3, stride=2)),
            ("relu1", nn.ReLU(inplace=True)),
            ("maxpool1", _maxpool()),
            ("fire2", Fire(64, 16, 64, 64)),
            ("fire3", Fire(128, 16, 64, 64)),
            ("maxpool3", _maxpool()),
            ("fire4", Fire(128, 32, 128, 128)),
            ("fire5", Fire(256, 32, 128, 128)),
            ("maxpool5", _maxpool()),
            ("fire6", Fire(256, 48, 192, 192)),
            ("fire7", Fire(384, 48, 192, 192)),
            ("fire8", Fire(384, 64, 256, 256)),
            ("fire9", Fire(512, 64, 256, 256)),
        ]
    )


def twin_mapping(model: SqueezeNet, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """``{course state-dict name: torchvision state-dict name}`` for every tensor of ``model``.

    ``features.<paper name>.<rest>`` -> ``features.<position>.<rest>`` and
    ``classifier.<paper name>.<rest>`` -> ``classifier.<position>.<rest>``, where position is
    the layer's index in its ``nn.Sequential`` (torchvision's numbering); ``<rest>`` is
    unchanged (``weight``, ``bias``, ``squeeze.weight``, ...).
    """
    index: Dict[Tuple[str, str], int] = {}
    for part in ("features", "classifier"):
        for position, name in enumerate(getattr(model, part)._modules):
            index[(part, name)] = position
    mapping = {}
    for key in model.state_dict():
        part, name, rest = key.split(".", 2)
        mapping[key] = f"{part}.{index[(part, name)]}.{rest}"
    return mapping


_CITATION = (
    "F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer, 'SqueezeNet: "
    "AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size', arXiv:1602.07360, 2016"
)
_TORCHVISION = (
    "torchvision model docs / weights metadata (SqueezeNet{v}_Weights.IMAGENET1K_V1: num_params, "
    "_ops 'GFLOPS' = multiply-adds at 224x224, acc@1)"
)


@register_model(
    "squeezenet1_0",
    twin="torchvision:squeezenet1_0",
    paper=Paper(
        params_m=1.248424,
        macs_g=0.819,
        top1=57.5,
        citation=f"{_CITATION} (Table 1: 1,248,424 parameters; Table 2: 57.5% top-1); "
        f"MACs: {_TORCHVISION.format(v='1_0')}",
        input_size=224,
        convention="torchvision 'GFLOPS' = multiply-adds (the paper prints no total)",
        distilled=False,
    ),
    family="SqueezeNet",
    chapter=2,
    twin_mapping=twin_mapping,
)
def squeezenet1_0(num_classes: int = 1000, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.0 (paper Table 1): 1.25 M parameters, 0.82 G MACs at 224x224."""
    return SqueezeNet(_features_1_0(), num_classes=num_classes, dropout=dropout)


@register_model(
    "squeezenet1_1",
    twin="torchvision:squeezenet1_1",
    paper=Paper(
        params_m=1.235496,
        macs_g=0.349,
        top1=58.178,
        citation="SqueezeNet v1.1 release notes, github.com/forresti/SqueezeNet (SqueezeNet_v1.1/README: "
        "'2.4x less computation than v1.0, without sacrificing accuracy'); numbers from "
        f"{_TORCHVISION.format(v='1_1')}; architecture: {_CITATION}",
        input_size=224,
        convention="torchvision 'GFLOPS' = multiply-adds (the release notes' 0.72 GFLOPS is at 227x227)",
        distilled=False,
    ),
    family="SqueezeNet",
    chapter=2,
    twin_mapping=twin_mapping,
)
def squeezenet1_1(num_classes: int = 1000, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.1 (release notes): 1.24 M parameters, 0.35 G MACs at 224x224."""
    return SqueezeNet(_features_1_1(), num_classes=num_classes, dropout=dropout)
