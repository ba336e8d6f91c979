"""Block diagrams drawn by code from a block's configuration: what each block computes, with the
channel counts of *this* configuration.

Each ``*_diagram`` function takes a block of :mod:`course.blocks` (its configuration is read from
its convolutions, so any instance works) or the configuration itself as keywords, and returns a
:class:`matplotlib.figure.Figure`. The drawn structure is also kept on the figure as
``fig.diagram`` (a :class:`Diagram`: stages of parallel branches of labelled boxes), which is
what the tests check (never pixels)::

    from course.blocks.conv import Fire
    fire_diagram(Fire(96, 16, 64, 64))          # or fire_diagram(N=96, S=16, E1=64, E3=64)

Available: :func:`fire_diagram` (SqueezeNet), :func:`mobilenet_v1_diagram` (MobileNetV1's block alone),
:func:`mobilenet_blocks_diagram` (MobileNetV1's
separable block beside V2's inverted residual), :func:`shufflenet_unit_diagram` (V1 or V2
unit, stride 1 or 2), :func:`uib_diagram` (MobileNetV4's Universal Inverted Bottleneck, one
variant or all four), :func:`metaformer_diagram`, :func:`repvgg_diagram` (the branches before and
the single conv after re-parameterization). matplotlib is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from torch import nn

__all__ = [
    "Branch",
    "Diagram",
    "Stage",
    "fire_diagram",
    "mobilenet_v1_diagram",
    "metaformer_diagram",
    "mobilenet_blocks_diagram",
    "repvgg_diagram",
    "shufflenet_unit_diagram",
    "uib_diagram",
]

ARROW = "→"


@dataclass(frozen=True)
class Branch:
    """A vertical path of boxes (top to bottom); ``boxes == ()`` is a plain wire (identity),
    labelled ``name``."""

    boxes: Tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class Stage:
    """Parallel branches fed by the same input and joined by ``merge`` ("add", "concat", ...);
    one branch and no merge is a plain sequence."""

    branches: Tuple[Branch, ...]
    merge: Optional[str] = None


@dataclass(frozen=True)
class Diagram:
    """A block as stages from input to output. ``title`` names the block, ``input`` and ``output``
    its tensors' shapes in the course's symbols."""

    title: str
    stages: Tuple[Stage, ...]
    input: str = ""
    output: str = ""

    @property
    def boxes(self) -> List[str]:
        """Every box label, stage by stage, branch by branch."""
        return [box for stage in self.stages for branch in stage.branches for box in branch.boxes]

    @property
    def merges(self) -> List[str]:
        return [stage.merge for stage in self.stages if stage.merge]


def _seq(*boxes: str) -> Stage:
    return Stage((Branch(tuple(boxes)),))


def _convs(block: nn.Module) -> List[nn.Conv2d]:
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)]


def _depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels


def _k(conv: nn.Conv2d) -> int:
    return conv.kernel_size[0]


def _stride(s: int) -> str:
    return f" /{s}" if s > 1 else ""


# --- drawing ------------------------------------------------------------------------------------

_BOX_W, _BOX_H, _GAP = 2.6, 0.55, 0.35


def _draw(diagrams: Sequence[Diagram], figsize: Optional[Tuple[float, float]] = None):
    """Draw diagrams side by side (one Axes each); returns the Figure with ``fig.diagram`` (the
    first) and ``fig.diagrams`` (all)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    step = _BOX_H + _GAP
    heights = [sum((max(len(b.boxes) for b in s.branches) or 1) + (1 if s.merge else 0) for s in d.stages)
               for d in diagrams]
    widths = [max(len(s.branches) for s in d.stages) for d in diagrams]
    fig = Figure(figsize=figsize or (max(3.4, 3.0 * sum(widths)), 1.2 + 0.62 * max(heights)), layout="constrained")
    axes = fig.subplots(1, len(diagrams), squeeze=False)[0]
    for ax, d, width in zip(axes, diagrams, widths):

        def box(x, y, text, face="#e3f2fd", edge="#1565c0"):
            ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0.04",
                                        facecolor=face, edgecolor=edge, lw=1))
            ax.text(x, y, text, ha="center", va="center", fontsize=7)

        def arrow(x0, y0, x1, y1):
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=8, lw=0.8,
                                         color="#555", shrinkA=0, shrinkB=0))

        ax.text(0, 0.15, d.input, ha="center", va="bottom", fontsize=7, color="#333")
        entry = 0.1  # where the next stage's input arrives from
        y = entry - _GAP - _BOX_H / 2  # centre of the next row of boxes
        for stage in d.stages:
            n = len(stage.branches)
            xs = [(i - (n - 1) / 2) * (_BOX_W + _GAP) for i in range(n)]
            rows = max(len(b.boxes) for b in stage.branches) or 1
            ends = []
            for x, branch in zip(xs, stage.branches):
                if branch.boxes:
                    arrow(0, entry, x, y + _BOX_H / 2)
                    for i, text in enumerate(branch.boxes):
                        box(x, y - i * step, text)
                        if i:
                            arrow(x, y - (i - 1) * step - _BOX_H / 2, x, y - i * step + _BOX_H / 2)
                    ends.append((x, y - (len(branch.boxes) - 1) * step - _BOX_H / 2))
                    if branch.name:
                        ax.text(x + _BOX_W / 2, y + _BOX_H / 2 + 0.04, branch.name, ha="right", fontsize=6, color="#555")
                else:  # a wire: the identity or a pass-through half
                    bottom = y - (rows - 1) * step - _BOX_H / 2
                    ax.plot([0, x, x], [entry, entry - 0.12, bottom], color="#555", lw=0.8)
                    ax.text(x + 0.06, (entry + bottom) / 2, branch.name or "identity", fontsize=7, style="italic",
                            va="center")
                    ends.append((x, bottom))
            y -= rows * step
            if stage.merge:
                box(0, y, stage.merge, face="#fff3e0", edge="#ef6c00")
                for x, end in ends:
                    arrow(x, end, 0, y + _BOX_H / 2)
                entry = y - _BOX_H / 2
                y -= step
            else:
                entry = ends[0][1]
        ax.text(0, entry - 0.08, d.output, ha="center", va="top", fontsize=7, color="#333")
        ax.set_title(d.title, fontsize=9)
        half = max(width * (_BOX_W + _GAP) / 2, _BOX_W / 2 + 0.4) + 0.3
        ax.set_xlim(-half, half)
        ax.set_ylim(entry - 0.5, 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.diagram = diagrams[0]
    fig.diagrams = list(diagrams)
    return fig


# --- the blocks -----------------------------------------------------------------------------------


def fire(N: int, S: int, E1: int, E3: int) -> Diagram:
    """SqueezeNet's Fire module (Iandola et al., 2016): squeeze 1x1 ``N -> S``, then expand 1x1
    ``S -> E1`` and 3x3 ``S -> E3`` side by side, concatenated to ``E1 + E3`` channels."""
    return Diagram(
        f"Fire module (S={S}, E1={E1}, E3={E3})",
        (_seq(f"squeeze 1x1, {N}{ARROW}{S}", "ReLU"),
         Stage((Branch((f"expand 1x1, {S}{ARROW}{E1}", "ReLU")), Branch((f"expand 3x3, {S}{ARROW}{E3}", "ReLU"))),
               merge=f"concat {ARROW} {E1 + E3}")),
        input=f"(N={N}, H, W)", output=f"(M={E1 + E3}, H, W)")


def fire_diagram(block: Optional[nn.Module] = None, **config):
    """The Fire module of ``block`` (:class:`course.blocks.conv.Fire`) or of ``N, S, E1, E3``."""
    if block is not None:
        squeeze, *expand = _convs(block)
        e1 = next(c for c in expand if _k(c) == 1)
        e3 = next(c for c in expand if _k(c) == 3)
        config = dict(N=squeeze.in_channels, S=squeeze.out_channels, E1=e1.out_channels, E3=e3.out_channels)
    return _draw([fire(**config)])


def mobilenet_v1_block(N: int, M: int, K: int = 3, stride: int = 1) -> Diagram:
    """MobileNetV1's depthwise-separable block (Howard et al., 2017): depthwise KxK, BN, ReLU, then
    pointwise 1x1 ``N -> M``, BN, ReLU."""
    return Diagram(
        "MobileNetV1: depthwise separable",
        (_seq(f"depthwise {K}x{K}{_stride(stride)}, {N}", "BN, ReLU", f"pointwise 1x1, {N}{ARROW}{M}", "BN, ReLU"),),
        input=f"(N={N}, H, W)", output=f"(M={M}, H/{stride}, W/{stride})" if stride > 1 else f"(M={M}, H, W)")


def mobilenet_v1_diagram(block: Optional[nn.Module] = None, **config):
    """MobileNetV1's depthwise-separable block alone (Chapter 2, before MobileNetV2 exists in the
    course): from ``block`` (:class:`course.blocks.conv.DepthwiseSeparableConv`) or from
    ``N, M, K, stride``."""
    if block is not None:
        dw, pw = _convs(block)[:2]
        config = dict(N=dw.in_channels, M=pw.out_channels, K=_k(dw), stride=dw.stride[0])
    return _draw([mobilenet_v1_block(**config)])


def mobilenet_v2_block(N: int, M: int, expansion: int = 6, K: int = 3, stride: int = 1, se: bool = False,
                       act: str = "ReLU6") -> Diagram:
    """MobileNetV2's inverted residual (Sandler et al., 2018): expand 1x1 ``N -> tN`` (when
    ``t > 1``), depthwise KxK, optional squeeze-excite, linear projection 1x1 ``tN -> M``; the
    input is added when ``stride == 1`` and ``N == M``."""
    mid = expansion * N
    boxes = ([f"expand 1x1, {N}{ARROW}{mid}", f"BN, {act}"] if expansion != 1 else [])
    boxes += [f"depthwise {K}x{K}{_stride(stride)}, {mid}", f"BN, {act}"]
    boxes += (["squeeze-excite"] if se else []) + [f"project 1x1, {mid}{ARROW}{M}", "BN (linear: no activation)"]
    skip = stride == 1 and N == M
    stage = (Stage((Branch(tuple(boxes)), Branch((), "identity")), merge="add") if skip
             else Stage((Branch(tuple(boxes)),)))
    return Diagram(f"MobileNetV2: inverted residual (t={expansion})", (stage,), input=f"(N={N}, H, W)",
                   output=f"(M={M}, H/{stride}, W/{stride})" if stride > 1 else f"(M={M}, H, W)")


def _v2_config(block: nn.Module) -> dict:
    convs = _convs(block)
    i = next(j for j, c in enumerate(convs) if _depthwise(c))
    dw = convs[i]
    before, after = convs[:i], convs[i + 1:]
    N = before[0].in_channels if before else dw.in_channels
    M = after[-1].out_channels
    return dict(N=N, M=M, expansion=dw.in_channels // N, K=_k(dw), stride=dw.stride[0], se=len(after) > 1)


def mobilenet_blocks_diagram(v1: Optional[nn.Module] = None, v2: Optional[nn.Module] = None,
                             v1_config: Optional[dict] = None, v2_config: Optional[dict] = None):
    """MobileNetV1's separable block beside MobileNetV2's inverted residual: from blocks
    (:class:`course.blocks.conv.DepthwiseSeparableConv`, :class:`course.blocks.bottleneck.InvertedResidual`)
    or configurations (default: 64 -> 64 channels, 3x3, stride 1, t = 6)."""
    if v1 is not None:
        dw, pw = _convs(v1)[:2]
        v1_config = dict(N=dw.in_channels, M=pw.out_channels, K=_k(dw), stride=dw.stride[0])
    if v2 is not None:
        v2_config = _v2_config(v2)
    return _draw([mobilenet_v1_block(**(v1_config or dict(N=64, M=64))),
                  mobilenet_v2_block(**(v2_config or dict(N=64, M=64)))])


def shufflenet_unit(version: str, N: int, M: int, stride: int = 1, groups: int = 3) -> Diagram:
    """A ShuffleNet unit. V1 (Zhang et al., 2018): 1x1 group conv, channel shuffle, depthwise
    3x3, 1x1 group conv; added to the input (stride 1) or concatenated with an average-pooled
    input (stride 2). V2 (Ma et al., 2018): channel split (stride 1), a branch of 1x1, depthwise
    3x3, 1x1, concatenation, channel shuffle."""
    if version == "V1":
        m = M // 4
        branch_out = M if stride == 1 else M - N
        boxes = (f"1x1 group conv g={groups}, {N}{ARROW}{m}", "BN, ReLU", f"channel shuffle g={groups}",
                 f"depthwise 3x3{_stride(stride)}, {m}", "BN", f"1x1 group conv g={groups}, {m}{ARROW}{branch_out}", "BN")
        shortcut = Branch((), "identity") if stride == 1 else Branch(("avg pool 3x3 /2",), "shortcut")
        merge = "add" if stride == 1 else f"concat {ARROW} {M}"
        stages = (Stage((Branch(boxes), shortcut), merge=merge), _seq("ReLU"))
    elif version == "V2":
        half = M // 2
        right_in = half if stride == 1 else N
        right = Branch((f"1x1, {right_in}{ARROW}{half}", "BN, ReLU", f"depthwise 3x3{_stride(stride)}, {half}", "BN",
                        f"1x1, {half}{ARROW}{half}", "BN, ReLU"))
        if stride == 1:
            stages = (_seq(f"channel split: {N // 2} | {N // 2}"),
                      Stage((Branch((), "left half"), right), merge=f"concat {ARROW} {M}"), _seq("channel shuffle g=2"))
        else:
            left = Branch((f"depthwise 3x3 /2, {N}", "BN", f"1x1, {N}{ARROW}{half}", "BN, ReLU"))
            stages = (Stage((left, right), merge=f"concat {ARROW} {M}"), _seq("channel shuffle g=2"))
    else:
        raise ValueError(f"version={version!r} must be 'V1' or 'V2'")
    out = f"(M={M}, H/2, W/2)" if stride == 2 else f"(M={M}, H, W)"
    return Diagram(f"ShuffleNet {version} unit, stride {stride}", stages, input=f"(N={N}, H, W)", output=out)


def shufflenet_unit_diagram(block: Optional[nn.Module] = None, **config):
    """The ShuffleNet unit of ``block`` (:class:`course.blocks.shuffle.ShuffleV1Unit` or
    ``ShuffleV2Unit``) or of ``version, N, M, stride, groups``."""
    if block is not None:
        convs = _convs(block)
        stride = max(c.stride[0] for c in convs)
        if "V1" in type(block).__name__:
            reduce, _, expand = convs[:3]
            N = reduce.in_channels
            config = dict(version="V1", N=N, M=expand.out_channels + (N if stride == 2 else 0), stride=stride,
                          groups=expand.groups)
        else:
            N = convs[0].in_channels * (2 if stride == 1 else 1)
            config = dict(version="V2", N=N, M=2 * convs[-1].out_channels, stride=stride)
    return _draw([shufflenet_unit(**config)])


def uib(N: int, M: int, start_K: int = 0, mid_K: int = 3, stride: int = 1, expansion: float = 4.0) -> Diagram:
    """MobileNetV4's Universal Inverted Bottleneck (Qin et al., 2024): optional depthwise
    ``start_K`` (BN, no activation), expand 1x1 ``N -> mid`` (BN, ReLU), optional depthwise
    ``mid_K`` (BN, ReLU), linear projection 1x1 ``mid -> M``; the input is added when ``stride == 1``
    and ``N == M``. The stride sits on the middle conv when there is one, else on the start conv."""
    from course.blocks.uib import uib_variant
    from course.checks import check_uib

    mid = check_uib(N, M, start_K, mid_K, stride, expansion)
    start_stride = 1 if mid_K else stride
    boxes = [f"depthwise {start_K}x{start_K}{_stride(start_stride)}, {N}", "BN"] if start_K else []
    boxes += [f"expand 1x1, {N}{ARROW}{mid}", "BN, ReLU"]
    boxes += [f"depthwise {mid_K}x{mid_K}{_stride(stride)}, {mid}", "BN, ReLU"] if mid_K else []
    boxes += [f"project 1x1, {mid}{ARROW}{M}", "BN (linear)"]
    skip = stride == 1 and N == M
    stage = (Stage((Branch(tuple(boxes)), Branch((), "identity")), merge="add") if skip
             else Stage((Branch(tuple(boxes)),)))
    name = {"inverted_bottleneck": "inverted bottleneck", "convnext": "ConvNeXt-like", "ffn": "FFN",
            "extra_dw": "ExtraDW"}[uib_variant(start_K, mid_K)]
    return Diagram(f"UIB: {name} ({start_K}, {mid_K})", (stage,), input=f"(N={N}, H, W)",
                   output=f"(M={M}, H/{stride}, W/{stride})" if stride > 1 else f"(M={M}, H, W)")


def uib_diagram(block: Optional[nn.Module] = None, variants: bool = False, **config):
    """The UIB of ``block`` (:class:`course.blocks.uib.UniversalInvertedBottleneck`) or of ``N, M,
    start_K, mid_K, stride, expansion``; with ``variants=True``, all four variants side by side
    (``N, M, K, stride, expansion``; the FFN only at stride 1): inverted bottleneck ``(0, K)``,
    ConvNeXt-like ``(K, 0)``, FFN ``(0, 0)``, ExtraDW ``(K, K)``."""
    if block is not None:
        config = dict(N=block.pw_exp.conv.in_channels, M=block.pw_proj.conv.out_channels,
                      start_K=_k(block.dw_start.conv) if hasattr(block.dw_start, "conv") else 0,
                      mid_K=_k(block.dw_mid.conv) if hasattr(block.dw_mid, "conv") else 0,
                      stride=max(c.stride[0] for c in _convs(block)),
                      expansion=block.pw_exp.conv.out_channels / block.pw_exp.conv.in_channels)
    if not variants:
        return _draw([uib(**config)])
    K = config.pop("K", 3)
    stride = config.get("stride", 1)
    kernels = [(0, K), (K, 0), (0, 0), (K, K)]
    return _draw([uib(start_K=s, mid_K=m, **config) for s, m in kernels if stride == 1 or s or m])


def metaformer_block(mixer: str, dim: int, mlp_ratio: float = 4.0) -> Diagram:
    """The MetaFormer block (Yu et al., 2022): ``x + LayerScale(TokenMixer(Norm(x)))``, then
    ``x + LayerScale(MLP(Norm(x)))``; only the token mixer changes between PoolFormer, ViT, ..."""
    hidden = int(dim * mlp_ratio)
    return Diagram(
        f"MetaFormer block, token mixer: {mixer}",
        (Stage((Branch(("norm", f"token mixer: {mixer}", "layer scale")), Branch((), "identity")), merge="add"),
         Stage((Branch(("norm", f"1x1, {dim}{ARROW}{hidden}, GELU", f"1x1, {hidden}{ARROW}{dim}", "layer scale")),
                Branch((), "identity")), merge="add")),
        input=f"(C={dim}, h, w)", output=f"(C={dim}, h, w)")


def metaformer_diagram(block: Optional[nn.Module] = None, **config):
    """The MetaFormer block of ``block`` (:class:`course.blocks.metaformer.MetaFormerBlock`; the
    mixer is named by its class) or of ``mixer, dim, mlp_ratio``."""
    if block is not None:
        norm = next(m for m in block.modules() if isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d)))
        dim = getattr(norm, "num_channels", None) or getattr(norm, "num_features", None) or norm.normalized_shape[0]
        mixer = next(m for m in block.modules() if type(m).__name__.endswith("Mixer"))
        hidden = max(c.out_channels for c in _convs(block) if _k(c) == 1 and c.in_channels == dim)
        config = dict(mixer=type(mixer).__name__.removesuffix("Mixer") or "identity", dim=dim, mlp_ratio=hidden / dim)
    return _draw([metaformer_block(**config)])


def repvgg(N: int, M: int, stride: int = 1, deploy: bool = False) -> Diagram:
    """A RepVGG block (Ding et al., 2021). Train-time: 3x3 conv + BN, 1x1 conv + BN and (when
    ``N == M`` and stride 1) a BN on the identity, added, then ReLU. Deploy-time: the three
    branches folded into one 3x3 conv with bias, then ReLU."""
    out = f"(M={M}, H/{stride}, W/{stride})" if stride > 1 else f"(M={M}, H, W)"
    if deploy:
        return Diagram("RepVGG block, deploy-time (re-parameterized)",
                       (_seq(f"3x3 conv{_stride(stride)} + bias, {N}{ARROW}{M}", "ReLU"),), input=f"(N={N}, H, W)",
                       output=out)
    branches = [Branch((f"3x3 conv{_stride(stride)}, {N}{ARROW}{M}", "BN")),
                Branch((f"1x1 conv{_stride(stride)}, {N}{ARROW}{M}", "BN"))]
    if N == M and stride == 1:
        branches.append(Branch(("BN",), "identity"))
    return Diagram("RepVGG block, train-time", (Stage(tuple(branches), merge="add"), _seq("ReLU")),
                   input=f"(N={N}, H, W)", output=out)


def repvgg_diagram(block: Optional[nn.Module] = None, **config):
    """RepVGG's branches before re-parameterization beside the single conv after it, from
    ``block`` (:class:`course.blocks.reparam.RepVGGBlock`, either form) or ``N, M, stride``."""
    if block is not None:
        conv = next(c for c in _convs(block) if _k(c) == 3)
        config = dict(N=conv.in_channels, M=conv.out_channels, stride=conv.stride[0])
    config.pop("deploy", None)
    return _draw([repvgg(**config), repvgg(**config, deploy=True)])
