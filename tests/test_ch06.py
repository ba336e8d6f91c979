"""Chapter 6: MetaFormer blocks and mixers, PoolFormer's twin, the generic builder, the chapter.

Oracles: timm's ``poolformer_s12`` and its ``Pooling`` mixer, the MetaFormer paper's table,
PyTorch itself (convolution and pooling as reference computations), and the counter.
"""

import pytest
import torch
import torch.nn.functional as F

from course.blocks import metaformer as blocks
from course.cost import attention as formulas
from course.cost import count
from course.models import create_model, zoo
from course.models.metaformer import metaformer


def test_pooling_mixer_matches_timm(seeded):
    from timm.models.metaformer import Pooling

    x = seeded(2, 8, 7, 9)
    torch.testing.assert_close(blocks.PoolingMixer(3)(x), Pooling(3)(x), rtol=0, atol=0)


def test_shift_mixer_moves_a_quarter_of_a_third_each_way(seeded):
    x = seeded(1, 12, 5, 6)
    y = blocks.ShiftMixer(1 / 12)(x)
    torch.testing.assert_close(y[:, 0, :, :-1], x[:, 0, :, 1:])  # left
    torch.testing.assert_close(y[:, 1, :, 1:], x[:, 1, :, :-1])  # right
    torch.testing.assert_close(y[:, 2, :-1, :], x[:, 2, 1:, :])  # up
    torch.testing.assert_close(y[:, 3, 1:, :], x[:, 3, :-1, :])  # down
    assert (y[:, 0, :, -1] == 0).all() and (y[:, 3, 0, :] == 0).all()
    torch.testing.assert_close(y[:, 4:], x[:, 4:])
    with pytest.raises(ValueError, match="ratio"):
        blocks.ShiftMixer(0.5)


def test_spatial_mlp_mixes_tokens_and_fixes_the_size(seeded):
    mixer = blocks.SpatialMLPMixer(3, 4)
    x = seeded(2, 5, 3, 4)
    expected = x.reshape(2, 5, 12) @ mixer.fc.weight.T + mixer.fc.bias
    torch.testing.assert_close(mixer(x), expected.reshape(2, 5, 3, 4))
    with pytest.raises(ValueError, match="built for a 3 x 4 map"):
        mixer(seeded(1, 5, 4, 4))


def test_depthwise_mixer_is_a_grouped_convolution(seeded):
    mixer = blocks.DepthwiseConvMixer(6, 7)
    x = seeded(1, 6, 9, 9)
    torch.testing.assert_close(mixer(x), F.conv2d(x, mixer.conv.weight, mixer.conv.bias, padding=3, groups=6))


def test_make_mixer_rejects_unknown_names():
    with pytest.raises(ValueError, match="mixer name='conv'"):
        blocks.make_mixer("conv", 64)
    with pytest.raises(ValueError, match="mixer name='conv'"):
        formulas.mixer("conv", 8, 8, 64)


@pytest.mark.parametrize("name", formulas.MIXER_NAMES)
def test_mixer_formula_equals_counter(name, seeded):
    for h, w in [(14, 14), (9, 13)]:
        mixer = blocks.make_mixer(name, 64, 2, h, w, sr_ratio=2, shift=3)
        report = count(mixer, seeded(1, 64, h, w))
        cost = formulas.mixer(name, h, w, 64, heads=2, sr_ratio=2)
        assert (report.macs, report.params) == (cost.macs, cost.params), (name, h, w)
        with torch.no_grad():
            assert mixer(seeded(1, 64, h, w)).shape == (1, 64, h, w)


def test_block_output_depends_on_the_mixer(seeded):
    block = blocks.MetaFormerBlock(16, blocks.PoolingMixer(), layer_scale=None).eval()
    identity = blocks.MetaFormerBlock(16, blocks.IdentityMixer(), layer_scale=None).eval()
    identity.load_state_dict(block.state_dict())
    x = seeded(1, 16, 6, 6)
    with torch.no_grad():
        assert block(x).shape == x.shape
        # An identity mixer adds Norm(x) itself; pooling adds its neighbourhood mean minus x.
        assert not torch.allclose(block(x), identity(x))


@pytest.mark.parametrize("name", formulas.MIXER_NAMES)
def test_metaformer_cost_equals_counter_for_every_mixer(name, seeded):
    from course.chapters.ch06 import metaformer_cost

    depths, dims = (1, 1, 2, 1), (32, 64, 160, 256)
    model = metaformer(name, depths=depths, dims=dims, img_size=96)
    report = count(model, seeded(1, 3, 96, 96))
    cost = metaformer_cost(name, depths, dims, img_size=96)
    assert (report.macs, report.params) == (cost.macs, cost.params)
    assert not report.uncounted


def test_metaformer_takes_one_mixer_per_stage():
    model = metaformer(["pool", "pool", "attention", "attention"], depths=(1, 1, 1, 1), dims=(32, 64, 96, 128), img_size=64)
    assert isinstance(model.stages[0].blocks[0].token_mixer, blocks.PoolingMixer)
    assert isinstance(model.stages[3].blocks[0].token_mixer, blocks.AttentionMixer)
    with pytest.raises(ValueError, match="head_dim=32 must divide"):
        metaformer("attention", dims=(32, 64, 80, 128))


@pytest.mark.slow
def test_poolformer_matches_the_paper(n_params):
    """Yu et al.'s Table 1 (the twin itself: tests/test_twins.py)."""
    entry = zoo["poolformer_s12"]
    model = create_model("poolformer_s12")
    n = n_params(model)
    report = count(model, torch.zeros(1, 3, 224, 224))
    assert round(n / 1e6) == entry.paper.params_m == 12.0  # Yu et al. 2022, Table 1: 12M
    assert round(report.macs / 1e9, 1) == entry.paper.macs_g == 1.8  # 1.8G MACs
    assert entry.chapter == 6


# --- the chapter module ---------------------------------------------------------------------------


def test_mixer_table_names_are_mixers_and_zoo_models():
    from course.chapters.ch06 import mixer_table

    rows = mixer_table()
    assert {r["course_mixer"] for r in rows} == set(formulas.MIXER_NAMES)
    for row in rows:
        if row["zoo_name"]:
            assert row["zoo_name"] in zoo


def test_mixer_costs_and_compare_mixers():
    from course.chapters.ch06 import compare_mixers, mixer_costs, most_params_mixer

    for row in mixer_costs(h=14, C=32, heads=1, sr_ratio=2):
        assert (row["macs"], row["params"]) == (row["counted_macs"], row["counted_params"])
    rows = compare_mixers(("pool", "dwconv"), depths=(1, 1, 1, 1), img_size=64, budget_s=0.02)
    assert [r["mixer"] for r in rows] == ["pool", "dwconv"]
    assert all(r["macs"] == r["formula_macs"] and r["ms"] > 0 for r in rows)
    assert rows[0]["timing"].group == rows[1]["timing"].group  # measured in the same interleaved rounds
    from course.chapters.ch06 import mixers_table

    assert str(mixers_table(rows)).splitlines()[2].startswith("pool")
    assert compare_mixers(("pool",), depths=(1, 1, 1, 1), img_size=64, measure=False)[0]["timing"] is None
    assert most_params_mixer() == "spatial_mlp"  # its weight is (h·w)² per block


def test_metaformer_explorer_checks_the_formula():
    from course.chapters.ch06 import metaformer_explorer

    explorer = metaformer_explorer(measure=False)
    result = explorer.set(depth1=1, depth2=1, depth3=1, depth4=1, img_size=64, width=32)
    assert result.error is None and explorer.matches is True
    for mixer in ("attention", "window", "spatial_mlp", "shift"):
        explorer.set(mixer=mixer)
        assert explorer.matches is True, mixer


# --- exercises and grading ----------------------------------------------------------------------


def test_chapter6_exercises_accept_right_and_reject_wrong_answers():
    from course.exercises import check

    assert check("6.2", lambda h, w, C, pool_size: (pool_size ** 2 + 1) * h * w * C, quiet=True).passed
    no_sub = check("6.2", lambda h, w, C, pool_size: pool_size ** 2 * h * w * C, quiet=True)
    assert not no_sub.passed and "subtraction" in no_sub.message
    # 6.1 (the MetaFormer block) is tested in tests/test_exercises_ch06.py
    assert not check("6.3", "pool", quiet=True).passed
    assert "not a mixer name" in check("6.3", "mlp", quiet=True).message


# --- verdicts and EfficientFormerV2 ---------------------------------------------------------------


def test_mixer_verdicts_are_written_from_the_measurements():
    from course.chapters.ch06 import mixer_verdicts
    from course.latency.timing import Timing

    def timing(ms):
        return Timing.from_samples([ms / 1e3 * f for f in (0.99, 1.0, 1.01, 1.0, 1.0)], calls=1, device="cpu",
                                   threads=1, group=7)

    rows = [dict(mixer="identity", macs=100, timing=timing(10.0)), dict(mixer="pool", macs=100, timing=timing(20.0)),
            dict(mixer="attention", macs=300, timing=timing(20.2)), dict(mixer="shift", macs=100, timing=None)]
    text = mixer_verdicts(rows)
    assert len(text) == 2  # dwconv and window were not measured
    assert text[0].startswith("On this device, the identity MetaFormer is 2.0x faster than the pool one")
    assert text[1].startswith("On this device, the pool MetaFormer") and "3.0x fewer MACs" in text[1]


def test_efficientformerv2_layout_puts_attention_in_the_last_blocks_of_stages_3_and_4():
    from course.chapters.ch06 import efficientformerv2_layout
    from course.models.efficientformerv2 import CONFIGS

    for size, (widths, depths, _, num_vit) in CONFIGS.items():
        rows = efficientformerv2_layout(f"efficientformerv2_{size}")
        assert [r["width"] for r in rows] == list(widths)
        assert [r["attention blocks (3D)"] for r in rows] == [0, 0, num_vit, num_vit]
        assert [r["conv blocks (4D)"] + r["attention blocks (3D)"] for r in rows] == list(depths)
        assert [r["strided attention"] for r in rows] == [False, False, True, False]
        assert [r["attention in downsampling"] for r in rows] == [False, False, False, True]
        assert rows[2]["attention tokens"] == 49  # the 14 x 14 map attended at 7 x 7


@pytest.mark.slow
def test_efficientformerv2_table_matches_twin_and_paper():
    from course.chapters.ch06 import EFFICIENTFORMERV2_COLUMNS, efficientformerv2_table
    from course.tables import table

    (row,) = efficientformerv2_table(("efficientformerv2_s0",))
    assert row["params"] == row["twin params"] == 3_600_256
    assert row["max abs diff"] <= 1e-5 and abs(row["MACs vs paper"]) <= 0.02
    assert "efficientformerv2_s0" in str(table([row], EFFICIENTFORMERV2_COLUMNS))
