"""Chapter 3: channel shuffle, the ShuffleNet units and models, MAC formulas, chapter helpers, exercises.

Oracles: torchvision (its own ``channel_shuffle`` and the ShuffleNet V2 twins), the papers'
tables (Zhang et al. CVPR 2018 Table 1, 2, 8; Ma et al. ECCV 2018 Table 5), the paper's unit
formula hw(2cm/g + 9m), the course counter run on the real modules, and hand-derived values.
"""

import math
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

import course.latency
from course.blocks.shuffle import ChannelShuffle, ShuffleV1Unit, ShuffleV2Unit, channel_shuffle
from course.chapters import ch03
from course.cost import count
from course.cost import shuffle as sc
from course.exercises import check, get_exercise
from course.latency import Timing
from course.models import create_model, list_models, zoo
from course.models.shufflenet import ShuffleNetV1, ShuffleNetV2, torchvision_to_course_name

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("macs", "params", "activations", "elementwise", "out_shape")


# --- channel shuffle -------------------------------------------------------------------------------


@pytest.mark.slow
def test_channel_shuffle_matches_torchvision(seeded):
    from torchvision.models.shufflenetv2 import channel_shuffle as tv_shuffle

    for C, G in [(6, 2), (12, 3), (24, 8), (10, 1), (8, 8)]:
        x = seeded(2, C, 3, 5)
        assert torch.equal(channel_shuffle(x, G), tv_shuffle(x, G))


@pytest.mark.parametrize("C,G", [(6, 2), (12, 3), (24, 8), (10, 1), (8, 8)])
def test_channel_shuffle_follows_the_index_formula(C, G, seeded):
    x = seeded(2, C, 3, 5)
    out = channel_shuffle(x, G)
    n = C // G
    for g in range(G):
        for k in range(n):  # channel k of group g lands at k*G + g
            assert torch.equal(out[:, k * G + g], x[:, g * n + k])
    assert torch.equal(channel_shuffle(out, n), x)  # the inverse is the shuffle with C/G groups
    assert torch.equal(ChannelShuffle(G)(x), out)


def test_channel_shuffle_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups=4"):
        channel_shuffle(torch.zeros(1, 6, 2, 2), 4)
    with pytest.raises(ValueError, match="groups=0"):
        ChannelShuffle(0)


def test_shuffle_costs_no_macs_but_moves_memory():
    report = count(ChannelShuffle(3), torch.zeros(1, 12, 4, 4))
    assert report.macs == 0 and report.total.elementwise == 0
    assert report.total.bytes_written == 12 * 4 * 4 * 4  # the contiguous() copy


# --- units: formula == counter ------------------------------------------------------------------

V1_CASES = [
    dict(H=28, W=28, N=240, M=240, groups=3, stride=1),
    dict(H=56, W=56, N=24, M=240, groups=3, stride=2, group_first=False),
    dict(H=28, W=30, N=240, M=480, groups=3, stride=2),
    dict(H=14, W=14, N=200, M=200, groups=2, stride=1),
    dict(H=9, W=7, N=16, M=48, groups=4, stride=2),
    dict(H=14, W=14, N=136, M=136, groups=4, stride=1, bottleneck=36),
    dict(H=7, W=7, N=576, M=576, groups=1, stride=1),
]


@pytest.mark.parametrize("case", V1_CASES)
def test_v1_unit_formula_equals_counter(case, seeded):
    unit_args = {k: v for k, v in case.items() if k not in ("H", "W")}
    unit = ShuffleV1Unit(**unit_args)
    x = seeded(2, case["N"], case["H"], case["W"])
    counted = count(unit, x).total
    formula = sc.shuffle_v1_unit(batch=2, **case)
    for field in FIELDS:
        assert getattr(formula, field) == getattr(counted, field), field
    assert formula.params == sum(p.numel() for p in unit.parameters())
    assert tuple(unit(x).shape) == formula.out_shape


@pytest.mark.parametrize("h,c,g", [(28, 240, 3), (14, 480, 3), (56, 144, 1), (28, 384, 8), (7, 272, 4)])
def test_v1_unit_macs_equal_the_papers_formula(h, c, g):
    # Zhang et al., Sec. 3.3: a stride-1 ShuffleNet unit costs hw(2cm/g + 9m), m = c/4.
    m = c // 4
    assert sc.shuffle_v1_unit(h, h, c, c, g).macs == sc.shuffle_v1_unit_paper_macs(h, h, c, m, g) == h * h * (2 * c * m // g + 9 * m)


V2_CASES = [
    dict(H=28, W=28, N=116, M=116, stride=1),
    dict(H=56, W=56, N=24, M=116, stride=2),
    dict(H=28, W=27, N=116, M=232, stride=2),
    dict(H=7, W=7, N=976, M=976, stride=1),
    dict(H=9, W=9, N=10, M=10, stride=1),
]


@pytest.mark.parametrize("case", V2_CASES)
def test_v2_unit_formula_equals_counter(case, seeded):
    unit = ShuffleV2Unit(case["N"], case["M"], case["stride"])
    x = seeded(2, case["N"], case["H"], case["W"])
    counted = count(unit, x).total
    formula = sc.shuffle_v2_unit(batch=2, **case)
    for field in FIELDS:
        assert getattr(formula, field) == getattr(counted, field), field
    assert formula.params == sum(p.numel() for p in unit.parameters())


def test_v2_unit_stride1_hand_count():
    # c' = 58 on 28x28: hw(2c'^2 + 9c') MACs; 2c'^2 + 9c' weights + 3 BNs of 2c' parameters.
    cost = sc.shuffle_v2_unit(28, 28, 116, 116)
    assert cost.macs == 28 * 28 * (2 * 58 * 58 + 9 * 58) == 5_684_000
    assert cost.params == 2 * 58 * 58 + 9 * 58 + 6 * 58 == 7_598


def test_v2_unit_passes_the_left_half_through(seeded):
    unit = ShuffleV2Unit(8, 8).eval()
    x = seeded(1, 8, 5, 5)
    out = channel_shuffle(unit(x), 4)  # the inverse of the unit's 2-group shuffle
    assert torch.equal(out[:, :4], x[:, :4])


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: ShuffleV1Unit(10, 10, groups=3), "groups=3"),  # 10 channels, 3 groups
        (lambda: ShuffleV1Unit(24, 240, groups=8, stride=2, group_first=False), "bottleneck"),  # 60 % 8
        (lambda: ShuffleV1Unit(24, 100, groups=8, stride=2, group_first=False, bottleneck=24), "branch"),  # 76 % 8
        (lambda: ShuffleV1Unit(48, 96, groups=3, stride=1), "N=48"),
        (lambda: ShuffleV1Unit(96, 48, groups=3, stride=2), "M=48"),
        (lambda: ShuffleV1Unit(48, 48, groups=3, stride=3), "stride"),
        (lambda: ShuffleV2Unit(10, 11, stride=2), "M=11"),
        (lambda: ShuffleV2Unit(11, 11, stride=1), "N=11"),
        (lambda: ShuffleV2Unit(8, 16, stride=1), "N=8"),
        (lambda: ShuffleV2Unit(8, 16, stride=0), "stride"),
        (lambda: sc.shuffle_v1_unit(14, 14, 10, 10, groups=3), "groups=3"),
        (lambda: sc.shuffle_v1_unit(14, 14, 24, 240, groups=8, stride=2, group_first=False), "bottleneck"),
        (lambda: sc.shuffle_v2_unit(14, 14, 11, 11), "N=11"),
        (lambda: sc.shuffle_v2_unit(14, 14, 10, 11, stride=2), "M=11"),
        (lambda: sc.group_conv_mac(7, 7, 10, 10, 4), "groups=4"),
        (lambda: ShuffleNetV1(groups=5), "groups=5"),
        (lambda: ShuffleNetV1(scale=0.75), "scale=0.75"),
        (lambda: ShuffleNetV2(width=0.75), "width=0.75"),
    ],
)
def test_bad_configurations_raise_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name):
        make()


# --- memory access cost ------------------------------------------------------------------------


def test_memory_access_cost_by_hand():
    # 56x56, 64 -> 64: input 200704 + output 200704 + weights 4096.
    assert sc.memory_access_cost(56, 56, 64, 64) == 405_504
    assert sc.memory_access_cost(1, 1, 1024, 1000) == 1024 + 1000 + 1_024_000


@pytest.mark.parametrize("h,c", [(56, 64), (28, 116), (7, 464), (14, 9)])
def test_lower_bound_is_reached_at_equal_widths_and_never_beaten(h, c):
    B = h * h * c * c
    bound = sc.mac_lower_bound(h, h, B)
    assert math.isclose(bound, sc.memory_access_cost(h, h, c, c), rel_tol=1e-12)
    for ratio in (2, 4, 9, 16):  # same B, unequal widths: c1 = c/sqrt(r), c2 = c*sqrt(r)
        c1, c2 = c / math.sqrt(ratio), c * math.sqrt(ratio)
        assert h * h * (c1 + c2) + c1 * c2 > bound


def test_group_conv_mac_grows_with_groups_at_fixed_flops():
    # c = 64 * sqrt(g) keeps B = hwc^2/g fixed: 64, 128 (g=4), 256 (g=16).
    macs = [sc.group_conv_mac(28, 28, 64 * k, 64 * k, k * k) for k in (1, 2, 4)]
    assert macs == sorted(macs) and len(set(macs)) == 3
    assert sc.group_conv_mac(28, 28, 64, 64, 1) == sc.memory_access_cost(28, 28, 64, 64)


# --- whole models --------------------------------------------------------------------------------


def test_zoo_has_every_model_of_the_issue():
    v1 = list_models("shufflenet_v1*")
    assert {f"shufflenet_v1_g{g}_x1_0" for g in (1, 2, 3, 4, 8)} <= set(v1)
    assert {"shufflenet_v1_g3_x0_5", "shufflenet_v1_g3_x1_5", "shufflenet_v1_g3_x2_0"} <= set(v1)
    assert list_models("shufflenet_v2*") == [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
    for name in v1:
        entry = zoo[name]
        assert entry.twin is None and entry.chapter == 3 and entry.paper.params_m is None  # not published
        assert "Zhang" in entry.paper.citation and "multiply-adds" in entry.paper.convention
    for name in list_models("shufflenet_v2*"):
        assert zoo[name].twin == f"torchvision:{name}" and "Ma" in zoo[name].paper.citation


def test_v1_stage_widths_follow_table_1():
    model = ShuffleNetV1(groups=8)
    assert [stage[0].expand[0].out_channels for stage in model.stages] == [384 - 24, 768 - 384, 1536 - 768]
    assert model.classifier.in_features == 1536
    assert model.stages[0][0].reduce[0].groups == 1  # stage 2's first pointwise conv is dense
    assert model.stages[0][1].reduce[0].groups == 8


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in zoo if n.startswith("shufflenet_v1")])
def test_v1_macs_within_2_percent_of_the_paper(name):
    report = count(create_model(name), torch.zeros(1, 3, 224, 224))
    paper = zoo[name].paper
    assert report.out_shape == (1, 1000)
    assert abs(report.macs / 1e9 - paper.macs_g) <= 0.02 * paper.macs_g, (report.macs, paper.macs_g)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"])
def test_v2_matches_the_paper(name):
    """Table 5's MFLOPs and parameters (the twin itself: tests/test_twins.py)."""
    entry = zoo[name]
    report = count(create_model(name), torch.zeros(1, 3, 224, 224))
    assert report.out_shape == (1, 1000)
    paper = entry.paper
    assert abs(report.macs / 1e9 - paper.macs_g) <= 0.02 * paper.macs_g
    assert abs(report.params / 1e6 - paper.params_m) <= 0.05  # Table 5 prints one decimal


def test_torchvision_name_mapping():
    assert torchvision_to_course_name("conv1.0.weight") == "stem.conv.weight"
    assert torchvision_to_course_name("conv1.1.running_mean") == "stem.bn.running_mean"
    assert torchvision_to_course_name("stage2.0.branch1.0.weight") == "stages.0.0.left.0.weight"
    assert torchvision_to_course_name("stage4.3.branch2.7.running_var") == "stages.2.3.right.7.running_var"
    assert torchvision_to_course_name("conv5.1.bias") == "head.bn.bias"
    assert torchvision_to_course_name("fc.weight") == "classifier.weight"
    with pytest.raises(ValueError, match="name='other.weight'"):
        torchvision_to_course_name("other.weight")


# --- chapter helpers -------------------------------------------------------------------------------


def test_shuffle_order_and_channel_mixing():
    assert ch03.shuffle_order(6, 2) == [0, 3, 1, 4, 2, 5]
    C, G = 12, 3
    # Oracle: block-diagonal dependency matrices, composed by boolean matrix product.
    block = torch.block_diag(*[torch.ones(C // G, C // G)] * G)
    perm = torch.zeros(C, C)
    for position, channel in enumerate(ch03.shuffle_order(C, G)):
        perm[position, channel] = 1
    assert torch.equal(ch03.channel_mixing(C, G, shuffle=False), (block @ block) > 0)
    assert torch.equal(ch03.channel_mixing(C, G, shuffle=True), (block @ perm @ block) > 0)
    assert ch03.channel_mixing(C, G, shuffle=True).all()
    assert ch03.channel_mixing(C, G, shuffle=False).sum(1).tolist() == [C // G] * C


def test_figures_build():
    from matplotlib.figure import Figure

    assert isinstance(ch03.plot_channel_mixing(8, 2), Figure)


@pytest.fixture
def fake_measure(monkeypatch):
    """Instant interleaved timer: a deterministic latency per network (MACs-independent),
    recording each call's contenders and budget."""
    calls = []

    def interleaved(cases, device=None, threads=None, budget_s=1.0):
        calls.append((list(cases), budget_s, threads))
        return {name: Timing(median_s=1e-3 * (1 + len(net) % 3), iqr_s=0.0, runs=5, device="cpu", threads=1)
                for name, (net, _) in cases.items()}

    monkeypatch.setattr(course.latency, "measure_interleaved", interleaved)
    return calls


def test_guideline_runs_pair_paper_and_measurement(fake_measure):
    results = {g: ch03.run_guideline(g, platform="arm", size=7, columns=1, budget_s=0.3, device="cpu")
               for g in ch03.PAPER}
    for guideline, rows in results.items():
        table = ch03.PAPER[guideline]["arm"]["rows"]
        assert [r.label for r in rows] == [label for label, _, _ in table]
        assert rows[0].paper_relative == 1.0 and rows[0].relative == 1.0
        macs = [r.macs for r in rows]
        assert max(macs) <= 1.06 * min(macs), (guideline, macs)  # equal FLOPs, up to integer widths
        for r in rows:
            assert math.isclose(r.throughput, 1e3 / r.median_ms)  # batch 1: images/s
            assert math.isclose(r.relative, rows[0].median_ms / r.median_ms)
            assert r.relative_iqr[0] <= r.relative <= r.relative_iqr[1] and not r.noisy
    # One interleaved measurement per column, all of its networks together, their budgets summed.
    assert [names for names, _, _ in fake_measure] == [[label for label, _, _ in ch03.PAPER[g]["arm"]["rows"]]
                                                     for g in ch03.PAPER]
    assert all(budget == pytest.approx(0.3 * len(names)) for names, budget, _ in fake_measure)
    assert all(threads is None for _, _, threads in fake_measure)  # the policy's
    # G1 and G2 carry the memory access cost, which grows down the table as the paper argues.
    for guideline in ("G1", "G2"):
        macs = [r.mac for r in results[guideline]]
        assert macs == sorted(macs)
    g1 = results["G1"][0]
    assert g1.mac == 10 * 2 * sc.memory_access_cost(7, 7, 32, 32)
    text = str(ch03.guideline_table(results["G3"]))
    assert "4-fragment-parallel" in text and "paper" in text
    header = str(ch03.guideline_table(results["G1"])).splitlines()[0].split()
    assert "c" not in header and "MAC" in header  # G1 and G2 have no channel column
    assert "c" in str(ch03.guideline_table(results["G3"])).splitlines()[0].split()
    from matplotlib.figure import Figure

    assert isinstance(ch03.plot_guidelines(results), Figure)


def test_guideline_verdicts_follow_the_iqr():
    """A verdict is read from the interval: reproduced when the whole IQR is on the paper's side of
    1.0, opposite when it is on the other side, else within the noise; one per guideline and column."""
    def row(guideline, label, c, paper_relative, relative, iqr):
        return ch03.GuidelineRow(guideline, label, c, 1, None, 1.0, paper_relative, 1.0, 1.0, relative,
                                 None, iqr)

    results = {
        "G2": [row("G2", "g=1", None, 1.0, 1.0, (1.0, 1.0)), row("G2", "g=8", None, 0.70, 0.5, (0.45, 0.55))],
        "G4": [row("G4", "ReLU + shortcut", 32, 1.0, 1.0, (1.0, 1.0)), row("G4", "neither", 32, 1.17, 0.9, (0.85, 0.95)),
               row("G4", "ReLU + shortcut", 64, 1.0, 1.0, (1.0, 1.0)), row("G4", "neither", 64, 1.2, 1.02, (0.97, 1.08))],
    }
    verdicts = ch03.guideline_verdicts(results)
    assert [(v.guideline, v.c, v.verdict) for v in verdicts] == [
        ("G2", None, "reproduced"), ("G4", 32, "opposite"), ("G4", 64, "within the noise")]
    assert verdicts[0].compared == "g=8 vs g=1"
    assert verdicts[1].sentence == ("G4 (c=32): the paper measured neither at 1.17x the speed of ReLU + shortcut; "
                                    "this device 0.90x (IQR 0.85-0.95x): opposite.")
    text = str(ch03.verdicts_table(verdicts))
    assert "0.85-0.95x" in text and "within the noise" in text


def test_guideline_columns_and_errors(fake_measure):
    rows = ch03.run_guideline("G4", platform="gpu", size=4, device="cpu")
    assert [r.c for r in rows] == [32] * 4 + [64] * 4 + [128] * 4
    assert [r.paper for r in rows[:4]] == [2427, 2672, 2647, 2842]
    with pytest.raises(ValueError, match="guideline='G5'"):
        ch03.run_guideline("G5")
    with pytest.raises(ValueError, match="platform='tpu'"):
        ch03.run_guideline("G1", platform="tpu", device="cpu")


def test_guideline_networks_structure():
    x = torch.zeros(1, 64, 7, 7)
    assert ch03.g3_width("series", 4, 64) == 32 and ch03.g3_width("parallel", 4, 64) == 64
    assert ch03.g3_net("parallel", 4, 64)(x).shape == x.shape
    assert sum(isinstance(m, nn.Conv2d) for m in ch03.g3_net("series", 2, 64).modules()) == 20
    with_all, without = ch03.g4_net(8, True, True, blocks=1), ch03.g4_net(8, False, False, blocks=1)
    y = torch.randn(1, 32, 5, 5)
    assert count(with_all, y).macs == count(without, y).macs
    assert count(with_all, y).total.elementwise > count(without, y).total.elementwise == 0
    with pytest.raises(ValueError, match="kind='mixed'"):
        ch03.g3_net("mixed", 2, 64)


def test_unit_explorer_formula_matches_counter_and_reports_bad_groups():
    explorer = ch03.unit_explorer(measure=False)
    result = explorer.result
    assert result.error is None and result.formula.macs == result.counted.macs
    for values in (dict(version="V2", stride=2, M=116, H=14), dict(version="V1", stride=2, groups=4, M=272)):
        result = explorer.set(**values)
        assert result.error is None
        assert result.formula.macs == result.counted.macs and result.formula.params == result.counted.params
    result = explorer.set(version="V1", stride=1, M=240, groups=8)
    assert result.error is not None and "groups=8" in result.error


# --- exercises ----------------------------------------------------------------------------------


def _v2_unit_cost(H, W, N, M, stride):
    c = M // 2
    Ho, Wo = ((H + 1) // 2, (W + 1) // 2) if stride == 2 else (H, W)
    if stride == 1:
        return H * W * (2 * c * c + 9 * c), 2 * c * c + 9 * c + 6 * c
    macs = Ho * Wo * (9 * N + N * c) + H * W * N * c + Ho * Wo * (9 * c + c * c)
    return macs, 11 * N + N * c + 2 * c + N * c + 9 * c + c * c + 6 * c


class _Shuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        B, C, H, W = x.shape
        return x.view(B, self.groups, C // self.groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class _SwappedAxes(_Shuffle):
    def forward(self, x):
        B, C, H, W = x.shape
        return x.view(B, C // self.groups, self.groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class _V2(ShuffleV2Unit):
    """A learner's unit: the course's submodules (same names), forward written out."""

    def forward(self, x):
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], dim=1)
        else:
            out = torch.cat([self.left(x), self.right(x)], dim=1)
        return self.shuffle(out)


class _V2NoShuffle(_V2):
    def forward(self, x):
        left, right = x.chunk(2, dim=1) if self.stride == 1 else (self.left(x), x)
        return torch.cat([left, self.right(right)], dim=1)


class _V2WrongDownsampling(_V2):
    def forward(self, x):
        if self.stride == 1:
            return super().forward(x)
        return self.shuffle(torch.cat([self.right(x), self.right(x)], dim=1))  # forgot the left branch


class _V2WrongSplit(_V2):
    def forward(self, x):
        if self.stride == 2:
            return super().forward(x)
        return self.shuffle(torch.cat([x[:, 0::2], self.right(x[:, 1::2])], dim=1))


RIGHT = {
    "3.1": _Shuffle,
    "3.2": _V2,
    "3.3": lambda h, w, B: 2 * math.sqrt(h * w * B) + B / (h * w),
    "3.4": _v2_unit_cost,
}
WRONG = {
    "3.1": (_SwappedAxes, "the axes are swapped"),
    "3.2": (_V2NoShuffle, "missing channel shuffle"),
    "3.3": (lambda h, w, B: 2 * math.sqrt(h * w * B), "B / (h*w)"),
    "3.4": (lambda *a: (_v2_unit_cost(*a)[0], _v2_unit_cost(*a)[1] - 2 * (a[3] // 2) * 3 - (2 * a[2] + a[3] if a[4] == 2 else 0)),
            "BatchNorm2d(C) adds 2*C"),
}


@pytest.mark.parametrize("exercise_id", sorted(RIGHT))
def test_exercises_pass_right_answers_and_explain_wrong_ones(exercise_id):
    assert get_exercise(exercise_id).chapter == 3
    assert check(exercise_id, RIGHT[exercise_id], quiet=True).passed
    wrong, hint = WRONG[exercise_id]
    result = check(exercise_id, wrong, quiet=True)
    assert not result.passed and hint in result.message, result.message


@pytest.mark.parametrize("wrong, hint", [
    (_V2WrongDownsampling, "outputs match for stride 1 but not stride 2: check the downsampling branch"),
    (_V2WrongSplit, "wrong split"),
    (_V2NoShuffle, "missing channel shuffle"),
])
def test_shufflev2_forward_mistakes_get_their_message(wrong, hint):
    result = check("3.2", wrong, quiet=True)
    assert not result.passed and hint in result.message, result.message


def test_shuffle_layer_hidden_cases_catch_an_answer_for_the_shown_groups_only():
    """A layer right for groups 2-4 only (it hard-codes the inverse for 5 and 6) passes `check` and fails the grader."""
    from course.exercises import collect_outcomes, grade_outcomes

    class ShownOnly(_Shuffle):
        def forward(self, x):
            return super().forward(x) if self.groups <= 4 else x

    exercise = get_exercise("3.1")
    assert check("3.1", ShownOnly, quiet=True).passed
    cases = exercise.grading_cases(seed=0)
    outcomes = collect_outcomes(ShownOnly, exercise.kind, exercise.case_args(cases), call=exercise.run_case)
    points, message = grade_outcomes(exercise, outcomes, cases)
    assert points == 0 and "hidden case" in message


# --- the released notebook ---------------------------------------------------------------------


def test_student_notebook_is_released():
    student = nbformat.read(ROOT / "notebooks" / "03_channel_shuffle.ipynb", as_version=4)
    sources = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in sources and "NotImplementedError" in sources
