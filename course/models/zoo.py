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
        distilled: the published top-1 was trained with a teacher network (knowledge
            distillation, e.g. DeiT's recipe with a RegNetY-16GF teacher): ``True`` or
            ``False`` as the paper (or the release it cites) states; ``None`` when unknown.
            A distilled top-1 is not comparable with an undistilled one of the same network.
    """

    params_m: Optional[float]
    macs_g: float
    top1: Optional[float]
    citation: str
    input_size: int = 224
    convention: str = "FLOPs (= multiply-adds)"
    distilled: Optional[bool] = None


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
        twin_mapping: ``twin_mapping(course_model, twin_model) -> {course tensor name: twin
            tensor name}``, the documented name mapping (it lives in the model's file;
            :func:`course.models.load_twin_weights` copies through it); ``None`` when there is
            no twin.
        deploy: ``True`` for a re-parameterized (deploy-time) variant.
        input_size: the default input resolution.
    """

    name: str
    builder: Callable[..., nn.Module]
    twin: Optional[str] = None
    paper: Optional[Paper] = None
    family: str = ""
    chapter: int = 0
    twin_mapping: Optional[Callable[[nn.Module, nn.Module], Dict[str, str]]] = None
    deploy: bool = False
    input_size: int = 224


#: name -> entry; filled by the model files when the package loads them.
ZOO: Dict[str, ZooEntry] = {}


def register_train_and_deploy(name: str, build: Callable[..., nn.Module], title: str, **fields) -> None:
    """Register a re-parameterizable model twice: ``name`` (train-time branches) and
    ``name + "_deploy"`` (one conv per block; ``deploy=True`` in its entry).

    ``build(num_classes=..., deploy=..., **kwargs)`` builds either form; ``title`` names the
    model in the builders' docstrings (``"RepVGG-A0"``); ``fields`` are the other
    :class:`ZooEntry` fields, the same for both (the twin of the deploy entry is the twin
    re-parameterized, see :func:`course.models.twins.create_twin`).
    """
    for deploy in (False, True):
        zoo_name = name + ("_deploy" if deploy else "")
        builder = _builder(build, deploy)
        builder.__name__ = zoo_name
        builder.__doc__ = f"{title} ({'deploy' if deploy else 'train'}-time), paper configuration."
        register_model(zoo_name, deploy=deploy, **fields)(builder)


def _builder(build: Callable[..., nn.Module], deploy: bool) -> Callable[..., nn.Module]:
    def builder(num_classes: int = 1000, **kwargs) -> nn.Module:
        return build(num_classes=num_classes, deploy=deploy, **kwargs)

    return builder


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
