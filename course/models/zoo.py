"""The model zoo: for each model its builder, its timm/torchvision twin and the paper's numbers.

Model files in this package register their builders with :func:`register_model`; the package
imports them all the first time the zoo is used (see ``course/models/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from torch import nn


@dataclass(frozen=True)
class Paper:
    """A model's published numbers, with where they come from.

    Attributes:
        params_m: parameters, in millions (None when the paper does not publish them).
        macs_g: multiply-accumulates per image at ``input_size``, in G (papers often print
            these as "FLOPs"; ``convention`` says what the paper wrote).
        top1: ImageNet-1k top-1 accuracy, in percent (None when not published).
        citation: authors, title, venue and year, and the table the numbers come from.
        input_size: the input resolution the numbers are for.
        convention: how the paper names its cost column, e.g. "MFLOPs (= multiply-adds)".
    """

    params_m: Optional[float]
    macs_g: float
    top1: Optional[float]
    citation: str
    input_size: int = 224
    convention: str = "FLOPs (= multiply-adds)"


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo.

    Attributes:
        name: the name for :func:`course.models.create_model`.
        builder: ``builder(**kwargs) -> nn.Module`` at the paper's configuration.
        twin: the same network in another library, ``"timm:mobilenetv2_100"`` or
            ``"torchvision:shufflenet_v2_x1_0"``; ``None`` when there is none.
        paper: the published numbers, or ``None``.
        family: e.g. "MobileNet", "ShuffleNet", "Swin".
        chapter: the chapter that builds it.
        twin_weights: ``twin_weights(course_model, twin_model)`` copies the twin's weights
            into the course model (the documented name mapping lives in the model's file);
            ``None`` when there is no twin.
        deploy: ``True`` for a re-parameterized (deploy-time) variant.
        input_size: the default input resolution.
    """

    name: str
    builder: Callable[..., nn.Module]
    twin: Optional[str] = None
    paper: Optional[Paper] = None
    family: str = ""
    chapter: int = 0
    twin_weights: Optional[Callable[[nn.Module, nn.Module], None]] = None
    deploy: bool = False
    input_size: int = 224


#: name -> entry; filled by the model files when the package loads them.
ZOO: Dict[str, ZooEntry] = {}


def register_model(name: str, **fields) -> Callable:
    """Decorator: register ``builder`` in the zoo under ``name`` (fields as in :class:`ZooEntry`).

    >>> @register_model("tiny_cnn", family="demo", chapter=1)
    ... def tiny_cnn(): ...
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in ZOO:
            raise ValueError(f"model {name!r} is registered twice")
        ZOO[name] = ZooEntry(name=name, builder=builder, **fields)
        return builder

    return decorate
