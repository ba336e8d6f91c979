"""The 2023-2024 fast architectures: EfficientFormerV2, MobileNetV4, RepViT, FastViT, EfficientViT.

What ``tests/test_twins.py`` (every zoo model against its twin after the one copier) does not
cover. Oracles: timm's blocks (outputs after copying their seeded random weights by the
documented name mapping), float64 re-computation for the course's re-parameterization, the
course counter on the twin, and the papers' published MACs (within 2%, or within half a unit of
the paper's last printed digit, as in Chapter 7's tests).
"""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from course.blocks.cascaded_attention import CascadedGroupAttention, LocalWindowAttention
from course.blocks.conv import ConvBN, ConvBNAct
from course.blocks.efficientformer import Attention4D, EfficientFormerV2Block, attention_bias_index
from course.blocks.linear_attention import LiteMLA, relu_linear_attention
from course.blocks.reparam import MobileOneUnit, fuse_conv_bn_units, reparameterize_model
from course.blocks.repmixer import RepCPE, RepMixer, ReparamLargeKernelConv
from course.blocks.repvit import DistilledClassifier, RepDWConv
from course.blocks.uib import FusedInvertedBottleneck, MobileMQA, MobileMQABlock, UniversalInvertedBottleneck
from course.cost import count
from course.models import create_model, zoo
from course.models.twins import copy_state_by_name, create_twin, rename_by_patterns

TRAIN = [
    "efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
    "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium",
    "repvit_m0_9", "repvit_m1_0", "fastvit_t8", "fastvit_sa12", "efficientvit_b1", "efficientvit_m0",
]
DEPLOY = ["repvit_m0_9", "repvit_m1_0", "fastvit_t8", "fastvit_sa12"]
MACS_GAP = {  # documented in the model files: the count does not fall within the paper's rounding
    "mobilenetv4_hybrid_medium": "the released block table (= timm) counts 1.271 G at 256 vs the paper's 1.2 G",
}


def within_paper(value, paper_value):
    """Within 2%, or within half a unit of the paper's last printed digit (it rounds)."""
    decimals = len(repr(paper_value).split(".")[1]) if "." in repr(paper_value) else 0
    return abs(value - paper_value) <= max(0.02 * paper_value, 0.5 * 10 ** -decimals)


# --- blocks against timm's blocks ---------------------------------------------------------------


@pytest.fixture
def same_as_timm(randomize, n_params):
    """``check(ours, theirs, renames, x)``: timm's block with seeded random weights (unit output
    deviation on ``x``), copied into ours through ``renames``; same parameters, outputs within 1e-5."""

    def check(ours, theirs, renames, x):
        randomize(theirs, seed=0, example=x)
        copy_state_by_name(ours, theirs, rename_by_patterns(ours, renames))
        ours.eval()
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        assert b.std() > 1e-3
        assert (a - b).abs().max().item() <= 1e-5
        assert n_params(ours) == n_params(theirs)

    return check


@pytest.mark.parametrize("start_K, mid_K, stride, layer_scale", [(5, 5, 2, None), (0, 3, 1, 1e-5), (3, 0, 1, None),
                                                                  (0, 0, 1, 1e-5), (3, 0, 2, None)])
def test_uib_equals_timm(start_K, mid_K, stride, layer_scale, same_as_timm, seeded):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import UniversalInvertedResidual

    ours = UniversalInvertedBottleneck(32, 32 if stride == 1 else 48, start_K, mid_K, stride, 3.0,
                                       layer_scale=layer_scale)
    theirs = UniversalInvertedResidual(32, 32 if stride == 1 else 48, start_K, mid_K, stride=stride, exp_ratio=3.0,
                                       layer_scale_init_value=layer_scale)
    assert ours.variant == {(5, 5): "extra_dw", (0, 3): "inverted_bottleneck", (3, 0): "convnext",
                            (0, 0): "ffn"}[(start_K, mid_K)]
    same_as_timm(ours, theirs, [(r"layer_scale\.scale$", "layer_scale.gamma")], seeded(2, 32, 15, 15, seed=1))


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_mobile_mqa_equals_timm(kv_stride, same_as_timm, seeded):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import MobileAttention

    from course.models.mobilenetv4 import TIMM_RENAMES

    ours = nn.Sequential(MobileMQABlock(64, 4, 32, 32, kv_stride))
    theirs = nn.Sequential(MobileAttention(64, 64, num_heads=4, key_dim=32, value_dim=32, use_multi_query=True,
                                           kv_stride=kv_stride, layer_scale_init_value=1e-5))
    same_as_timm(ours, theirs, TIMM_RENAMES, seeded(2, 64, 9, 9, seed=1))


def test_lite_mla_equals_timm(same_as_timm, seeded):
    pytest.importorskip("timm")
    from timm.models.efficientvit_mit import LiteMLA as TimmLiteMLA

    from course.models.efficientvit import TIMM_RENAMES

    ours, theirs = LiteMLA(64, 4), TimmLiteMLA(64, 64, dim=16, norm_layer=(None, nn.BatchNorm2d))
    same_as_timm(ours, theirs, TIMM_RENAMES, seeded(2, 64, 7, 9, seed=1))


@pytest.mark.parametrize("resolution", [7, 10, 14])
def test_window_cascaded_attention_equals_timm(resolution, same_as_timm, seeded):
    """7: one window; 14: four windows; 10: padded to 14, then cropped."""
    pytest.importorskip("timm")
    from timm.models.efficientvit_msra import LocalWindowAttention as TimmLocalWindowAttention

    ours = LocalWindowAttention(64, 4, 16, resolution, 7)
    theirs = TimmLocalWindowAttention(64, 16, 4, attn_ratio=1, resolution=resolution, window_resolution=7)
    same_as_timm(ours, theirs, [], seeded(2, 64, resolution, resolution, seed=1))


@pytest.mark.parametrize("stride", [None, 2])
def test_attention4d_equals_timm(stride, same_as_timm, seeded):
    pytest.importorskip("timm")
    from timm.models.efficientformer_v2 import Attention2d

    size = 14 if stride else 7
    ours, theirs = Attention4D(48, resolution=size, stride=stride), Attention2d(48, resolution=size, stride=stride)
    assert torch.equal(ours.bias_index, theirs.attention_bias_idxs)
    same_as_timm(ours, theirs, [], seeded(2, 48, size, size, seed=1))


def in_model(block):
    """``block`` as the token mixer of a model (``token_mixer.*`` names, as the renames expect)."""
    return nn.Sequential(OrderedDict(token_mixer=block))


def test_fastvit_units_equal_timm(same_as_timm, seeded):
    """MobileOne's unit with GELU and SE, the large-kernel conv and RepMixer, against FastViT's."""
    pytest.importorskip("timm")
    from timm.models.fastvit import MobileOneBlock, RepMixer as TimmRepMixer
    from timm.models.fastvit import ReparamLargeKernelConv as TimmLargeKernelConv

    from course.models.fastvit import TIMM_RENAMES

    pairs = [
        (MobileOneUnit(16, 32, 3, groups=16, se=True, act=nn.GELU), MobileOneBlock(16, 32, 3, group_size=1, use_se=True)),
        (MobileOneUnit(16, 16, 3, groups=16, act=None), MobileOneBlock(16, 16, 3, group_size=1, use_act=False)),
        (ReparamLargeKernelConv(16, 32, 7, 2, groups=16),
         TimmLargeKernelConv(16, 32, 7, stride=2, group_size=1, small_kernel=3, act_layer=None)),
        (RepMixer(16, 3), TimmRepMixer(16, 3)),
    ]
    for ours, theirs in pairs:  # named as in the model, where the renames apply
        same_as_timm(in_model(ours), in_model(theirs), TIMM_RENAMES, seeded(2, 16, 9, 9, seed=1))


def test_relu_linear_attention_equals_the_quadratic_form(seeded):
    q, k, v = seeded(2, 3, 20, 8, seed=1), seeded(2, 3, 20, 8, seed=2), seeded(2, 3, 20, 8, seed=3)
    scores = torch.relu(q) @ torch.relu(k).transpose(-1, -2)  # (2, 3, 20, 20): the T x T matrix it avoids
    expected = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-5)
    assert torch.allclose(relu_linear_attention(q, k, v), expected, atol=1e-5)


def test_attention4d_rejects_another_map_size():
    with pytest.raises(ValueError, match="7 x 7"):
        Attention4D(32, resolution=7)(torch.zeros(1, 32, 8, 8))


def test_attention_bias_index_by_hand():
    index = attention_bias_index(3)  # offsets (|dy|, |dx|) -> |dy|·3 + |dx|
    assert index.shape == (9, 9)
    assert index[0, 8].item() == 2 * 3 + 2 and index[4, 0].item() == 1 * 3 + 1 and index[5, 5].item() == 0
    assert attention_bias_index(4, query_step=2).shape == (4, 16)


# --- re-parameterization: float64, eval ----------------------------------------------------------


@pytest.mark.parametrize("make, shape", [
    (lambda: RepDWConv(16, 3), (2, 16, 9, 9)),
    (lambda: RepDWConv(8, 5), (1, 8, 7, 7)),
    (lambda: MobileOneUnit(16, 16, 3, groups=16, act=nn.GELU), (2, 16, 9, 9)),
    (lambda: MobileOneUnit(8, 16, 3, 2, groups=8, se=True, act=nn.GELU), (2, 8, 9, 9)),
    (lambda: MobileOneUnit(16, 16, 1, num_branches=2, act=nn.GELU), (1, 16, 5, 5)),
    (lambda: MobileOneUnit(16, 16, 3, groups=16, act=None), (1, 16, 5, 5)),
    (lambda: ReparamLargeKernelConv(8, 16, 7, 2, groups=8), (2, 8, 15, 15)),
    (lambda: RepMixer(16, 3), (2, 16, 9, 9)),
    (lambda: RepCPE(16, 7), (2, 16, 9, 9)),
])
def test_block_reparameterization_is_exact(make, shape, randomize, seeded):
    block = randomize(make().double(), seed=3)
    x = seeded(*shape, seed=1).double()
    with torch.no_grad():
        before = block(x)
        deployed = reparameterize_model(block)
        after = deployed(x)
        reparameterize_model(deployed, inplace=True)  # idempotent
        again = deployed(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())  # every BatchNorm folded
    assert isinstance(deployed.reparam, nn.Conv2d)  # one conv with bias in place of the branches
    assert torch.allclose(before, after, rtol=0, atol=1e-10 * before.abs().max().item())
    assert torch.equal(after, again)


def test_repmixer_deploys_to_one_depthwise_conv_without_skip(randomize, seeded):
    deployed = reparameterize_model(randomize(RepMixer(16, 3).double(), seed=0))
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].groups == 16 and convs[0].kernel_size == (3, 3)
    x = seeded(1, 16, 6, 6, seed=1).double()
    with torch.no_grad():
        assert torch.allclose(deployed(x), convs[0](x))  # the skip connection is inside the kernel


def test_repmixer_and_repdw_equal_timm_after_reparameterization(same_as_timm, seeded):
    pytest.importorskip("timm")
    from timm.models.fastvit import RepMixer as TimmRepMixer
    from timm.models.repvit import RepVggDw

    from course.models.fastvit import TIMM_RENAMES as FASTVIT
    from course.models.repvit import TIMM_RENAMES as REPVIT

    from timm.utils import reparameterize_model as timm_reparameterize

    x = seeded(2, 16, 8, 8, seed=1)
    for ours, theirs, renames in [(RepMixer(16, 3), TimmRepMixer(16, 3), FASTVIT), (RepDWConv(16, 3), RepVggDw(16, 3), REPVIT)]:
        ours, theirs = in_model(ours), in_model(theirs)
        same_as_timm(ours, theirs, renames, x)
        with torch.no_grad():
            assert (reparameterize_model(ours)(x) - timm_reparameterize(theirs)(x)).abs().max().item() < 1e-5


def test_conv_bn_units_and_the_classifier_fold(randomize, seeded):
    """:func:`fuse_conv_bn_units` turns every ConvBN (EfficientFormerV2's with a conv bias too)
    into one conv and leaves a ConvBNAct alone (its activation would be lost); the distilled
    classifier folds its two BatchNorm1d heads into one linear layer."""
    net = randomize(nn.Sequential(ConvBN(8, 16, 3, 2, groups=4, bias=True), ConvBNAct(16, 16, 1, act=nn.GELU),
                                  ConvBN(16, 8, 1)).double(), seed=1)
    x = seeded(2, 8, 9, 9, seed=1).double()
    with torch.no_grad():
        before = net(x)
        fuse_conv_bn_units(net)
        assert [type(m) for m in net] == [nn.Conv2d, ConvBNAct, nn.Conv2d]
        assert net[0].bias is not None and torch.allclose(before, net(x), atol=1e-12)
    head = randomize(DistilledClassifier(32, 10).double(), seed=2)
    assert not torch.equal(head.head.bn.running_var, torch.ones(32, dtype=torch.float64))  # randomized too
    v = seeded(4, 32, seed=1).double()
    with torch.no_grad():
        before = head(v)
        head.reparameterize()
        assert head.head is None and torch.allclose(before, head(v), atol=1e-12)


# --- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize("build, name", [
    (lambda: UniversalInvertedBottleneck(16, 16, start_K=4), "start_K"),
    (lambda: UniversalInvertedBottleneck(16, 16, 0, 0, stride=2), "stride"),
    (lambda: UniversalInvertedBottleneck(16, 16, stride=3), "stride"),
    (lambda: UniversalInvertedBottleneck(16, 16, expansion=0), "expansion"),
    (lambda: MobileMQA(64, heads=0), "heads"),
    (lambda: FusedInvertedBottleneck(16, 16, 3, 1, expansion=-1.0), "expansion"),
    (lambda: MobileMQA(64, kv_stride=2, dw_K=4), "dw_K"),
    (lambda: LiteMLA(64, 5), "heads"),
    (lambda: LiteMLA(64, 4, scales=(4,)), "scales"),
    (lambda: Attention4D(32, heads=0), "heads"),
    (lambda: Attention4D(32, stride=1), "stride"),
    (lambda: RepDWConv(8, 4), "K"),
    (lambda: ReparamLargeKernelConv(8, 8, 7, small_K=9), "small_K"),
    (lambda: ReparamLargeKernelConv(8, 8, 7, small_K=4), "small_K"),
    (lambda: EfficientFormerV2Block(0), "positive"),
    (lambda: CascadedGroupAttention(64, 3, 16, 7), "heads"),
    (lambda: CascadedGroupAttention(64, 8, 16, 7), "kernels"),
])
def test_bad_configurations_raise_naming_the_parameter(build, name):
    with pytest.raises((ValueError, RuntimeError), match=name):
        build()


def test_model_configuration_errors():
    from course.models.efficientformerv2 import EfficientFormerV2
    from course.models.repvit import RepViT

    with pytest.raises(ValueError, match="mlp_ratios"):
        EfficientFormerV2((8, 8, 8, 8), (1, 1, 1, 1), ((4,), (4,), (4,), (4, 4)), 1)
    with pytest.raises(ValueError, match="widths"):
        RepViT((16, 32), (1,))


# --- zoo entries and the papers ------------------------------------------------------------------


def test_zoo_entries():
    names = set(zoo)
    assert set(TRAIN) <= names and {n + "_deploy" for n in DEPLOY} <= names
    for name in TRAIN + [n + "_deploy" for n in DEPLOY]:
        entry = zoo[name]
        base = name.removesuffix("_deploy")
        assert entry.twin == f"timm:{base}" and entry.twin_mapping is not None
        assert entry.deploy == name.endswith("_deploy")
        paper = entry.paper
        assert paper.params_m and paper.macs_g and paper.top1
        assert "multiply-adds" in paper.convention
        assert "distillation" in paper.citation  # whether the top-1 used it is stated
        assert entry.input_size == paper.input_size


@pytest.mark.parametrize("name", TRAIN + [n + "_deploy" for n in DEPLOY])
def test_macs_within_two_percent_of_the_paper(name):
    paper = zoo[name].paper
    report = count(create_model(name), torch.zeros(1, 3, paper.input_size, paper.input_size))
    assert report.out_shape == (1, 1000) and not report.uncounted
    ok = within_paper(report.macs / 1e9, paper.macs_g)
    if name in MACS_GAP:
        assert not ok, f"{name} now matches the paper: remove it from MACS_GAP and the docstring's gap"
        pytest.xfail(MACS_GAP[name])
    assert ok, (report.macs, paper.macs_g)


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN + [n + "_deploy" for n in DEPLOY])
def test_same_macs_as_the_twin(name):
    """The counter charges the course model and its twin the same work (the twin of a deploy
    name is timm's re-parameterized model)."""
    x = torch.zeros(1, 3, zoo[name].input_size, zoo[name].input_size)
    assert count(create_model(name).eval(), x).macs == count(create_twin(zoo[name]).eval(), x).macs


@pytest.mark.slow
@pytest.mark.parametrize("name", DEPLOY)
def test_course_reparameterization_gives_the_deploy_model(name, randomize, seeded):
    """``reparameterize_model`` of the train-time model holds the deploy-built model's tensors
    and, in float64, computes the train-time model's outputs. (The deploy-built model against
    timm's re-parameterized twin is in ``tests/test_twins.py``.)"""
    model = randomize(create_model(name).double(), seed=0, example=seeded(2, 3, 128, 128, seed=3).double())
    built = create_model(name + "_deploy")
    deployed = reparameterize_model(model)
    assert {k: v.shape for k, v in deployed.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    x = seeded(1, 3, 128, 128, seed=2).double()  # small: float64 is slow
    with torch.no_grad():
        y, y_deploy = model(x), deployed(x)
    assert (y - y_deploy).abs().max().item() <= 1e-9 * y.abs().max().item()
