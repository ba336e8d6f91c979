"""Chapter 2: cheap convolutions (blocks, formulas), SqueezeNet and MobileNetV1 (against their
twins and the papers), the chapter's helpers, and its exercises (grading round trips: test_course_grading.py)."""

from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course.latency
from course.blocks.conv import ConvBNAct, DepthwiseConv, DepthwiseSeparableConv, Fire, GroupConv, PointwiseConv
from course.chapters import ch02
from course.cost import conv2d, count
from course.cost.separable import depthwise_conv, fire, group_conv, pointwise_conv, separable_conv, separable_ratio
from course.equivalence import randomize_weights
from course.exercises import check, get_exercise
from course.exercises.judge import compare_module_output
from course.latency import Timing
from course.models import create_model, list_models, load_twin_weights, zoo
from course.models import mobilenetv1, squeezenet

ROOT = Path(__file__).resolve().parents[1]


# --- blocks and formulas ---------------------------------------------------------------------


def test_hand_derived_costs():
    # 3x3 depthwise-separable 128 -> 128 at 56x56 (a MobileNet stage-2 block), by hand:
    dw, pw = 56 * 56 * 9 * 128, 56 * 56 * 128 * 128
    assert (dw, pw) == (3_612_672, 51_380_224)
    assert depthwise_conv(56, 56, 128, 3).macs == dw and depthwise_conv(56, 56, 128, 3).params == 9 * 128
    assert pointwise_conv(56, 56, 128, 128).macs == pw and pointwise_conv(56, 56, 128, 128).params == 128 * 128
    bare = separable_conv(56, 56, 128, 128, 3, batch_norm=False, activation=False)
    assert bare.macs == dw + pw and bare.params == 9 * 128 + 128 * 128
    # With two batch norms (scale + shift = 2 params per channel) and activations:
    full = separable_conv(56, 56, 128, 128, 3)
    assert full.params == bare.params + 2 * 128 + 2 * 128
    assert full.elementwise == 3 * 56 * 56 * 128 + 3 * 56 * 56 * 128
    # Stride 2: everything after the depthwise conv runs at 28x28.
    assert separable_conv(56, 56, 64, 128, 3, stride=2, batch_norm=False, activation=False).macs == 28 * 28 * 64 * (9 + 128)
    # Group conv: a quarter of the dense cost with G = 4.
    assert group_conv(56, 56, 128, 128, 3, G=4).macs * 4 == conv2d(56, 56, 128, 128, 3, bias=False).macs
    # Fire2 of SqueezeNet 1.0 at 55x55 (paper Table 1: 11,920 parameters).
    f = fire(55, 55, 96, 16, 64, 64)
    assert f.params == 96 * 16 + 16 + 16 * 64 + 64 + 9 * 16 * 64 + 64 == 11_920
    assert f.macs == 55 * 55 * (96 * 16 + 16 * 64 + 9 * 16 * 64) and f.out_shape == (1, 128, 55, 55)


@pytest.mark.parametrize("M, K", [(64, 3), (128, 3), (1024, 3), (32, 5), (16, 7), (8, 1)])
def test_separable_ratio_is_one_over_m_plus_one_over_k_squared(M, K):
    for H, N in ((56, 32), (14, 512), (7, 24)):
        ratio = Fraction(separable_conv(H, H, N, M, K, batch_norm=False, activation=False).macs,
                         conv2d(H, H, N, M, K, bias=False).macs)
        assert ratio == separable_ratio(M, K) == Fraction(1, M) + Fraction(1, K * K)


BARE_BLOCKS = [
    (lambda: DepthwiseConv(32, 3), (1, 32, 28, 28), lambda: depthwise_conv(28, 28, 32, 3)),
    (lambda: DepthwiseConv(48, 5, stride=2, bias=True), (2, 48, 17, 13), lambda: depthwise_conv(17, 13, 48, 5, 2, True, 2)),
    (lambda: PointwiseConv(64, 96), (1, 64, 14, 14), lambda: pointwise_conv(14, 14, 64, 96)),
    (lambda: PointwiseConv(16, 8, bias=True), (3, 16, 9, 7), lambda: pointwise_conv(9, 7, 16, 8, True, 3)),
    (lambda: GroupConv(64, 128, 3, groups=4), (1, 64, 20, 20), lambda: group_conv(20, 20, 64, 128, 3, 4)),
    (lambda: GroupConv(24, 36, 5, groups=3, stride=2, bias=True), (1, 24, 11, 11),
     lambda: group_conv(11, 11, 24, 36, 5, 3, stride=2, bias=True)),
    (lambda: nn.Sequential(DepthwiseConv(32, 3, 2), PointwiseConv(32, 64)), (1, 32, 30, 30),
     lambda: separable_conv(30, 30, 32, 64, 3, 2, batch_norm=False, activation=False)),
]


@pytest.mark.parametrize("make, shape, formula", BARE_BLOCKS)
def test_formula_equals_counter_on_every_field(make, shape, formula, seeded):
    block = make()
    report = count(block, seeded(*shape))
    assert report.total == formula()  # MACs, params, activations, bytes, elementwise, out shape
    assert report.params == sum(p.numel() for p in block.parameters())
    assert not report.uncounted


@pytest.mark.parametrize("N, M, K, stride, H", [(32, 64, 3, 1, 28), (64, 128, 3, 2, 29), (16, 16, 5, 1, 12)])
def test_separable_block_formula_equals_counter(N, M, K, stride, H, seeded):
    block = DepthwiseSeparableConv(N, M, K, stride)
    report = count(block, seeded(1, N, H, H))
    cost = separable_conv(H, H, N, M, K, stride)
    assert (report.macs, report.params, report.elementwise, report.out_shape) == (
        cost.macs, cost.params, cost.elementwise, cost.out_shape)
    assert report.params == sum(p.numel() for p in block.parameters())


@pytest.mark.parametrize("H, W, N, S, E1, E3", [(55, 55, 96, 16, 64, 64), (13, 13, 512, 64, 256, 256), (9, 7, 10, 3, 5, 4)])
def test_fire_formula_equals_counter(H, W, N, S, E1, E3, seeded):
    block = Fire(N, S, E1, E3)
    report = count(block, seeded(1, N, H, W))
    cost = fire(H, W, N, S, E1, E3)
    assert (report.macs, report.params, report.elementwise, report.out_shape) == (
        cost.macs, cost.params, cost.elementwise, cost.out_shape)
    assert report.params == sum(p.numel() for p in block.parameters())


def test_blocks_compute_what_they_claim(seeded):
    """Oracles from PyTorch itself: per-channel convs, per-group convs, the Fire concat."""
    x = seeded(2, 12, 10, 10)
    dw = DepthwiseConv(12, 3)
    per_channel = torch.cat([F.conv2d(x[:, c:c + 1], dw.weight[c:c + 1], padding=1) for c in range(12)], 1)
    torch.testing.assert_close(dw(x), per_channel)

    gc = GroupConv(12, 6, 3, groups=3)
    per_group = torch.cat([F.conv2d(x[:, 4 * g:4 * g + 4], gc.weight[2 * g:2 * g + 2], padding=1) for g in range(3)], 1)
    torch.testing.assert_close(gc(x), per_group)

    sep = DepthwiseSeparableConv(12, 20, 3, stride=2).eval()
    y = sep(x)
    assert y.shape == (2, 20, 5, 5) and (y >= 0).all()
    manual = F.relu(sep.bn_pw(sep.conv_pw(F.relu(sep.bn_dw(F.conv2d(x, sep.conv_dw.weight, stride=2, padding=1, groups=12))))))
    torch.testing.assert_close(y, manual)

    fm = Fire(12, 4, 6, 8)
    s = F.relu(fm.squeeze(x))
    torch.testing.assert_close(fm(x), torch.cat([F.relu(fm.expand1x1(s)), F.relu(fm.expand3x3(s))], 1))
    assert ConvBNAct(3, 8, 3, stride=2)(seeded(1, 3, 15, 15)).shape == (1, 8, 8, 8)


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda: GroupConv(30, 64, 3, groups=4), ("groups=4", "N=30")),
        (lambda: GroupConv(32, 30, 3, groups=4), ("groups=4", "M=30")),
        (lambda: GroupConv(32, 32, 4), ("K=4",)),
        (lambda: GroupConv(32, 32, 3, groups=0), ("groups",)),
        (lambda: DepthwiseConv(0), ("N=0",)),
        (lambda: DepthwiseConv(8, 3, stride=0), ("stride",)),
        (lambda: PointwiseConv(8, -1), ("M=-1",)),
        (lambda: Fire(96, 0, 64, 64), ("S=0",)),
        (lambda: Fire(96, 16, 64, 0), ("E3=0",)),
        (lambda: ConvBNAct(6, 8, 3, groups=4), ("groups=4", "N=6")),
        (lambda: group_conv(8, 8, 30, 64, 3, G=4), ("G=4", "N=30")),
        (lambda: group_conv(8, 8, 32, 30, 3, G=4), ("G=4", "M=30")),
        (lambda: depthwise_conv(8, 8, 0), ("N",)),
        (lambda: fire(8, 8, 16, 0, 4, 4), ("S",)),
        (lambda: separable_ratio(0, 3), ("M",)),
        (lambda: mobilenetv1.MobileNetV1(alpha=0), ("alpha",)),
        (lambda: mobilenetv1.input_resolution(1.5), ("rho",)),
        (lambda: ch02.build_variant("dense", 8, 8, 8, 3, 1), ("variant",)),
        (lambda: ch02.variant_costs(8, 16, 16, 3, G=3), ("G=3",)),
    ],
)
def test_bad_configurations_name_the_parameter(make, names):
    with pytest.raises(ValueError) as info:
        make()
    for name in names:
        assert name in str(info.value)


# --- models: zoo, twins, papers ----------------------------------------------------------------

TWINNED = ["squeezenet1_0", "squeezenet1_1", "mobilenetv1_100"]


def test_zoo_entries():
    names = list_models(chapter=2)
    assert names == ["mobilenetv1_025", "mobilenetv1_050", "mobilenetv1_075", "mobilenetv1_100",
                     "squeezenet1_0", "squeezenet1_1"]
    assert {n: zoo[n].twin for n in TWINNED} == {
        "squeezenet1_0": "torchvision:squeezenet1_0", "squeezenet1_1": "torchvision:squeezenet1_1",
        "mobilenetv1_100": "timm:mobilenetv1_100"}
    for name in names:
        entry = zoo[name]
        assert entry.paper.citation and entry.paper.convention and entry.paper.top1
        assert ("Howard" in entry.paper.citation) == name.startswith("mobilenet")
        assert "Iandola" in entry.paper.citation or name.startswith("mobilenet")


def test_name_maps_are_the_documented_ones():
    sq = squeezenet.twin_mapping(create_model("squeezenet1_0"))
    assert sq["features.conv1.weight"] == "features.0.weight"
    assert sq["features.fire2.squeeze.weight"] == "features.3.squeeze.weight"
    assert sq["features.fire9.expand3x3.bias"] == "features.12.expand3x3.bias"
    assert sq["classifier.conv10.bias"] == "classifier.1.bias"
    assert squeezenet.twin_mapping(create_model("squeezenet1_1"))["features.fire4.squeeze.weight"] == "features.6.squeeze.weight"
    mb = mobilenetv1.twin_mapping(create_model("mobilenetv1_100"))
    assert mb["stem.conv.weight"] == "conv_stem.weight" and mb["stem.bn.running_var"] == "bn1.running_var"
    assert mb["blocks.0.conv_dw.weight"] == "blocks.0.0.conv_dw.weight"
    assert mb["blocks.2.bn_dw.bias"] == "blocks.1.1.bn1.bias"
    assert mb["blocks.10.conv_pw.weight"] == "blocks.3.5.conv_pw.weight"
    assert mb["blocks.12.bn_pw.num_batches_tracked"] == "blocks.4.1.bn2.num_batches_tracked"
    assert mb["classifier.weight"] == "classifier.weight"
    assert len(set(mb.values())) == len(mb)


def test_compare_with_twin_reports_what_it_compared():
    """The chapter's helper (the twins themselves: tests/test_twins.py)."""
    result = ch02.compare_with_twin("squeezenet1_1", seed=0, size=64)
    assert result["course_params"] == result["twin_params"] == 1_235_496
    assert result["max_abs_diff"] <= 1e-5 and result["input"].shape == (2, 3, 64, 64)
    model, twin = result["course"], result["twin"]
    with torch.no_grad():
        out = model(result["input"])
        next(p for p in model.parameters() if p.dim() == 4).mul_(1.5)
        assert (model(result["input"]) - out).abs().max() > 1e-4  # the weights were the twin's


@pytest.mark.slow
def test_mobilenet_with_relu_is_the_papers_text_and_timm_with_relu(seeded):
    import timm

    twin = timm.create_model("mobilenetv1_100", pretrained=False, act_layer="relu").eval()
    randomize_weights(twin, seed=3)
    model = create_model("mobilenetv1_100", act=nn.ReLU).eval()
    load_twin_weights(model, twin, "mobilenetv1_100")
    x = seeded(1, 3, 160, 160)
    with torch.no_grad():
        assert (model(x) - twin(x)).abs().max() <= 1e-5
        relu6 = create_model("mobilenetv1_100").eval()
        load_twin_weights(relu6, twin, "mobilenetv1_100")
        assert (relu6(x) - twin(x)).abs().max() > 1e-4  # the activation matters with these weights


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1", "mobilenetv1_100", "mobilenetv1_075",
                                  "mobilenetv1_050", "mobilenetv1_025"])
def test_macs_within_two_percent_of_the_paper(name):
    entry = zoo[name]
    size = entry.paper.input_size
    report = count(create_model(name), torch.zeros(1, 3, size, size))
    assert abs(report.macs / 1e9 / entry.paper.macs_g - 1) <= 0.02, (report.macs, entry.paper.macs_g)
    # Parameters: exact for SqueezeNet (paper Table 1 / torchvision), to the paper's 0.1 M rounding for MobileNet.
    if name.startswith("squeezenet"):
        assert report.params == round(entry.paper.params_m * 1e6)
    else:
        assert abs(report.params / 1e6 - entry.paper.params_m) <= 0.05


def test_mobilenet_resolution_multiplier_matches_table7():
    rows = ch02.mobilenet_grid(alphas=(1.0,), resolutions=(224, 192, 160, 128))
    assert [mobilenetv1.input_resolution(rho) for rho in (1, 6 / 7, 5 / 7, 4 / 7)] == [224, 192, 160, 128]
    assert len({r["params"] for r in rows}) == 1  # resolution does not change parameters
    for row in rows:
        assert row["paper_macs"] == mobilenetv1.PAPER_TABLE7[row["resolution"]][1]
        assert abs(row["macs"] / 1e6 / row["paper_macs"] - 1) <= 0.02


def test_mobilenet_paper_table2_breakdown():
    """Paper Table 2: 94.86% of the Mult-Adds in 1x1 convs, 3.06% in depthwise convs."""
    report = count(create_model("mobilenetv1_100"), torch.zeros(1, 3, 224, 224))
    share = {kind: 100 * sum(r["macs"] for r in report.rows() if r["module"].endswith(kind)) / report.macs
             for kind in ("conv_pw", "conv_dw")}
    assert round(share["conv_pw"], 2) == 94.86 and round(share["conv_dw"], 2) == 3.06


def test_squeezenet_1_1_is_about_2_4x_cheaper():
    """Release notes: "2.4x less computation than SqueezeNet v1.0" (at 224: 0.819 / 0.349)."""
    x = torch.zeros(1, 3, 224, 224)
    ratio = count(create_model("squeezenet1_0"), x).macs / count(create_model("squeezenet1_1"), x).macs
    assert round(ratio, 1) == 2.3 or round(ratio, 1) == 2.4


def test_width_rounding():
    assert [mobilenetv1.width(1024, a) for a in (1, 0.75, 0.5, 0.25)] == [1024, 768, 512, 256]
    assert mobilenetv1.width(32, 0.25) == 8 and mobilenetv1.width(32, 0.1) == 8 and mobilenetv1.width(100, 0.5) == 48


# --- chapter helpers ---------------------------------------------------------------------------


@pytest.fixture
def fake_measure(monkeypatch):
    """Instant, deterministic "timings" (timing itself is tested in test_latency.py)."""
    calls = []

    def measure(module, *inputs, budget_s=1.0, threads=None, device=None):
        calls.append(module)
        macs = count(module, *inputs).macs
        return Timing(median_s=1e-3 + macs * 1e-11, iqr_s=0.0, runs=5, device="cpu", threads=threads or 1)

    def interleaved(cases, budget_s=1.0, threads=None, device=None):
        return {name: measure(fn, *inputs, threads=threads) for name, (fn, inputs) in cases.items()}

    monkeypatch.setattr(course.latency, "measure", measure)
    monkeypatch.setattr(course.latency, "measure_interleaved", interleaved)
    monkeypatch.setattr(ch02, "measure", measure)
    return calls


def test_variant_costs_ratios():
    costs = ch02.variant_costs(H=28, N=64, M=128, K=3, G=8)
    assert costs["group"].macs * 8 == costs["standard"].macs
    assert Fraction(costs["separable"].macs, costs["standard"].macs) == separable_ratio(128, 3)
    for variant in ch02.VARIANTS:
        module, (x,) = ch02.build_variant(variant, 28, 64, 128, 3, 8)
        assert count(module, x).total == costs[variant]


def test_explorer_headless(fake_measure):
    explorer = ch02.separable_explorer(budget_s=0.01)
    assert explorer.config == dict(variant="standard", H=56, N=128, M=128, K=3, G=4)
    assert explorer.result.formula.macs == explorer.result.counted.macs == 56 * 56 * 9 * 128 * 128
    rows = {r["variant"]: r for r in explorer.comparison}
    assert rows["standard"]["ms"] is not None and rows["separable"]["ms"] is None
    assert rows["separable"]["macs_ratio"] == pytest.approx(1 / 128 + 1 / 9)
    assert rows["group"]["params_ratio"] == pytest.approx(1 / 4)

    result = explorer.set(variant="separable", K=5)
    assert result.formula.macs == result.counted.macs == 56 * 56 * 128 * (25 + 128)
    explorer.set(variant="standard")
    rows = {r["variant"]: r for r in explorer.comparison}
    assert rows["separable"]["ms"] is not None and rows["separable"]["latency_ratio"] < 1
    assert explorer._comparison in explorer.widget.children

    result = explorer.set(variant="group", N=16, G=32)  # G does not divide N
    assert result.error and "G=32" in result.error and explorer.comparison == []


def test_measure_variants_and_channels_last(fake_measure):
    rows = ch02.measure_variants([dict(H=28, N=64, M=64, K=3)], budget_s=0.01, threads=1)
    (row,) = rows
    assert row["macs_ratio"] == pytest.approx(1 / 64 + 1 / 9)
    assert row["separable_macs"] == row["depthwise_macs"] + row["pointwise_macs"]
    assert row["latency_ratio"] == pytest.approx(row["separable_ms"] / row["standard_ms"])
    assert row["speedup"].value == pytest.approx(1 / row["latency_ratio"]) and row["noisy"] is False
    assert row["sentence"].startswith("On this device, the separable conv (3x3, 64->64 @28) is ")
    assert "faster than the standard conv" in row["sentence"] and "fewer MACs" in row["sentence"]
    assert 0 < row["dw_time_share"] < 1
    text = str(ch02.variants_table(rows))
    assert "3x3 64->64 @28" in text and "measured speed-up" in text
    rows = ch02.channels_last_effect([dict(H=14, N=32, M=32, K=3)], budget_s=0.01)
    assert rows[0]["depthwise_speedup"] == pytest.approx(rows[0]["depthwise_nchw_ms"] / rows[0]["depthwise_nhwc_ms"])
    bpm = ch02.bytes_per_mac(56, 128, 128, 3)
    assert bpm["depthwise"] > 50 * bpm["standard"]  # the depthwise conv's intensity is tiny


def test_grid_and_plots(fake_measure):
    rows = ch02.mobilenet_grid(alphas=(1.0, 0.25), resolutions=(224, 128), measure_latency=True, budget_s=0.01)
    by = {(r["alpha"], r["resolution"]): r for r in rows}
    assert by[(1.0, 128)]["paper_top1"] == 64.4 and by[(0.25, 224)]["paper_top1"] == 50.6
    assert by[(0.25, 128)]["paper_top1"] is None  # neither Table 6 nor Table 7 has it
    assert all(r["ms"] is not None for r in rows)
    fig = ch02.plot_alpha_rho(rows)
    assert len(fig.axes) == 2 and [c.get_label() for c in fig.axes[1].containers] == ["alpha=1", "alpha=0.25"]
    assert len(ch02.plot_alpha_rho([dict(r, ms=None) for r in rows]).axes) == 1
    bars = ch02.plot_ratios(ch02.measure_variants([dict(H=14, N=32, M=32, K=3)], budget_s=0.01))
    assert len(bars.axes[0].patches) == 2


def test_zoo_table_without_timing():
    rows = ch02.zoo_table(["mobilenetv1_050"], measure_latency=False)
    (row,) = rows
    assert row["course_params"] == 1_331_592 and row["twin_params"] is None and row["max_abs_diff"] is None
    assert abs(row["course_macs"] / 1e9 / row["paper_macs_g"] - 1) < 0.02
    text = str(ch02.format_zoo_table(rows))
    assert "mobilenetv1_050" in text and "1,331,592 / — / 1.3 M" in text


# --- exercises ---------------------------------------------------------------------------------


def separable_cost(H, W, N, M, K, stride):
    Ho, Wo = (H + 2 * (K // 2) - K) // stride + 1, (W + 2 * (K // 2) - K) // stride + 1
    return Ho * Wo * N * (K * K + M), K * K * N + N * M


class MyFire(nn.Module):
    def __init__(self, N, S, E1, E3):
        super().__init__()
        self.squeeze = nn.Conv2d(N, S, 1)
        self.expand1x1 = nn.Conv2d(S, E1, 1)
        self.expand3x3 = nn.Conv2d(S, E3, 3, padding=1)

    def branches(self, x):
        s = self.squeeze(x).relu()
        return self.expand1x1(s).relu(), self.expand3x3(s).relu()

    def forward(self, x):
        return torch.cat(self.branches(x), 1)


class CatOrderSwapped(MyFire):
    def forward(self, x):
        e1, e3 = self.branches(x)
        return torch.cat([e3, e1], 1)


class NoExpandReLU(MyFire):
    def forward(self, x):
        s = self.squeeze(x).relu()
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)


class SqueezeExpandSwapped(nn.Module):  # expands first, then squeezes: the convs' shapes differ
    def __init__(self, N, S, E1, E3):
        super().__init__()
        self.expand1x1 = nn.Conv2d(N, E1, 1)
        self.expand3x3 = nn.Conv2d(N, E3, 3, padding=1)
        self.squeeze = nn.Conv2d(E1 + E3, S, 1)

    def forward(self, x):
        return self.squeeze(torch.cat([self.expand1x1(x).relu(), self.expand3x3(x).relu()], 1)).relu()


def speedup_table(pairs):
    rows = []
    for p in pairs:
        speedup, ratio = p["baseline_ms"] / p["candidate_ms"], p["baseline_macs"] / p["candidate_macs"]
        rows.append((p["name"], speedup, ratio, speedup > ratio))
    return rows


def test_exercises_accept_right_answers_and_explain_wrong_ones():
    from course.exercises.ch02 import mobilenet_depthwise_share

    assert check("2.1", separable_cost, quiet=True).passed
    assert check("2.2", MyFire, quiet=True).passed
    assert check("2.3", mobilenet_depthwise_share(0.25), quiet=True).passed
    assert check("2.4", speedup_table, quiet=True).passed

    def pointwise_at_input(H, W, N, M, K, stride):
        Ho, Wo = (H + 2 * (K // 2) - K) // stride + 1, (W + 2 * (K // 2) - K) // stride + 1
        return Ho * Wo * K * K * N + H * W * N * M, K * K * N + N * M

    result = check("2.1", pointwise_at_input, quiet=True)
    assert not result.passed and "stride belongs to the depthwise conv" in result.message
    result = check("2.1", lambda H, W, N, M, K, s: ((H // s) * (W // s) * K * K * N * M, K * K * N * M), quiet=True)
    assert not result.passed and "standard K x K conv" in result.message
    result = check("2.3", mobilenet_depthwise_share(1.0), quiet=True)
    assert not result.passed and "alpha = 1" in result.message
    assert "percentage" in check("2.3", mobilenet_depthwise_share(0.25) / 100, quiet=True).message
    assert "not attempted" in check("2.3", None, quiet=True).message


@pytest.mark.parametrize("module, message", [
    (CatOrderSwapped, "the concatenation order: the 1 x 1 branch first"),
    (NoExpandReLU, "none can be negative"),
    (SqueezeExpandSwapped, "squeeze is the 1 x 1 conv N -> S that comes first"),
])
def test_fire_mistakes_get_their_message(module, message):
    result = check("2.2", module, quiet=True)
    assert not result.passed and message in result.message, result.message


def test_fire_exercise_counts_macs_and_params_like_the_formula():
    """The expected side of 2.2 is the course's Fire: its counted MACs and parameters are the
    closed form H*W*(N*S + S*E1 + 9*S*E3) and N*S + S*E1 + 9*S*E3 + S + E1 + E3."""
    from course.cost import separable

    e = get_exercise("2.2")
    cases = e.grading_cases(seed=3)
    for case, want in zip(cases, e.expected_for(cases)):
        _, _, H, W = case["input"]
        cost = separable.fire(H, W, case["N"], case["S"], case["E1"], case["E3"])
        assert (want["macs"], want["params"]) == (cost.macs, cost.params)
        assert compare_module_output(want, e.run_case(MyFire, case)) is None


def test_fire_exercise_reports_a_module_the_counter_sees_differently():
    class FunctionalFire(MyFire):  # right outputs, but the 3 x 3 runs twice: the counter sees more MACs
        def forward(self, x):
            s = self.squeeze(x).relu()
            self.expand3x3(s)
            return torch.cat([self.expand1x1(s).relu(), self.expand3x3(s).relu()], 1)

    result = check("2.2", FunctionalFire, quiet=True)
    assert not result.passed and "the counter finds" in result.message


def test_speedup_table_messages():
    def inverted(pairs):
        return [(name, 1 / s, r, v) for name, s, r, v in speedup_table(pairs)]

    def verdict_flipped(pairs):
        return [(name, s, r, not v) for name, s, r, v in speedup_table(pairs)]

    assert "you divided the other way" in check("2.4", inverted, quiet=True).message
    assert "speedup > macs_ratio" in check("2.4", verdict_flipped, quiet=True).message
    e = get_exercise("2.4")
    first = e.expected()[0]
    assert [row[3] for row in first] == [False, False]  # the public case's separable conv: 5.2x for 8.4x fewer MACs


NOTEBOOK = "02_separable_group_conv.ipynb"


def test_zoo_table_reuses_comparisons(monkeypatch):
    sentinel = {"course": create_model("squeezenet1_1").eval(), "twin": create_model("squeezenet1_1").eval(),
                "course_params": 1, "twin_params": 2, "max_abs_diff": 0.5}
    monkeypatch.setattr(ch02, "compare_with_twin", lambda name: pytest.fail("should reuse the comparison"))
    (row,) = ch02.zoo_table(["squeezenet1_1"], measure_latency=False, comparisons={"squeezenet1_1": sentinel})
    assert (row["course_params"], row["twin_params"], row["max_abs_diff"]) == (1, 2, 0.5)


def test_separable_verdict_is_written_from_the_numbers():
    from course.latency.compare import Speedup

    def row(H, value, low, high, macs_ratio, noisy=False):
        return dict(H=H, N=128, M=128, K=3, macs_ratio=macs_ratio, noisy=noisy,
                    speedup=Speedup(value=value, low=low, high=high, paired=True, noisy=noisy))

    ratio = 1 / 8.4
    text = ch02.separable_verdict([row(56, 3.0, 2.8, 3.2, ratio), row(28, 8.5, 8.0, 9.0, ratio),
                                   row(14, 10.0, 9.5, 10.5, ratio)])
    assert "1 of 3 layers was faster by less than the MACs ratio predicts (3x3 128->128 @56: 3.0x for 8.4x fewer MACs)" in text
    assert "1 of 3 layers was faster by about what the MACs ratio predicts" in text
    assert "1 of 3 layers was faster by more than the MACs ratio predicts (3x3 128->128 @14: 10.0x" in text
    assert "noisy" not in text
    text = ch02.separable_verdict([row(56, 3.0, 2.8, 3.2, ratio, noisy=True), row(28, 3.0, 2.8, 3.2, ratio)])
    assert text.startswith("On this device the separable conv: 2 of 2 layers were faster by less") and "noisy" in text
    with pytest.raises(ValueError, match="rows"):
        ch02.separable_verdict([])


def test_mobilenet_v1_diagram_from_block_equals_from_config():
    from course.diagrams import mobilenet_v1_diagram

    fig = mobilenet_v1_diagram(DepthwiseSeparableConv(128, 256, K=5, stride=2))
    assert fig.diagram == mobilenet_v1_diagram(N=128, M=256, K=5, stride=2).diagram
    assert "depthwise 5x5 /2, 128" in fig.diagram.boxes and fig.diagram.output == "(M=256, H/2, W/2)"
    drawn = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert set(fig.diagram.boxes) <= set(drawn)


@pytest.mark.parametrize("exercise_id, answer", [("2.2", MyFire), ("2.4", speedup_table)])
def test_drawn_cases_pass_for_a_right_answer(exercise_id, answer):
    from course.exercises import collect_outcomes, grade_outcomes

    e = get_exercise(exercise_id)
    cases = e.grading_cases(seed=11)
    assert len(cases) == len(e.cases) + len(e.hidden_cases) + e.n_drawn
    if e.kind == "module":
        outcomes = [{"status": "ok", "value": e.run_case(answer, case)} for case in cases]
    else:
        outcomes = [{"status": "ok", "value": [list(row) for row in answer(**case)]} for case in cases]
    points, message = grade_outcomes(e, outcomes, cases)
    assert points == e.points, message
