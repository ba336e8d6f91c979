"""Chapter 4 (bottlenecks): blocks, closed-form costs, MobileNetV2/V3 and MnasNet-A1 against
their timm twins and the papers, the chapter's helpers, its exercises (grading round trips: test_course_grading.py).

Oracles: the course counter (formulas must equal it exactly), torchvision's ResNet
``Bottleneck``, timm's ``mobilenetv2_100``, ``mobilenetv3_large_100``, ``mobilenetv3_small_100``
and ``semnasnet_100`` (MACs; their outputs after a weight copy: tests/test_twins.py), the
papers' tables (MACs within 2%; MobileNetV1's Table 2 shares), and hand-derived numbers.
"""

from pathlib import Path

import pytest
import torch
from torch import nn

from course.blocks.bottleneck import (
    InvertedResidual,
    MBConv,
    MobileNetV3Block,
    ResNetBottleneck,
    SqueezeExcite,
    make_divisible,
)
from course.blocks.conv import ConvBN, ConvBNAct
from course.cost import bottleneck as cb
from course.cost import count

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100", "mnasnet_a1"]


# --- blocks: formula == counter ------------------------------------------------------------------

BLOCK_CASES = [
    # (block, input shape, formula)
    (lambda: InvertedResidual(24, 24, 144), (1, 24, 28, 28), lambda: cb.inverted_residual(28, 28, 24, 24, 144)),
    (lambda: InvertedResidual(32, 16, 32), (2, 32, 16, 16), lambda: cb.inverted_residual(16, 16, 32, 16, 32, batch=2)),
    (lambda: InvertedResidual(16, 24, 96, K=3, stride=2), (1, 16, 15, 17),
     lambda: cb.inverted_residual(15, 17, 16, 24, 96, 3, 2)),
    (lambda: MBConv(24, 40, expansion=3, K=5, stride=2, se_ratio=0.25), (1, 24, 28, 28),
     lambda: cb.mbconv(28, 28, 24, 40, 3, 5, 2, 0.25)),
    (lambda: MBConv(80, 80, expansion=6, K=3, se_ratio=0.0), (1, 80, 14, 14), lambda: cb.mbconv(14, 14, 80, 80, 6, 3)),
    (lambda: MobileNetV3Block(40, 40, 120, K=5, se=True), (1, 40, 14, 14),
     lambda: cb.mobilenetv3_block(14, 14, 40, 40, 120, 5, 1, True)),
    (lambda: MobileNetV3Block(16, 16, 16, K=3, stride=2, se=True, act=nn.ReLU), (1, 16, 112, 112),
     lambda: cb.mobilenetv3_block(112, 112, 16, 16, 16, 3, 2, True)),
    (lambda: SqueezeExcite(72, 24), (3, 72, 7, 9), lambda: cb.squeeze_excite(7, 9, 72, 24, batch=3)),
    (lambda: ResNetBottleneck(64, 64), (1, 64, 28, 28), lambda: cb.resnet_bottleneck(28, 28, 64, 64)),
    (lambda: ResNetBottleneck(256, 64), (1, 256, 14, 14), lambda: cb.resnet_bottleneck(14, 14, 256, 64)),
    (lambda: ResNetBottleneck(256, 128, stride=2), (1, 256, 15, 15), lambda: cb.resnet_bottleneck(15, 15, 256, 128, 2)),
]


@pytest.mark.parametrize("make_block, shape, formula", BLOCK_CASES)
def test_block_formula_equals_counter_on_every_field(make_block, shape, formula, seeded):
    block = make_block()
    counted = count(block, seeded(*shape)).total
    assert counted == formula()  # macs, params, element-wise, activations, bytes, out_shape
    assert counted.params == sum(p.numel() for p in block.parameters())


def test_formulas_by_hand():
    # MobileNetV2 block, 56x56, 24 -> 24, t = 6: 56²·24·144 + 56²·9·144 + 56²·144·24.
    assert cb.inverted_residual(56, 56, 24, 24, 144).macs == 56 * 56 * 144 * (24 + 9 + 24)
    # SE on 480 channels squeezed to 120: two 1x1 convs on the pooled vector.
    se = cb.squeeze_excite(14, 14, 480, 120)
    assert (se.macs, se.params) == (2 * 480 * 120, 2 * 480 * 120 + 120 + 480)
    # ResNet-50's conv2_x bottleneck: 56²·(256·64 + 9·64² + 64·256) MACs.
    assert cb.resnet_bottleneck(56, 56, 256, 64).macs == 56 * 56 * (256 * 64 + 9 * 64 * 64 + 64 * 256)
    assert [make_divisible(v) for v in (18, 30, 4, 60, 36, 88.08, 120)] == [24, 32, 8, 64, 40, 88, 120]
    assert all(cb.se_width(mid) == make_divisible(mid / 4) for mid in range(1, 1200))


def test_resnet_bottleneck_matches_torchvision(seeded, randomize):
    from torchvision.models.resnet import Bottleneck

    for N, mid, stride in ((256, 64, 1), (256, 128, 2)):
        M = 4 * mid
        downsample = nn.Sequential(nn.Conv2d(N, M, 1, stride, bias=False), nn.BatchNorm2d(M)) if (stride, N) != (1, M) else None
        twin = randomize(Bottleneck(N, mid, stride, downsample=downsample))
        ours = ResNetBottleneck(N, mid, stride).eval()
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in twin.parameters())
        ours.load_state_dict(twin.state_dict())  # same names, same order
        x = seeded(1, N, 16, 16)
        with torch.no_grad():
            assert torch.allclose(ours(x), twin(x), atol=1e-5, rtol=0)


def test_inverted_residual_structure():
    block = InvertedResidual(24, 24, 144)
    assert block.has_skip and isinstance(block.project, ConvBN) and not hasattr(block.project, "act")
    assert isinstance(InvertedResidual(32, 16, 32).expand, nn.Identity)  # t = 1: no expansion conv
    assert not InvertedResidual(16, 24, 96, stride=2).has_skip
    assert MBConv(24, 40, 3, 5, 2, 0.25).se.reduce.out_channels == 6  # a quarter of the input width
    assert MobileNetV3Block(24, 40, 72, 5, 2, se=True).se.reduce.out_channels == 24  # make_divisible(72 / 4)
    assert isinstance(MobileNetV3Block(24, 40, 72, se=True).se.gate, nn.Hardsigmoid)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: InvertedResidual(0, 16, 32), "N"),
        (lambda: InvertedResidual(16, 16, 32, K=4), "K"),
        (lambda: InvertedResidual(16, 16, 32, stride=3), "stride"),
        (lambda: InvertedResidual(16, 16, 32, R=-1), "R"),
        (lambda: InvertedResidual(16, 16, 2.5), "mid"),
        (lambda: MBConv(16, 16, expansion=2.5), "expansion"),
        (lambda: MBConv(16, 16, se_ratio=1.5), "se_ratio"),
        (lambda: MBConv(2, 16, se_ratio=0.25), "se_ratio"),
        (lambda: MobileNetV3Block(16, 16, 0), "mid"),
        (lambda: SqueezeExcite(16, 0), "R"),
        (lambda: ResNetBottleneck(64, 0), "mid"),
        (lambda: ResNetBottleneck(64, 64, stride=0), "stride"),
        (lambda: ConvBNAct(6, 8, 3, groups=4), "groups"),
        (lambda: cb.inverted_residual(28, 28, 16, 16, 32, K=2), "K"),
        (lambda: cb.inverted_residual(28, 28, 16, 16, 32, stride=4), "stride"),
        (lambda: cb.inverted_residual(0, 28, 16, 16, 32), "H"),
        (lambda: cb.mbconv(28, 28, 16, 16, expansion=0), "expansion"),
        (lambda: cb.mbconv(28, 28, 16, 16, se_ratio=2.0), "se_ratio"),
        (lambda: cb.mobilenetv3_block(28, 28, 16, 16, mid=0), "mid"),
        (lambda: cb.squeeze_excite(7, 7, 16, 0), "R"),
        (lambda: cb.resnet_bottleneck(28, 28, 64, 0), "mid"),
        (lambda: cb.resnet_bottleneck(28, 28, 64, 16, stride=3), "stride"),
    ],
)
def test_bad_configurations_raise_naming_the_parameter(build, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        build()


# --- whole models -----------------------------------------------------------------------------


def test_zoo_entries():
    from course.models import list_models, zoo

    assert set(MODELS) <= set(list_models(chapter=4))
    twins = {name: zoo[name].twin for name in MODELS}
    assert twins == {
        "mobilenetv2_100": "timm:mobilenetv2_100",
        "mobilenetv3_large_100": "timm:mobilenetv3_large_100",
        "mobilenetv3_small_100": "timm:mobilenetv3_small_100",
        "mnasnet_a1": "timm:semnasnet_100",  # timm's mnasnet_100 is B1
    }
    for name in MODELS:
        paper = zoo[name].paper
        assert paper.top1 and paper.params_m and paper.macs_g and "Table" in paper.citation
        assert "multiply-adds" in paper.convention and zoo[name].twin_mapping is not None


@pytest.mark.parametrize("name", MODELS)
def test_macs_within_two_percent_of_the_paper(name):
    from course.models import create_model, zoo

    model = create_model(name)
    report = count(model, torch.zeros(1, 3, 224, 224))
    paper = zoo[name].paper
    assert abs(report.macs / (paper.macs_g * 1e9) - 1) <= 0.02, report.macs
    assert not report.uncounted
    assert report.out_shape == (1, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_same_macs_as_the_twin(name):
    from course.models import create_model, zoo
    from course.models.twins import create_twin

    x = torch.zeros(1, 3, 224, 224)
    assert count(create_model(name), x).macs == count(create_twin(zoo[name]), x).macs


@pytest.mark.slow
def test_the_mapping_is_the_documented_one_and_catches_a_wrong_model():
    from course.models import create_model, load_twin_weights, zoo
    from course.models.efficientnet_names import efficientnet_mapping
    from course.models.twins import create_twin

    twin = create_twin(zoo["mobilenetv2_100"])
    mapping = efficientnet_mapping(twin)
    assert mapping["blocks.1.expand.conv.weight"] == "blocks.1.0.conv_pw.weight"
    assert mapping["blocks.0.depthwise.conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert mapping["head.conv.weight"] == "conv_head.weight"
    with pytest.raises(ValueError, match="shape mismatch|no tensor"):
        load_twin_weights(create_model("mobilenetv3_large_100"), twin, "mobilenetv3_large_100")


# --- the chapter's helpers ------------------------------------------------------------------------


def test_mobilenetv1_split_reproduces_the_papers_table_2():
    from course.chapters.ch04 import mobilenetv1_cost_by_type

    by_type = mobilenetv1_cost_by_type()
    macs = sum(c.macs for c in by_type.values())
    params = sum(c.params for c in by_type.values())
    assert round(macs / 1e6) == 569 and round(params / 1e5) == 42  # Table 8: 569M Mult-Adds, 4.2M params
    share = {k: 100 * c.macs / macs for k, c in by_type.items()}
    # Howard et al. 2017, Table 2: 94.86%, 3.06%, 0.18% of the Mult-Adds (its 1.19% for the
    # stem is the digits of 1.91 swapped: the four must sum to 100).
    assert abs(share["conv 1x1"] - 94.86) < 0.01 and abs(share["depthwise 3x3"] - 3.06) < 0.01
    assert abs(share["fully connected"] - 0.18) < 0.01 and abs(share["conv 3x3 (stem)"] - 1.91) < 0.01
    assert abs(100 * by_type["conv 1x1"].params / params - 74.59) < 0.05  # 74.57 here: BN left out


def test_operator_shares_bookkeeping(seeded):
    from course.chapters.ch04 import CATEGORIES, operator_shares

    model = nn.Sequential(
        ConvBNAct(3, 16, 3, stride=2), InvertedResidual(16, 16, 48), MBConv(16, 24, 3, 5, 2, 0.25),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10),
    )
    x = seeded(1, 3, 32, 32)
    shares = operator_shares(model, x, runs=2, warmup=1, threads=1)
    by = {s.category: s for s in shares}
    assert [s.category for s in shares] == [c for c in CATEGORIES if c in by]
    assert abs(sum(s.time_pct for s in shares) - 100) < 1e-9
    assert abs(sum(s.macs_pct for s in shares) - 100) < 1e-9
    report = count(model, x)
    assert sum(s.macs for s in shares) == report.macs
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    depthwise = sum(report.module_cost(n).macs for n, m in convs.items() if m.groups == m.in_channels > 1)
    assert by["depthwise conv"].macs == depthwise and by["depthwise conv"].calls == 2
    assert by["linear"].macs == 24 * 10 and by["dense conv (KxK)"].calls == 1
    assert by["norm"].macs == 0 and by["norm"].calls == 7 and by["norm"].time_ms > 0
    assert by["add (residual)"].calls == 1 and by["mul (SE scale)"].calls == 1
    assert by["mean (pool, SE squeeze)"].calls == 1  # the SE squeeze, a mean in forward()
    assert by["pooling"].calls == 1 and by["pooling"].macs == 0  # the global pool, a module
    assert all(s.time_ms >= 0 for s in shares)
    with pytest.raises(ValueError, match="runs"):
        operator_shares(model, x, runs=0)


def test_block_explorer_formula_matches_counter():
    from course.chapters.ch04 import block_explorer

    explorer = block_explorer(measure=False)
    for values in (dict(), dict(SE="on", K=5, act="Hardswish"), dict(expansion=1, N=16, H=12), dict(expansion=3, K=7)):
        result = explorer.set(**values)
        assert result.error is None
        assert result.formula == result.counted.total
    block, _ = explorer.build(explorer.config)
    assert isinstance(block, InvertedResidual) and block.has_skip


# --- exercises and grading -----------------------------------------------------------------------

def test_exercises_accept_right_and_reject_wrong_answers():
    from course.exercises import check

    def inverted_residual_macs(H, W, N, M, t, K, stride):
        mid, Ho, Wo = t * N, (H - 1) // stride + 1, (W - 1) // stride + 1
        return (H * W * N * mid if t != 1 else 0) + Ho * Wo * mid * (K * K + M)

    def full_resolution(H, W, N, M, t, K, stride):
        return H * W * t * N * (N + K * K + M)

    assert check("4.1", inverted_residual_macs).passed
    wrong = check("4.1", full_resolution)
    assert not wrong.passed and "the stride is on the depthwise conv" in wrong.message
    assert check("4.2", _MBConv, quiet=True).passed
    assert check("4.3", lambda N, M, K: M / (M + K * K)).passed
    assert "percentage" in check("4.3", lambda N, M, K: 100 * M / (M + K * K)).message
    assert check("4.4", 10).passed
    assert not check("4.4", 17).passed and "not attempted" in check("4.4", None).message


class _MBConv(nn.Module):
    """A learner's MBConv: the course's building blocks, named as the exercise says."""

    def __init__(self, N, M, expansion=6, K=3, stride=1, se_ratio=0.25):
        super().__init__()
        from course.blocks.bottleneck import SqueezeExcite
        from course.blocks.conv import ConvBN, ConvBNAct

        mid, R = expansion * N, int(se_ratio * N)
        self.has_skip = stride == 1 and N == M
        self.expand = ConvBNAct(N, mid, 1, act=nn.ReLU) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, K, stride, groups=mid, act=nn.ReLU)
        self.se = SqueezeExcite(mid, R) if R else nn.Identity()
        self.project = ConvBN(mid, M, 1)

    def forward(self, x):
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.has_skip else out


class _NoResidual(_MBConv):
    def forward(self, x):
        return self.project(self.se(self.depthwise(self.expand(x))))


class _ReluAfterProjection(_MBConv):
    def forward(self, x):
        out = self.project(self.se(self.depthwise(self.expand(x)))).relu()
        return out + x if self.has_skip else out


class _SEOnTheExpandedWidthRule(_MBConv):
    """MobileNetV3's rule (a quarter of the expanded width) where MnasNet's (of the input) is asked."""

    def __init__(self, N, M, expansion=6, K=3, stride=1, se_ratio=0.25):
        super().__init__(N, M, expansion, K, stride, se_ratio)
        from course.blocks.bottleneck import SqueezeExcite

        self.se = SqueezeExcite(expansion * N, max(1, int(se_ratio * expansion * N)))


class _SEAfterProjection(_MBConv):
    def __init__(self, N, M, expansion=6, K=3, stride=1, se_ratio=0.25):
        super().__init__(N, M, expansion, K, stride, se_ratio)
        from course.blocks.bottleneck import SqueezeExcite

        self.se = SqueezeExcite(M, int(se_ratio * N))

    def forward(self, x):
        out = self.se(self.project(self.depthwise(self.expand(x))))
        return out + x if self.has_skip else out


class _AlwaysExpands(_MBConv):
    def __init__(self, N, M, expansion=6, K=3, stride=1, se_ratio=0.25):
        super().__init__(N, M, expansion, K, stride, se_ratio)
        from course.blocks.conv import ConvBNAct

        self.expand = ConvBNAct(N, expansion * N, 1, act=nn.ReLU)


@pytest.mark.parametrize("wrong, message", [
    (_NoResidual, "missing residual"),
    (_ReluAfterProjection, "ReLU after the projection"),
    (_SEOnTheExpandedWidthRule, "SE on the wrong width"),
    (_SEAfterProjection, "SE on the wrong width"),
    (_AlwaysExpands, "With expansion 1 there is no expand conv"),
])
def test_mbconv_mistakes_get_their_message(wrong, message):
    from course.exercises import check

    result = check("4.2", wrong, quiet=True)
    assert not result.passed and message in result.message, result.message


def test_mbconv_exercise_grades_hidden_cases_with_the_course_block():
    """The grader's hidden cases (stride 2 with t = 1, K = 7, a stride-2 block with N == M) pass for
    a right module; an answer that adds the residual whenever N == M fails a hidden stride-2 case
    that `check` never shows."""
    from course.exercises import check, collect_outcomes, get_exercise, grade_outcomes

    exercise = get_exercise("4.2")
    cases = exercise.grading_cases(seed=3)
    assert len(cases) == len(exercise.cases) + 6

    def graded(answer):
        outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args(cases), call=exercise.run_case)
        return grade_outcomes(exercise, outcomes, cases)

    assert graded(_MBConv)[0] == exercise.points

    class SkipWheneverNEqualsM(_MBConv):
        def forward(self, x):
            out = self.project(self.se(self.depthwise(self.expand(x))))
            return out + nn.functional.avg_pool2d(x, 2, ceil_mode=True) if out.shape != x.shape and x.shape[1] == out.shape[1] else (out + x if self.has_skip else out)

    assert check("4.2", SkipWheneverNEqualsM, quiet=True).passed  # no public case has stride 2 with N == M
    points, message = graded(SkipWheneverNEqualsM)
    assert points == 0 and "hidden case" in message, message


# --- MobileNetV4's UIB: the explorer, the diagram, the shares sentence ---------------------------


def test_uib_explorer_every_variant_matches_the_counter_and_the_hand_count():
    from course.blocks.uib import UniversalInvertedBottleneck
    from course.chapters.ch04 import uib_explorer

    explorer = uib_explorer(measure=False)
    assert explorer.config["variant"] == "extra_dw" and "≠" not in explorer._table.value
    H, N, mid = 28, 64, 256
    hand = {  # MACs by hand: start dw K²·N, expand N·mid, middle dw K²·mid, project mid·M (per pixel)
        "inverted_bottleneck": H * H * (N * mid + 9 * mid + mid * N),
        "convnext": H * H * (9 * N + N * mid + mid * N),
        "ffn": H * H * (N * mid + mid * N),
        "extra_dw": H * H * (9 * N + N * mid + 9 * mid + mid * N),
    }
    for variant, macs in hand.items():
        result = explorer.set(variant=variant, K=3)
        assert result.error is None and explorer.matches is True, variant
        assert result.formula.macs == result.counted.macs == macs, variant
        block, _ = explorer.build(explorer.config)
        assert isinstance(block, UniversalInvertedBottleneck) and block.variant == variant and block.has_skip
    result = explorer.set(variant="ffn", stride=2)  # nothing to carry the stride: rejected, shown in red
    assert result.error is not None and "Invalid configuration" in explorer._table.value
    result = explorer.set(variant="convnext", stride=2, K=5)  # the stride moves to the start conv
    assert result.error is None and explorer.matches is True and result.counted.total.out_shape[1:] == (128, 14, 14)


def test_uib_diagram_draws_the_four_variants_from_a_block_or_a_configuration():
    from course.blocks.uib import UniversalInvertedBottleneck
    from course.diagrams import uib_diagram

    fig = uib_diagram(variants=True, N=32, M=32, K=5)
    assert [d.title for d in fig.diagrams] == ["UIB: inverted bottleneck (0, 5)", "UIB: ConvNeXt-like (5, 0)",
                                               "UIB: FFN (0, 0)", "UIB: ExtraDW (5, 5)"]
    assert all(d.merges == ["add"] for d in fig.diagrams)
    assert len(uib_diagram(variants=True, N=32, M=64, K=3, stride=2).diagrams) == 3  # no strided FFN
    d = uib_diagram(UniversalInvertedBottleneck(32, 64, 3, 5, 2, 4.0)).diagram
    assert d.boxes == ["depthwise 3x3, 32", "BN", "expand 1x1, 32→128", "BN, ReLU", "depthwise 5x5 /2, 128",
                       "BN, ReLU", "project 1x1, 128→64", "BN (linear)"]
    assert d.merges == [] and d.output == "(M=64, H/2, W/2)"


def test_shares_sentence_is_written_from_the_numbers():
    from course.chapters.ch04 import OperatorShare, shares_sentence

    shares = [OperatorShare("1x1 conv", 34, 890, 89.0, 40.0, 40.0), OperatorShare("depthwise conv", 17, 70, 7.0, 25.0, 25.0),
              OperatorShare("dense conv (KxK)", 1, 40, 4.0, 1.0, 1.0), OperatorShare("batch norm", 52, 0, 0.0, 12.0, 12.0),
              OperatorShare("activation", 35, 0, 0.0, 8.0, 8.0), OperatorShare("overhead (Python, dispatch)", 0, 0, 0.0, 14.0, 14.0)]
    text = shares_sentence(shares)
    assert text.startswith("On this device the 1x1 convs hold 89.0% of the MACs and 40.0% of the time; "
                           "the depthwise convs hold 7.0% of the MACs and 25.0% of the time; "
                           "operators with no MACs (batch norm, activation) take 20.0% of the time.")
    assert "3.6 for depthwise conv (the most" in text and "0.25 for dense conv (KxK) (the least" in text
