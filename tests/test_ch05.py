"""Chapter 5: attention blocks, their closed-form costs, the attention models and their twins.

Oracles: timm's models and blocks (same parameters, same outputs after copying weights), the
papers' tables (PVT-Tiny has no twin), fvcore (a tracing counter) and PyTorch itself.
"""

import math

import pytest
import torch
from torch import nn

from course.blocks import attention as blocks
from course.blocks.metaformer import SpatialReductionMixer, WindowAttentionMixer
from course.cost import attention as formulas
from course.cost import count, layer_formulas
from course.models import create_model, zoo


# --- blocks against PyTorch and timm ------------------------------------------------------------


def test_attention_matches_torch_multihead_attention(seeded):
    dim, heads = 48, 4
    ours = blocks.Attention(dim, heads).eval()
    ref = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    x = seeded(2, 17, dim)
    with torch.no_grad():
        expected = ref(x, x, x, need_weights=False)[0]
        for fused in (False, True):
            ours.fused = fused
            torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_window_partition_round_trip_and_layout():
    x = torch.arange(2 * 6 * 9 * 1, dtype=torch.float32).view(2, 6, 9, 1)
    windows = blocks.window_partition(x, 3)
    assert windows.shape == (2 * 2 * 3, 3, 3, 1)
    # Window 1 of image 0 is rows 0-2, columns 3-5.
    assert torch.equal(windows[1, :, :, 0], x[0, 0:3, 3:6, 0])
    assert torch.equal(blocks.window_reverse(windows, 3, 6, 9), x)
    with pytest.raises(ValueError, match="window=4 must divide"):
        blocks.window_partition(x, 4)


def test_window_partition_matches_timm(seeded):
    from timm.models.swin_transformer import window_partition, window_reverse

    x = seeded(2, 14, 21, 5)
    torch.testing.assert_close(blocks.window_partition(x, 7), window_partition(x, (7, 7)), rtol=0, atol=0)
    w = blocks.window_partition(x, 7)
    torch.testing.assert_close(blocks.window_reverse(w, 7, 14, 21), window_reverse(w, (7, 7), 14, 21), rtol=0, atol=0)


def test_shift_mask_matches_timm_and_blocks_only_across_regions():
    from timm.models.swin_transformer import SwinTransformerBlock

    ref = SwinTransformerBlock(32, (14, 14), num_heads=2, window_size=7, shift_size=3)
    mask = blocks.shifted_window_mask(14, 14, (7, 7), (3, 3))
    torch.testing.assert_close(mask, ref.attn_mask, rtol=0, atol=0)
    assert mask[0].abs().sum() == 0  # the top-left window holds one region: nothing masked
    assert (mask[-1] != 0).any()  # the bottom-right one holds four


def test_relative_position_index_matches_timm():
    from timm.models.swin_transformer import get_relative_position_index

    assert torch.equal(blocks.relative_position_index(7, 7, 7), get_relative_position_index(7, 7))


@pytest.mark.parametrize("hw, shift", [((14, 14), 3), ((9, 11), 3), ((9, 11), 0), ((7, 7), 3), ((7, 12), 3)])
def test_swin_block_matches_timm_including_padding_and_small_maps(hw, shift, seeded):
    """Maps the window does not divide are padded; maps no larger than it shrink the window."""
    from timm.models.swin_transformer import SwinTransformerBlock

    ref = SwinTransformerBlock(32, hw, num_heads=2, window_size=7, shift_size=shift).eval()
    ours = blocks.SwinBlock(32, 2, window=7, shift=shift).eval()
    ours.load_state_dict(ref.state_dict())
    x = seeded(2, *hw, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_swin_block_on_a_small_map_shrinks_the_window_without_shifting(seeded):
    block = blocks.SwinBlock(16, 2, window=7, shift=3).eval()
    assert block.attn.window == 7
    assert blocks.windows_for(5, 12, 7, 3) == ((5, 7), (0, 3))
    x = seeded(1, 5, 12, 16)
    with torch.no_grad():
        assert block(x).shape == (1, 5, 12, 16)


def test_swin_block_rejects_bad_shift():
    with pytest.raises(ValueError, match="shift=7"):
        blocks.SwinBlock(16, 2, window=7, shift=7)
    with pytest.raises(ValueError, match="heads=5"):
        blocks.SwinBlock(16, 5)


def test_patch_merging_matches_timm_on_odd_sizes(seeded):
    from timm.models.swin_transformer import PatchMerging

    ref = PatchMerging(8).eval()
    ours = blocks.PatchMerging(8).eval()
    ours.load_state_dict(ref.state_dict())
    x = seeded(2, 7, 9, 8)
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out, ref(x), atol=1e-6, rtol=1e-6)
    assert out.shape == (2, 4, 5, 16)


@pytest.mark.parametrize("sr_ratio, hw", [(8, (56, 56)), (4, (30, 31)), (1, (7, 7))])
def test_sra_matches_timm_pvt_v2_attention(sr_ratio, hw, seeded):
    from timm.models.pvt_v2 import Attention

    ref = Attention(64, num_heads=2, sr_ratio=sr_ratio, qkv_bias=True).eval()
    ours = blocks.SpatialReductionAttention(64, 2, sr_ratio).eval()
    ours.load_state_dict(ref.state_dict())
    x = seeded(1, hw[0] * hw[1], 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, hw), ref(x, list(hw)), atol=1e-5, rtol=1e-5)


def test_linear_sra_matches_timm(seeded):
    from timm.models.pvt_v2 import Attention

    ref = Attention(64, num_heads=2, linear_attn=True, qkv_bias=True).eval()
    ours = blocks.LinearSpatialReductionAttention(64, 2, 7).eval()
    ours.load_state_dict(ref.state_dict())
    x = seeded(1, 20 * 24, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, (20, 24)), ref(x, [20, 24]), atol=1e-5, rtol=1e-5)


def test_sra_with_a_ratio_larger_than_the_map_raises(seeded):
    sra = blocks.SpatialReductionAttention(32, 1, sr_ratio=8)
    with pytest.raises(ValueError, match="sr_ratio=8 is larger than the 4 x 6 map"):
        sra(seeded(1, 24, 32), (4, 6))
    with pytest.raises(ValueError, match="sr_ratio=8"):
        formulas.spatial_reduction_attention(4, 6, 32, 1, 8)


def test_fused_and_explicit_attention_agree_on_every_block(seeded):
    x = seeded(1, 64, 15, 13)
    for make in (lambda f: WindowAttentionMixer(64, 2, 7, 3, fused=f), lambda f: SpatialReductionMixer(64, 2, 2, fused=f)):
        torch.manual_seed(0)
        a = make(False).eval()
        b = make(True).eval()
        b.load_state_dict(a.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


# --- formulas == counter -------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
def test_global_attention_formula_equals_counter(fused, seeded):
    attn = blocks.Attention(96, 3, fused=fused)
    report = count(attn, seeded(2, 28 * 28, 96))
    cost = formulas.global_attention(28, 28, 96, 3, batch=2)
    assert (report.macs, report.params) == (cost.macs, cost.params)
    assert cost.macs == 2 * (4 * 784 * 96 ** 2 + 2 * 784 ** 2 * 96)


@pytest.mark.parametrize("hw", [(56, 56), (9, 11), (5, 5), (7, 20), (16, 16)])
@pytest.mark.parametrize("shift", [0, 3])
def test_window_attention_formula_equals_counter(hw, shift, seeded):
    mixer = WindowAttentionMixer(96, 3, 7, shift)
    report = count(mixer, seeded(1, 96, *hw))
    cost = formulas.window_attention(*hw, 96, 3, 7)
    assert (report.macs, report.params) == (cost.macs, cost.params)
    if hw == (56, 56):  # Liu et al. 2021, Eq. 2: 4hwC² + 2M²hwC
        assert cost.macs == 4 * 56 * 56 * 96 ** 2 + 2 * 49 * 56 * 56 * 96


@pytest.mark.parametrize("sr_ratio, hw", [(8, (56, 56)), (4, (30, 31)), (2, (14, 14)), (1, (7, 7))])
def test_sra_formula_equals_counter(sr_ratio, hw, seeded):
    report = count(blocks.SpatialReductionAttention(64, 2, sr_ratio), seeded(1, hw[0] * hw[1], 64), hw)
    cost = formulas.spatial_reduction_attention(*hw, 64, 2, sr_ratio)
    assert (report.macs, report.params) == (cost.macs, cost.params)


def test_linear_sra_formula_equals_counter(seeded):
    report = count(blocks.LinearSpatialReductionAttention(64, 2, 7), seeded(1, 56 * 56, 64), (56, 56))
    cost = formulas.linear_spatial_reduction_attention(56, 56, 64, 2, 7)
    assert (report.macs, report.params) == (cost.macs, cost.params)


def test_window_attention_is_linear_and_global_quadratic_in_tokens():
    small, large = (formulas.global_attention(28, 28, 64).macs, formulas.global_attention(56, 56, 64).macs)
    w_small, w_large = (formulas.window_attention(28, 28, 64).macs, formulas.window_attention(56, 56, 64).macs)
    assert w_large == 4 * w_small
    assert large > 4 * small * 3  # the T² term dominates at 56 x 56 with C = 64


def test_attention_scores_bytes():
    assert formulas.attention_scores_bytes(6401, 6401, 12) == 12 * 6401 ** 2 * 4


# --- the counter on fused attention ------------------------------------------------------------


@pytest.mark.slow
def test_counter_sees_fused_attention_that_other_counters_miss(seeded):
    """Same MACs fused or not; fvcore misses exactly the attention matmuls when fused, and a
    counter that hooks nn.Linear/nn.Conv2d misses them always."""
    from fvcore.nn import FlopCountAnalysis

    model = create_model("vit_small_patch16_224").eval()
    x = seeded(1, 3, 224, 224)
    T, C, depth = 197, 384, 12
    attention_matmuls = depth * 2 * T * T * C
    totals, fv = {}, {}
    for fused in (False, True):
        model.set_fused(fused)
        totals[fused] = count(model, x).macs
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        fv[fused] = analysis.total()
    assert totals[False] == totals[True]
    assert fv[False] - fv[True] == attention_matmuls
    hooked = sum(c.macs for c in layer_formulas(model, x).values())
    assert totals[True] - hooked == attention_matmuls


# --- whole models: twins, papers ----------------------------------------------------------------

TWINNED = ["swin_tiny_patch4_window7_224", "pvt_v2_b0", "vit_small_patch16_224", "vit_base_patch16_224"]


@pytest.mark.parametrize("name", TWINNED)
def test_parameters_match_the_papers(name, n_params):
    """The papers' parameter counts (the twins themselves: tests/test_twins.py)."""
    entry = zoo[name]
    model = create_model(name)
    n = n_params(model)
    head = sum(p.numel() for p in model.head.parameters())
    if name == "pvt_v2_b0":  # the PVTv2 paper counts the backbone without the classifier
        n -= head
    assert abs(n / 1e6 - entry.paper.params_m) / entry.paper.params_m < 0.03, n


@pytest.mark.slow
def test_pvt_tiny_matches_the_paper(seeded):
    """No twin in timm (only PVTv2): 13.2M parameters and 1.9 GFLOPs (= MACs), Wang et al. 2021."""
    model = create_model("pvt_tiny")
    report = count(model, seeded(1, 3, 224, 224))
    assert round(report.params / 1e6, 1) == zoo["pvt_tiny"].paper.params_m == 13.2
    assert round(report.macs / 1e9, 1) == zoo["pvt_tiny"].paper.macs_g == 1.9
    assert not report.uncounted


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_tiny_patch4_window7_224", "pvt_v2_b0", "vit_small_patch16_224"])
def test_counted_macs_match_the_papers(name, seeded):
    paper = zoo[name].paper
    report = count(create_model(name), seeded(1, 3, 224, 224))
    assert abs(report.macs / 1e9 - paper.macs_g) / paper.macs_g < 0.06, report.macs
    assert not report.uncounted


def test_vit_rejects_other_input_sizes(seeded):
    from course.models.vit import VisionTransformer

    vit = VisionTransformer(img_size=32, patch=16, dim=32, depth=1, heads=2)
    with pytest.raises(ValueError, match="for 32 x 32 input"):
        vit(seeded(1, 3, 48, 48))


def test_swin_runs_on_odd_resolutions(seeded):
    from course.models.swin import SwinTransformer

    model = SwinTransformer(dim=16, depths=(1, 1, 1, 1), heads=(1, 1, 1, 1), window=7, num_classes=3).eval()
    with torch.no_grad():
        assert model(seeded(1, 3, 100, 132)).shape == (1, 3)  # maps 25x33, 13x17, 7x9, 4x5


def test_zoo_entries():
    for name in TWINNED + ["pvt_tiny"]:
        entry = zoo[name]
        assert entry.chapter == 5 and entry.paper.citation
    assert zoo["pvt_tiny"].twin is None


# --- the chapter module: memory, sweeps, figures, explorer ----------------------------------------


def test_peak_memory_counts_live_tensors_on_cpu():
    from course.latency.memory import peak_memory_bytes

    def two_alive():  # a and b (4 MB each) alive together, then their sum: 12 MB
        a = torch.ones(1000, 1000)
        b = torch.ones(1000, 1000)
        return a + b

    def one_at_a_time():  # three 4 MB tensors, each freed before the next
        for _ in range(3):
            a = torch.ones(1000, 1000)
            del a

    assert peak_memory_bytes(two_alive) == 3 * 4_000_000
    assert peak_memory_bytes(one_at_a_time) == 4_000_000


def test_peak_memory_of_unfused_attention_holds_the_scores(seeded):
    """The explicit attention keeps the (T x T) scores: the peak exceeds their bytes."""
    from course.chapters.ch05 import attention_layer
    from course.latency.memory import peak_memory_bytes

    layer = attention_layer("global", C=32, heads=1).eval()
    x = seeded(1, 32, 32, 32)
    scores = formulas.attention_scores_bytes(1024, 1024, 1)
    assert scores <= peak_memory_bytes(layer, x) < 4 * scores


def test_vit_macs_formula_equals_the_counter(seeded):
    from course.chapters.ch05 import vit_macs
    from course.models.vit import VisionTransformer

    model = VisionTransformer(img_size=64, patch=16, dim=64, depth=2, heads=2, num_classes=10)
    assert count(model, seeded(1, 3, 64, 64)).macs == vit_macs(64, 16, C=64, depth=2, num_classes=10)["total"]


def test_vit_attention_table_at_1280():
    from course.chapters.ch05 import vit_attention_table

    rows = vit_attention_table()
    assert [r["tokens"] for r in rows] == [197, 6401, 102401]
    assert rows[1]["scores per block (MB)"] == 12 * 6401 ** 2 * 4 / 1e6
    assert rows[0]["attention share"] < 0.1 < 0.5 < rows[1]["attention share"]


def test_resolution_sweep_formulas_and_skips(seeded):
    from course.chapters.ch05 import attention_formula, attention_layer, resolution_sweep

    rows = resolution_sweep((64, 128), measure=True, max_measured_macs=2e7, budget_s=0.02, memory=False)
    assert len(rows) == 10 and {r["kind"] for r in rows} == {"global", "window", "sra", "linear", "cascaded"}
    for row in rows:
        h = row["h"]
        assert row["macs"] == count(attention_layer(row["kind"], 64, 1, 7, 8, h=h), seeded(1, 64, h, h)).macs
        assert (row["ms"] is None) == (row["macs"] > 2e7) == (row["timing"] is None)
    measured = [r for r in rows if r["timing"] is not None]
    assert all(r["timing"].samples >= 5 and r["timing"].threads == 1 for r in measured)
    by_resolution = {}
    for r in measured:  # the kinds of one resolution were measured in the same interleaved rounds
        by_resolution.setdefault(r["resolution"], set()).add(r["timing"].group)
    assert all(len(groups) == 1 for groups in by_resolution.values())
    from course.chapters.ch05 import sweep_table

    text = str(sweep_table(rows))
    assert "—" in text and "global" in text  # an unmeasured point shows a dash
    assert attention_formula("global", 32, 32).macs == formulas.global_attention(32, 32, 64).macs
    with pytest.raises(ValueError, match="kind='conv'"):
        attention_layer("conv")


def test_figures_build():
    from course.chapters.ch05 import cost_curves, resolution_sweep, window_figure

    fig = cost_curves(resolution_sweep((64, 128), measure=False))
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 5
    assert len(fig.legends) == 1  # one legend below the panels: it hides no point
    assert len(window_figure(8, 4).axes) == 3


def test_attention_explorer_checks_the_formula_and_refuses_huge_global_attention():
    from course.chapters.ch05 import attention_explorer

    explorer = attention_explorer(measure=False)
    assert explorer.matches is True
    for kind in ("window", "sra"):
        result = explorer.set(kind=kind, resolution=352, window=12, sr_ratio=4, heads=2)
        assert result.error is None and explorer.matches is True
        assert result.counted.macs == result.formula.macs
    result = explorer.set(kind="global", resolution=896)
    assert "not run here" in result.error and explorer.matches is None


# --- exercises and grading ----------------------------------------------------------------------


def test_chapter5_exercises_accept_right_and_reject_wrong_answers():
    from course.exercises import check

    def window_attention_macs(h, w, C, window):
        Mh, Mw = min(window, h), min(window, w)
        Hp, Wp = math.ceil(h / Mh) * Mh, math.ceil(w / Mw) * Mw
        return 4 * Hp * Wp * C * C + 2 * Mh * Mw * Hp * Wp * C

    assert check("5.3", window_attention_macs, quiet=True).passed
    wrong = check("5.3", lambda h, w, C, window: 4 * h * w * C * C + 2 * window ** 2 * h * w * C, quiet=True)
    assert not wrong.passed and "padded" in wrong.message
    # 5.1 (the mask) and 5.2 (SRA's forward) are tested in tests/test_exercises_ch05.py


# --- EfficientViT's attentions on the chapter's curves, and the attention kernels ----------------


@pytest.mark.parametrize("h", [8, 14, 15])
def test_linear_attention_formula_equals_counter_and_is_linear_in_tokens(h, seeded):
    from course.chapters.ch05 import attention_formula, attention_layer

    layer = attention_layer("linear", C=64)
    assert count(layer, seeded(1, 64, h, h)).macs == attention_formula("linear", h, h, 64).macs
    # exactly linear in the tokens: four times the tokens, four times the MACs
    assert attention_formula("linear", 2 * h, 2 * h, 64).macs == 4 * attention_formula("linear", h, h, 64).macs


def test_cascaded_attention_is_linear_in_windows_and_has_no_closed_form_here(seeded):
    from course.chapters.ch05 import attention_formula, attention_macs

    assert attention_macs("cascaded", 28) == 4 * attention_macs("cascaded", 14)  # 4 x the windows
    with pytest.raises(ValueError, match="no closed form"):
        attention_formula("cascaded", 14, 14)


def test_attention_kernels_same_macs_and_the_math_kernel_holds_the_scores():
    from course.chapters.ch05 import SDPA, attention_kernels, kernel_verdicts, kernels_table

    rows = attention_kernels((64, 256), d=32, heads=2, measure=False)
    assert [(r["tokens"], r["kernel"]) for r in rows] == [(64, "math"), (64, "fused"), (256, "math"), (256, "fused")]
    for T in (64, 256):
        math_row, fused = (r for r in rows if r["tokens"] == T)
        assert math_row["macs"] == fused["macs"] == 2 * 2 * T * T * 32  # Q Kᵀ and A V, per head
        scores = 2 * T * T * 4 / 1e6  # heads x T x T float32
        assert math_row["scores_MB"] == pytest.approx(scores)
        assert math_row["peak_MB"] >= scores  # the math kernel holds a score tensor
        assert fused["peak_MB"] < math_row["peak_MB"] and fused["written_MB"] < math_row["written_MB"]
        if T == 256:  # the output and its log-sum-exp only: far below the scores
            assert fused["peak_MB"] < scores / 4 and fused["written_MB"] < math_row["written_MB"] / 4
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 100, 16, generator=g) for _ in range(3))
    torch.testing.assert_close(SDPA("fused")(q, k, v), SDPA("math")(q, k, v), rtol=1e-5, atol=1e-5)
    assert "fused" in str(kernels_table(rows)) and kernel_verdicts(rows) == []  # nothing measured, nothing said
    with pytest.raises(ValueError, match="kernel='flash'"):
        SDPA("flash")


def test_written_bytes_counts_every_returned_tensor():
    from course.chapters.ch05 import written_bytes

    class TwoOps(nn.Module):
        def forward(self, x):
            return (x * 2).relu()

    assert written_bytes(TwoOps(), torch.zeros(10, 10)) == 2 * 100 * 4


def test_verdicts_are_written_from_the_measurements():
    from course.chapters.ch05 import verdicts
    from course.latency.timing import Timing

    def timing(ms, group=1):
        return Timing.from_samples([ms / 1e3 * f for f in (0.99, 1.0, 1.01, 1.0, 1.0)], calls=1, device="cpu",
                                   threads=1, group=group)

    rows = [dict(resolution=224, kind="global", macs=1000, timing=timing(10.0)),
            dict(resolution=224, kind="window", macs=100, timing=timing(5.0)),
            dict(resolution=224, kind="linear", macs=100, timing=timing(10.0))]
    text = verdicts(rows)
    assert text[0].startswith("224 input: On this device, window (Swin) is 2.0x faster than global (ViT)")
    assert "10x fewer MACs" in text[0]
    assert "same time within the noise" in text[1]
    assert "ReLU linear (EfficientViT-B) is 2.0x slower than window (Swin)" in text[2]
