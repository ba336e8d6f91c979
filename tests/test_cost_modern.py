"""Closed-form costs of the 2023-2024 blocks (``course.cost.modern``) against the course counter.

Oracle: :func:`course.cost.count` run on the real block (MACs and parameters must agree
exactly), and hand-derived numbers for one case of each formula.
"""

import pytest
import torch

from course.blocks.linear_attention import LiteMLA
from course.blocks.uib import MobileMQA, MobileMQABlock, UniversalInvertedBottleneck
from course.cost import count
from course.cost import modern as cm

CASES = [
    # (block, input shape, formula)
    (lambda: UniversalInvertedBottleneck(24, 24, 3, 5, 1, 4.0), (1, 24, 15, 17),
     lambda: cm.uib(15, 17, 24, 24, 3, 5, 1, 4.0)),  # ExtraDW
    (lambda: UniversalInvertedBottleneck(24, 40, 5, 0, 2, 3.0, layer_scale=1e-5), (2, 24, 15, 17),
     lambda: cm.uib(15, 17, 24, 40, 5, 0, 2, 3.0, layer_scale=True, batch=2)),  # ConvNeXt-like, strided
    (lambda: UniversalInvertedBottleneck(24, 40, 0, 0, 1, 2.0), (1, 24, 14, 14),
     lambda: cm.uib(14, 14, 24, 40, 0, 0, 1, 2.0)),  # FFN
    (lambda: UniversalInvertedBottleneck(24, 40, 0, 3, 2, 6.0), (1, 24, 14, 14),
     lambda: cm.uib(14, 14, 24, 40, 0, 3, 2, 6.0)),  # inverted bottleneck, strided
    (lambda: UniversalInvertedBottleneck(20, 20, 3, 3, 2, 1.5), (1, 20, 9, 9),
     lambda: cm.uib(9, 9, 20, 20, 3, 3, 2, 1.5)),  # ExtraDW strided, odd map, mid rounded to 32
    (lambda: LiteMLA(64, 4), (1, 64, 9, 11), lambda: cm.relu_linear_attention(9, 11, 64, 4)),
    (lambda: LiteMLA(64, 8, (3, 5)), (2, 64, 7, 7), lambda: cm.relu_linear_attention(7, 7, 64, 8, (3, 5), batch=2)),
    (lambda: MobileMQA(160, 4, 64, 64, 2), (1, 160, 15, 13), lambda: cm.mobile_mqa(15, 13, 160, 4, 64, 64, 2)),
    (lambda: MobileMQA(96, 2, 32, 48, 1), (2, 96, 8, 8), lambda: cm.mobile_mqa(8, 8, 96, 2, 32, 48, 1, batch=2)),
    (lambda: MobileMQABlock(96, 2, 32, 48, 2), (1, 96, 9, 9), lambda: cm.mobile_mqa_block(9, 9, 96, 2, 32, 48, 2)),
    (lambda: MobileMQABlock(64, 4, 16, 16, 1, layer_scale=None), (1, 64, 6, 6),
     lambda: cm.mobile_mqa_block(6, 6, 64, 4, 16, 16, 1, layer_scale=False)),
]


@pytest.mark.parametrize("make_block, shape, formula", CASES)
def test_formula_equals_counter(make_block, shape, formula):
    report = count(make_block(), torch.zeros(shape))
    expected = formula()
    assert (report.macs, report.params) == (expected.macs, expected.params)
    assert report.out_shape == expected.out_shape
    assert not report.uncounted


def test_uib_by_hand():
    # ExtraDW, N = M = 32, K = 3 and 5, e = 4 (mid = 128), 14 x 14, stride 1:
    # start 14²·9·32 + expand 14²·32·128 + middle 14²·25·128 + project 14²·128·32
    cost = cm.uib(14, 14, 32, 32, 3, 5, 1, 4.0)
    assert cost.macs == 196 * (9 * 32 + 32 * 128 + 25 * 128 + 128 * 32)
    assert cost.params == (9 * 32 + 64) + (32 * 128 + 256) + (25 * 128 + 256) + (128 * 32 + 64)
    # The same depthwise kernel is e times cheaper before the expansion than after it.
    variants = cm.uib_variants(14, 14, 32, 32, K=3)
    ib, convnext = variants["inverted_bottleneck"], variants["convnext"]
    assert ib.macs - convnext.macs == 196 * 9 * (128 - 32)
    assert set(variants) == {"inverted_bottleneck", "convnext", "ffn", "extra_dw"}
    assert "ffn" not in cm.uib_variants(14, 14, 32, 64, K=3, stride=2)


def test_linear_attention_is_linear_in_tokens_and_softmax_is_not():
    rows = cm.attention_vs_resolution([224, 448, 896], C=128, heads=8, stride=16)
    assert [r["tokens"] for r in rows] == [196, 784, 3136]
    for small, large in zip(rows, rows[1:]):
        assert large["linear_macs"] == 4 * small["linear_macs"]  # 4x the tokens, exactly 4x the cost
        assert large["softmax_macs"] > 4 * small["softmax_macs"]  # the T² term
    # Hand count, T = 49, C = 64, 4 heads of d = 16, one 5x5 scale:
    T, C, d, D = 49, 64, 16, 64
    expected = T * C * 3 * D + T * 3 * D * (25 + d) + 2 * 4 * 2 * T * d * (d + 1) + T * 2 * D * C
    assert cm.relu_linear_attention(7, 7, 64, 4).macs == expected


def test_mqa_shares_keys_and_values_across_heads():
    one = cm.mobile_mqa(8, 8, 128, heads=1, key_dim=32, value_dim=32)
    four = cm.mobile_mqa(8, 8, 128, heads=4, key_dim=32, value_dim=32)
    T = 64
    # Going from 1 to 4 heads adds queries, scores and output, but no key or value projection.
    assert four.macs - one.macs == 3 * (T * 128 * 32 + T * T * 64 + T * 32 * 128)
    strided = cm.mobile_mqa(8, 8, 128, heads=4, key_dim=32, value_dim=32, kv_stride=2)
    assert strided.macs < four.macs  # 16 keys instead of 64


@pytest.mark.parametrize("call, name", [
    (lambda: cm.uib(14, 14, 32, 32, start_K=2), "start_K"),
    (lambda: cm.uib(14, 14, 32, 32, 0, 0, stride=2), "stride"),
    (lambda: cm.uib(14, 14, 32, 32, stride=3), "stride"),
    (lambda: cm.uib(14, 14, 32, 32, expansion=0), "expansion"),
    (lambda: cm.relu_linear_attention(7, 7, 64, 5), "heads"),
    (lambda: cm.mobile_mqa(7, 7, 64, heads=0), "heads"),
])
def test_bad_arguments_raise_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
