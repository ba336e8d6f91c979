"""course.diagrams: the drawn structure comes from the block's configuration (never pixels)."""

import pytest

from course import diagrams
from course.blocks.bottleneck import InvertedResidual
from course.blocks.conv import DepthwiseSeparableConv, Fire
from course.blocks.metaformer import MetaFormerBlock, PoolingMixer
from course.blocks.reparam import RepVGGBlock, reparameterize_model
from course.blocks.shuffle import ShuffleV1Unit, ShuffleV2Unit


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_fire_from_block_equals_from_config_and_is_drawn():
    fig = diagrams.fire_diagram(Fire(96, 16, 64, 64))
    assert fig.diagram == diagrams.fire_diagram(N=96, S=16, E1=64, E3=64).diagram
    assert fig.diagram.boxes[0] == "squeeze 1x1, 96→16"
    (squeeze, expand) = fig.diagram.stages
    assert [b.boxes[0] for b in expand.branches] == ["expand 1x1, 16→64", "expand 3x3, 16→64"]
    assert expand.merge == "concat → 128" and fig.diagram.output == "(M=128, H, W)"
    assert set(fig.diagram.boxes) | set(fig.diagram.merges) <= set(texts(fig))  # every box is drawn


@pytest.mark.parametrize("stride, N, M, skip", [(1, 24, 24, True), (2, 24, 32, False), (1, 16, 24, False)])
def test_mobilenet_v1_beside_v2_with_the_skip_only_where_shapes_allow(stride, N, M, skip):
    fig = diagrams.mobilenet_blocks_diagram(DepthwiseSeparableConv(N, M, stride=stride),
                                            InvertedResidual(N, M, 6 * N, K=5, stride=stride))
    v1, v2 = fig.diagrams
    assert v1.boxes == [f"depthwise 3x3{' /2' if stride == 2 else ''}, {N}", "BN, ReLU", f"pointwise 1x1, {N}→{M}",
                        "BN, ReLU"]
    assert v2.boxes[0] == f"expand 1x1, {N}→{6 * N}" and v2.boxes[-2] == f"project 1x1, {6 * N}→{M}"
    assert f"depthwise 5x5{' /2' if stride == 2 else ''}, {6 * N}" in v2.boxes
    assert (v2.merges == ["add"]) == skip
    assert len(fig.axes) == 2


def test_mobilenet_v2_squeeze_excite_and_no_expansion():
    d = diagrams.mobilenet_blocks_diagram(v2=InvertedResidual(16, 16, 16, K=3, R=8)).diagrams[1]
    assert "squeeze-excite" in d.boxes and not any(b.startswith("expand") for b in d.boxes)  # t = 1: no expansion


def test_shufflenet_units_from_blocks():
    v1 = diagrams.shufflenet_unit_diagram(ShuffleV1Unit(240, 480, 3, stride=2)).diagram
    assert v1.boxes[:3] == ["1x1 group conv g=3, 240→120", "BN, ReLU", "channel shuffle g=3"]
    assert "1x1 group conv g=3, 120→240" in v1.boxes and "avg pool 3x3 /2" in v1.boxes
    assert v1.merges == ["concat → 480"]
    assert diagrams.shufflenet_unit_diagram(ShuffleV1Unit(240, 240, 3)).diagram.merges == ["add"]
    v2 = diagrams.shufflenet_unit_diagram(ShuffleV2Unit(116, 116, 1)).diagram
    assert v2.boxes[0] == "channel split: 58 | 58" and v2.boxes[-1] == "channel shuffle g=2"
    assert v2 == diagrams.shufflenet_unit_diagram(version="V2", N=116, M=116, stride=1).diagram
    v2s2 = diagrams.shufflenet_unit_diagram(ShuffleV2Unit(58, 116, 2)).diagram
    assert len(v2s2.stages[0].branches) == 2 and "depthwise 3x3 /2, 58" in v2s2.boxes
    with pytest.raises(ValueError, match="version"):
        diagrams.shufflenet_unit_diagram(version="V3", N=8, M=8)


def test_metaformer_block_two_residuals_and_the_mixer_named():
    d = diagrams.metaformer_diagram(MetaFormerBlock(64, PoolingMixer(3))).diagram
    assert d.merges == ["add", "add"] and "token mixer: Pooling" in d.boxes
    assert "1x1, 64→256, GELU" in d.boxes
    assert diagrams.metaformer_diagram(mixer="attention", dim=32, mlp_ratio=2).diagram.boxes[1] == "token mixer: attention"


def test_repvgg_branches_before_and_one_conv_after_reparameterization():
    block = RepVGGBlock(64, 64)
    train, deploy = diagrams.repvgg_diagram(block).diagrams
    assert [b.boxes for b in train.stages[0].branches] == [("3x3 conv, 64→64", "BN"), ("1x1 conv, 64→64", "BN"), ("BN",)]
    assert train.merges == ["add"] and deploy.boxes == ["3x3 conv + bias, 64→64", "ReLU"] and not deploy.merges
    assert diagrams.repvgg_diagram(reparameterize_model(block)).diagrams == [train, deploy]  # either form
    no_identity = diagrams.repvgg_diagram(N=32, M=64, stride=2).diagram
    assert len(no_identity.stages[0].branches) == 2 and no_identity.output == "(M=64, H/2, W/2)"
