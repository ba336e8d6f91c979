"""RepVGG-A0, -A1, -B0 (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021).

A stem :class:`~course.blocks.reparam.RepVGGBlock` (3 -> stem width, stride 2), four stages of
RepVGG blocks (the first of each at stride 2), global average pooling and a linear classifier.
Stage widths are ``a · (64, 128, 256)`` and ``b · 512``; depths (2, 4, 14, 1) for the A models
and (4, 6, 16, 1) for B; the stem has ``min(64, 64a)`` channels (paper, Sec. 3.4 and Table 2).

Train-time and deploy-time variants are **separate zoo names**: ``repvgg_a0`` (three branches
per block) and ``repvgg_a0_deploy`` (one 3x3 conv with bias per block, what
:func:`course.blocks.reparam.reparameterize_model` turns ``repvgg_a0`` into).

Twins: timm's ``repvgg_a0``, ``repvgg_a1``, ``repvgg_b0`` (``timm/models/byobnet.py``); the
deploy twin is timm's model after ``timm.utils.reparameterize_model``. :func:`copy_twin_weights`
maps names explicitly (see :data:`TIMM_NAMES`).
"""

from __future__ import annotations

import copy
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from course.blocks.reparam import RepVGGBlock
from course.models.zoo import Paper, register_model

#: Course name part -> timm name part, applied to every dotted component of a state-dict key.
TIMM_NAMES: Dict[str, str] = {
    "conv3x3": "conv_kxk",
    "conv1x1": "conv_1x1",
    "reparam": "reparam_conv",
    "fc": "head.fc",
}

_CITATION = (
    "X. Ding, X. Zhang, N. Ma, J. Han, G. Ding, J. Sun, \"RepVGG: Making VGG-style ConvNets Great "
    "Again\", CVPR 2021, Table 4 (params are the deploy-time model's; \"Theo FLOPs\" are "
    "multiply-adds, printed to one decimal)"
)


class RepVGG(nn.Module):
    """RepVGG: a plain stack of RepVGG blocks (Ding et al., CVPR 2021).

    Args:
        depths: blocks per stage, e.g. (2, 4, 14, 1).
        widths: channels per stage, e.g. (48, 96, 192, 1280).
        stem_width: channels of the stem block.
        num_classes: classifier outputs.
        deploy: build every block in its deploy-time form (one 3x3 conv with bias).
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        num_classes: int = 1000,
        deploy: bool = False,
    ):
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"depths ({len(depths)} stages) and widths ({len(widths)} stages) differ in length")
        self.stem = RepVGGBlock(3, stem_width, stride=2, deploy=deploy)
        stages, channels = [], stem_width
        for depth, width in zip(depths, widths):
            blocks = [RepVGGBlock(channels if i == 0 else width, width, stride=2 if i == 0 else 1, deploy=deploy) for i in range(depth)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 3, H, W) -> (B, stem, H/2, W/2)
        x = self.stages(x)  # -> (B, C_last, H/32, W/32)
        return self.fc(self.pool(x).flatten(1))  # -> (B, num_classes)


def _timm_key(key: str, renames: Dict[str, str]) -> str:
    return ".".join(renames.get(part, part) for part in key.split("."))


def copy_twin_weights(model: nn.Module, twin: nn.Module, renames: Dict[str, str] = TIMM_NAMES, key_map=None) -> None:
    """Copy the timm twin's parameters and buffers into ``model``, by explicit name mapping.

    Each course key becomes the twin's key by ``key_map(key)`` (default: renaming each dotted
    part with ``renames``). If ``model`` is deploy-time and ``twin`` still has branches, a copy of
    the twin is re-parameterized first (``timm.utils.reparameterize_model``). Raises
    ``ValueError`` naming the first key that is missing or has another shape.
    """
    key_map = key_map or (lambda k: _timm_key(k, renames))
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    deploy = not any(k.endswith("bn.running_mean") for k in ours)
    theirs = twin.state_dict()
    if deploy and any(k.endswith("bn.running_mean") for k in theirs):
        from timm.utils import reparameterize_model as timm_reparameterize

        theirs = timm_reparameterize(copy.deepcopy(twin).eval()).state_dict()
    theirs = {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked") and not k.endswith("id_tensor")}
    mapped = {}
    for key, value in ours.items():
        name = key_map(key)
        if name not in theirs:
            raise ValueError(f"course key {key!r} maps to {name!r}, which the twin does not have")
        if theirs[name].shape != value.shape:
            raise ValueError(f"shape mismatch: course {key} {tuple(value.shape)} vs twin {name} {tuple(theirs[name].shape)}")
        mapped[key] = theirs[name]
    unused = set(theirs) - {key_map(k) for k in ours}
    if unused:
        raise ValueError(f"the twin has tensors the course model lacks, e.g. {sorted(unused)[0]!r}")
    model.load_state_dict(mapped, strict=False)


# --- the zoo ---------------------------------------------------------------------------------

#: name -> (depths, widths, stem width, paper params M (deploy), paper "FLOPs" G, top-1)
CONFIGS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], int, float, float, float]] = {
    "repvgg_a0": ((2, 4, 14, 1), (48, 96, 192, 1280), 48, 8.30, 1.4, 72.41),
    "repvgg_a1": ((2, 4, 14, 1), (64, 128, 256, 1280), 64, 12.78, 2.4, 74.46),
    "repvgg_b0": ((4, 6, 16, 1), (64, 128, 256, 1280), 64, 14.33, 3.1, 75.14),
}


def _register(name: str, deploy: bool) -> None:
    depths, widths, stem, params_m, macs_g, top1 = CONFIGS[name]
    zoo_name = name + ("_deploy" if deploy else "")

    def build(num_classes: int = 1000, **kwargs) -> RepVGG:
        return RepVGG(depths, widths, stem, num_classes=num_classes, deploy=deploy, **kwargs)

    build.__name__ = zoo_name
    build.__doc__ = f"RepVGG-{name[-2:].upper()} ({'deploy' if deploy else 'train'}-time), paper configuration."
    register_model(
        zoo_name,
        twin=f"timm:{name}",
        paper=Paper(params_m, macs_g, top1, _CITATION, 224, "Theo FLOPs (B) = multiply-adds, deploy-time, 1 decimal"),
        family="RepVGG",
        chapter=7,
        twin_weights=copy_twin_weights,
        deploy=deploy,
    )(build)


for _name in CONFIGS:
    _register(_name, deploy=False)
    _register(_name, deploy=True)
