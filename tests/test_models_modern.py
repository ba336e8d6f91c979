"""The 2023-2024 fast architectures: EfficientFormerV2, MobileNetV4, RepViT, FastViT, EfficientViT.

Oracles: timm's blocks and models (parameter counts, outputs after copying the twin's random
weights by the documented name mapping, counted MACs), timm's own re-parameterization
(``fuse()``, ``timm.utils.reparameterize_model``), float64 re-computation for the course's
re-parameterization, and the papers' published MACs (within 2%, or within half a unit of the
paper's last printed digit, as in Chapter 7's tests).
"""

import copy

import pytest
import torch
from torch import nn

from course.blocks.cascaded_attention import CascadedGroupAttention, LocalWindowAttention
from course.blocks.convnorm import ConvNorm
from course.blocks.efficientformer import Attention4D, EfficientFormerV2Block, attention_bias_index
from course.blocks.linear_attention import LiteMLA, relu_linear_attention
from course.blocks.reparam import reparameterize_model
from course.blocks.repmixer import MobileOneConv, RepCPE, RepMixer, ReparamLargeKernelConv
from course.blocks.repvit import DistilledClassifier, RepDWConv
from course.blocks.uib import FusedInvertedBottleneck, MobileMQA, MobileMQABlock, UniversalInvertedBottleneck
from course.cost import count
from course.models.random_init import randomize
from course.models.twins import copy_state_by_name

TRAIN = [
    "efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
    "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium",
    "repvit_m0_9", "repvit_m1_0", "fastvit_t8", "fastvit_sa12", "efficientvit_b1", "efficientvit_m0",
]
DEPLOY = ["repvit_m0_9", "repvit_m1_0", "fastvit_t8", "fastvit_sa12"]
MACS_GAP = {  # documented in the model files: the count does not fall within the paper's rounding
    "mobilenetv4_hybrid_medium": "the released block table (= timm) counts 1.271 G at 256 vs the paper's 1.2 G",
}


def seeded(*shape, seed=1, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def within_paper(value, paper_value):
    """Within 2%, or within half a unit of the paper's last printed digit (it rounds)."""
    decimals = len(repr(paper_value).split(".")[1]) if "." in repr(paper_value) else 0
    return abs(value - paper_value) <= max(0.02 * paper_value, 0.5 * 10 ** -decimals)


# --- blocks against timm's blocks ---------------------------------------------------------------


def _same_outputs(ours, theirs, mapping, x):
    randomize(theirs, seed=0)
    copy_state_by_name(ours, theirs, mapping)
    ours.eval()
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert b.std() > 1e-3
    assert (a - b).abs().max().item() <= 1e-5
    assert n_params(ours) == n_params(theirs)


def _renamed(module, renames):
    import re

    mapping = {}
    for key in module.state_dict():
        name = key
        for pattern, repl in renames:
            name = re.sub(pattern, repl, name)
        mapping[key] = name
    return mapping


@pytest.mark.parametrize("start_K, mid_K, stride, layer_scale", [(5, 5, 2, None), (0, 3, 1, 1e-5), (3, 0, 1, None),
                                                                  (0, 0, 1, 1e-5), (3, 0, 2, None)])
def test_uib_equals_timm(start_K, mid_K, stride, layer_scale):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import UniversalInvertedResidual

    ours = UniversalInvertedBottleneck(32, 32 if stride == 1 else 48, start_K, mid_K, stride, 3.0,
                                       layer_scale=layer_scale)
    theirs = UniversalInvertedResidual(32, 32 if stride == 1 else 48, start_K, mid_K, stride=stride, exp_ratio=3.0,
                                       layer_scale_init_value=layer_scale)
    assert ours.variant == {(5, 5): "extra_dw", (0, 3): "inverted_bottleneck", (3, 0): "convnext",
                            (0, 0): "ffn"}[(start_K, mid_K)]
    _same_outputs(ours, theirs, _renamed(ours, [(r"layer_scale\.scale$", "layer_scale.gamma")]), seeded(2, 32, 15, 15))


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_mobile_mqa_equals_timm(kv_stride):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import MobileAttention

    from course.models.mobilenetv4 import TIMM_RENAMES

    ours = nn.Sequential(MobileMQABlock(64, 4, 32, 32, kv_stride))
    theirs = nn.Sequential(MobileAttention(64, 64, num_heads=4, key_dim=32, value_dim=32, use_multi_query=True,
                                           kv_stride=kv_stride, layer_scale_init_value=1e-5))
    _same_outputs(ours, theirs, _renamed(ours, TIMM_RENAMES), seeded(2, 64, 9, 9))


def test_lite_mla_equals_timm():
    pytest.importorskip("timm")
    from timm.models.efficientvit_mit import LiteMLA as TimmLiteMLA

    ours, theirs = LiteMLA(64, 4), TimmLiteMLA(64, 64, dim=16, norm_layer=(None, nn.BatchNorm2d))
    _same_outputs(ours, theirs, _renamed(ours, [(r"\.bn\.", ".norm.")]), seeded(2, 64, 7, 9))


@pytest.mark.parametrize("resolution", [7, 10, 14])
def test_window_cascaded_attention_equals_timm(resolution):
    """7: one window; 14: four windows; 10: padded to 14, then cropped."""
    pytest.importorskip("timm")
    from timm.models.efficientvit_msra import LocalWindowAttention as TimmLocalWindowAttention

    ours = LocalWindowAttention(64, 4, 16, resolution, 7)
    theirs = TimmLocalWindowAttention(64, 16, 4, attn_ratio=1, resolution=resolution, window_resolution=7)
    _same_outputs(ours, theirs, _renamed(ours, []), seeded(2, 64, resolution, resolution))


def test_relu_linear_attention_equals_the_quadratic_form():
    q, k, v = seeded(2, 3, 20, 8, seed=1), seeded(2, 3, 20, 8, seed=2), seeded(2, 3, 20, 8, seed=3)
    scores = torch.relu(q) @ torch.relu(k).transpose(-1, -2)  # (2, 3, 20, 20): the T x T matrix it avoids
    expected = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-5)
    assert torch.allclose(relu_linear_attention(q, k, v), expected, atol=1e-5)


@pytest.mark.parametrize("stride", [None, 2])
def test_attention4d_equals_timm(stride):
    pytest.importorskip("timm")
    from timm.models.efficientformer_v2 import Attention2d

    ours, theirs = Attention4D(48, resolution=14 if stride else 7, stride=stride), \
        Attention2d(48, resolution=14 if stride else 7, stride=stride)
    assert torch.equal(ours.bias_index, theirs.attention_bias_idxs)
    _same_outputs(ours, theirs, _renamed(ours, []), seeded(2, 48, 14 if stride else 7, 14 if stride else 7))


def test_attention4d_rejects_another_map_size():
    with pytest.raises(ValueError, match="7 x 7"):
        Attention4D(32, resolution=7)(torch.zeros(1, 32, 8, 8))


def test_attention_bias_index_by_hand():
    index = attention_bias_index(3)  # offsets (|dy|, |dx|) -> |dy|·3 + |dx|
    assert index.shape == (9, 9)
    assert index[0, 8].item() == 2 * 3 + 2 and index[4, 0].item() == 1 * 3 + 1 and index[5, 5].item() == 0
    assert attention_bias_index(4, query_step=2).shape == (4, 16)


# --- re-parameterization: float64, eval ----------------------------------------------------------


def _reparam_equal(block, shape):
    block = randomize(block.double(), seed=3)
    x = seeded(*shape, dtype=torch.float64)
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
    return deployed


@pytest.mark.parametrize("make, shape", [
    (lambda: RepDWConv(16, 3), (2, 16, 9, 9)),
    (lambda: RepDWConv(8, 5), (1, 8, 7, 7)),
    (lambda: MobileOneConv(16, 16, 3, groups=16), (2, 16, 9, 9)),
    (lambda: MobileOneConv(8, 16, 3, 2, groups=8, se=True), (2, 8, 9, 9)),
    (lambda: MobileOneConv(16, 16, 1, num_branches=2), (1, 16, 5, 5)),
    (lambda: MobileOneConv(3, 16, 3, 2), (1, 3, 9, 9)),
    (lambda: MobileOneConv(16, 16, 3, groups=16, act=None, scale_branch=False, num_branches=0), (1, 16, 5, 5)),
    (lambda: ReparamLargeKernelConv(8, 16, 7, 2, groups=8), (2, 8, 15, 15)),
    (lambda: RepMixer(16, 3), (2, 16, 9, 9)),
    (lambda: RepCPE(16, 7), (2, 16, 9, 9)),
])
def test_block_reparameterization_is_exact(make, shape):
    _reparam_equal(make(), shape)


def test_repmixer_deploys_to_one_depthwise_conv_without_skip():
    mixer = randomize(RepMixer(16, 3).double(), seed=0)
    deployed = reparameterize_model(mixer)
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].groups == 16 and convs[0].kernel_size == (3, 3)
    x = seeded(1, 16, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(deployed(x), convs[0](x))  # the skip connection is inside the kernel


def test_repmixer_and_repdw_equal_timm_after_reparameterization():
    pytest.importorskip("timm")
    from timm.models.fastvit import RepMixer as TimmRepMixer
    from timm.models.repvit import RepVggDw

    for ours, theirs, renames in [
        (RepMixer(16, 3), TimmRepMixer(16, 3), []),
        (RepDWConv(16, 3), RepVggDw(16, 3), [(r"^conv\.conv\.", "conv.c.")]),
    ]:
        _same_outputs(ours, theirs, _renamed(ours, renames), seeded(2, 16, 8, 8))
        x = seeded(2, 16, 8, 8)
        with torch.no_grad():
            fused_theirs = theirs.fuse() if hasattr(theirs, "fuse") else (theirs.reparameterize() or theirs)
            assert (reparameterize_model(ours)(x) - fused_theirs(x)).abs().max().item() < 1e-5


def test_convnorm_fuse_and_classifier_fold():
    conv = randomize(ConvNorm(8, 16, 3, 2, groups=4).double(), seed=1)
    x = seeded(2, 8, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        before = conv(x)
        conv.fuse()
        assert conv.bn is None and conv.conv.bias is not None
        assert torch.allclose(before, conv(x), atol=1e-12)
    head = DistilledClassifier(32, 10)
    for bn in (head.head.bn, head.head_dist.bn):  # BatchNorm1d: randomize's BatchNorm2d rule does not reach it
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    head = randomize(head.double(), seed=2)
    v = seeded(4, 32, dtype=torch.float64)
    with torch.no_grad():
        before = head(v)
        head.reparameterize()
        assert head.head is None and torch.allclose(before, head(v), atol=1e-12)


# --- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize("build, name", [
    (lambda: ConvNorm(8, 8, 2), "K"),
    (lambda: ConvNorm(8, 12, 3, groups=8), "groups"),
    (lambda: ConvNorm(0, 8, 3), "N"),
    (lambda: UniversalInvertedBottleneck(16, 16, start_K=4), "start_K"),
    (lambda: UniversalInvertedBottleneck(16, 16, 0, 0, stride=2), "stride"),
    (lambda: UniversalInvertedBottleneck(16, 16, stride=3), "stride"),
    (lambda: UniversalInvertedBottleneck(16, 16, expansion=0), "expansion"),
    (lambda: MobileMQA(64, heads=0), "heads"),
    (lambda: FusedInvertedBottleneck(16, 16, expansion=-1.0), "expansion"),
    (lambda: MobileMQA(64, kv_stride=2, dw_K=4), "K"),
    (lambda: LiteMLA(64, 5), "heads"),
    (lambda: LiteMLA(64, 4, scales=(4,)), "scales"),
    (lambda: Attention4D(32, heads=0), "heads"),
    (lambda: Attention4D(32, stride=1), "stride"),
    (lambda: MobileOneConv(8, 16, 3, num_branches=0), "num_branches"),
    (lambda: RepDWConv(8, 4), "K"),
    (lambda: ReparamLargeKernelConv(8, 8, 7, small_K=9), "small_K"),
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
    from course.models import list_models, zoo

    names = set(list_models())
    assert set(TRAIN) <= names and {n + "_deploy" for n in DEPLOY} <= names
    for name in TRAIN + [n + "_deploy" for n in DEPLOY]:
        entry = zoo[name]
        base = name.replace("_deploy", "")
        assert entry.twin == f"timm:{base}"
        assert entry.deploy == name.endswith("_deploy")
        paper = entry.paper
        assert paper.params_m and paper.macs_g and paper.top1 and entry.twin_weights is not None
        assert "multiply-adds" in paper.convention
        assert "distillation" in paper.citation  # whether the top-1 used it is stated
        assert entry.input_size == paper.input_size


@pytest.mark.parametrize("name", TRAIN + [n + "_deploy" for n in DEPLOY])
def test_macs_within_two_percent_of_the_paper(name):
    from course.models import create_model, zoo

    paper = zoo[name].paper
    report = count(create_model(name), torch.zeros(1, 3, paper.input_size, paper.input_size))
    assert report.out_shape == (1, 1000) and not report.uncounted
    ok = within_paper(report.macs / 1e9, paper.macs_g)
    if name in MACS_GAP:
        assert not ok, f"{name} now matches the paper: remove it from MACS_GAP and the docstring's gap"
        pytest.xfail(MACS_GAP[name])
    assert ok, (report.macs, paper.macs_g)


# --- whole models against their timm twins -------------------------------------------------------


def _pair(name):
    from course.models import create_model, zoo
    from course.models.twins import create_twin

    entry = zoo[name]
    twin = randomize(create_twin(entry), seed=0)
    model = create_model(name).eval()
    entry.twin_weights(model, twin)
    return model, twin, seeded(2, 3, entry.input_size, entry.input_size)


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN)
def test_same_parameters_outputs_and_macs_as_the_twin(name):
    model, twin, x = _pair(name)
    assert n_params(model) == n_params(twin)
    with torch.no_grad():
        ours, theirs = model(x), twin(x)
    assert ours.shape == theirs.shape == (2, 1000)
    assert theirs.std() > 1e-3
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert count(model, x[:1]).macs == count(twin, x[:1]).macs


@pytest.mark.slow
@pytest.mark.parametrize("name", DEPLOY)
def test_deploy_time_model(name):
    """Deploy-built model == timm's re-parameterized twin; course re-parameterization of the
    train-time model gives the deploy-built structure and, in float64, the same outputs."""
    from course.models import create_model, zoo

    model, twin, x = _pair(name)
    if name.startswith("fastvit"):
        from timm.utils import reparameterize_model as timm_reparameterize

        twin_deploy = timm_reparameterize(copy.deepcopy(twin))
    else:
        twin_deploy = copy.deepcopy(twin).fuse()
    built = create_model(name + "_deploy").eval()
    zoo[name + "_deploy"].twin_weights(built, twin)  # fuses a copy of the train-time twin
    assert n_params(built) == n_params(twin_deploy)
    with torch.no_grad():
        assert (built(x) - twin_deploy(x)).abs().max().item() <= 1e-5
    ours = reparameterize_model(model)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    model64, x64 = copy.deepcopy(model).double(), seeded(1, 3, 128, 128, dtype=torch.float64)  # small: float64 is slow
    with torch.no_grad():
        y = model64(x64)
        y_deploy = reparameterize_model(model64)(x64)
    assert (y - y_deploy).abs().max().item() <= 1e-9 * y.abs().max().item()


@pytest.mark.slow
def test_the_mapping_rejects_another_size():
    from course.models import create_model, zoo
    from course.models.twins import create_twin

    with pytest.raises(ValueError, match="shape mismatch|no tensor|no course counterpart"):
        zoo["efficientformerv2_s0"].twin_weights(create_model("efficientformerv2_s0"),
                                                 create_twin(zoo["efficientformerv2_s1"]))
