"""Chapter 1's sweep helpers: kinds, MACs from the formula, the verdict written from the numbers."""

import pytest

from course.chapters import ch01
from course.cost import count



def test_layer_kind():
    assert ch01.layer_kind(3, 64, 64) == "depthwise conv"
    assert ch01.layer_kind(1) == "1x1 conv"
    assert ch01.layer_kind(5, 1, 64) == "dense conv (KxK)"
    assert ch01.layer_kind(3, 4, 64) == "dense conv (KxK)"  # a group conv is not depthwise


def test_latency_sweep_macs_agree_with_the_counter():
    import torch
    from torch import nn

    configs = [dict(H=9, W=7, N=8, M=8, K=3), dict(H=9, W=7, N=8, M=8, K=3, groups=8), dict(H=9, W=7, N=8, M=16, K=1)]
    rows = ch01.latency_sweep(configs, budget_s=0.01)
    assert [r["kind"] for r in rows] == ["dense conv (KxK)", "depthwise conv", "1x1 conv"]
    assert [r["label"] for r in rows] == ["3x3 8", "3x3 dw 8", "1x1 8"]
    for cfg, row in zip(configs, rows):
        layer = nn.Conv2d(cfg["N"], cfg["M"], cfg["K"], padding=cfg["K"] // 2, groups=cfg.get("groups", 1), bias=False)
        assert row["macs"] == count(layer, torch.zeros(1, cfg["N"], cfg["H"], cfg["W"])).macs
        assert row["timing"].samples >= 5
        assert row["gmacs_per_s"] == pytest.approx(row["macs"] / row["timing"].median_s / 1e9)
    with pytest.raises(ValueError, match="configs"):
        ch01.latency_sweep([configs[0], configs[0]], budget_s=0.01)


class FakeTiming:
    def __init__(self, noisy=False):
        self.noisy = noisy


def test_sweep_verdict_is_written_from_the_numbers():
    rows = [dict(kind="dense conv (KxK)", gmacs_per_s=40.0, timing=FakeTiming()),
            dict(kind="dense conv (KxK)", gmacs_per_s=20.0, timing=FakeTiming()),
            dict(kind="depthwise conv", gmacs_per_s=3.0, timing=FakeTiming(noisy=True)),
            dict(kind="1x1 conv", gmacs_per_s=25.0, timing=FakeTiming())]
    text = ch01.sweep_verdict(rows)
    assert "dense conv (KxK) 30.0; 1x1 conv 25.0; depthwise conv 3.0" in text
    assert "depthwise conv layers did 10.0x fewer MACs per second than the dense conv (KxK) layers" in text
    assert "1 of 4 timings noisy" in text
    even = [dict(kind="1x1 conv", gmacs_per_s=10.0, timing=FakeTiming()),
            dict(kind="depthwise conv", gmacs_per_s=9.0, timing=FakeTiming())]
    text = ch01.sweep_verdict(even)
    assert "within 1.11x of each other" in text and "not proportional" not in text and "noisy" not in text
    with pytest.raises(ValueError, match="rows"):
        ch01.sweep_verdict([])
