"""The counter on timm models from families the course does not implement (issue 10).

Oracles: PyTorch's ``FlopCounterMode`` (its FLOPs / 2) on the same model built with timm's
fused attention off, and the counter's own real pass, compared on every field by
``CostReport.differences``. The sweep itself is :data:`course.cost.timm_sweep.SWEEP`.

The per-model tests are slow (a real pass and FlopCounterMode on each model; about two
minutes for the whole sweep on two cores) and stay out of ``make test-fast``.
"""

import pytest
import torch
from torch import nn

from course.cost import count
from course.cost.timm_sweep import SWEEP, build, flop_counter_macs

NAMES = [name for name, _ in SWEEP]


def test_sweep_is_broad_and_outside_the_zoo():
    from course.models import list_models, zoo

    families = {family for _, family in SWEEP}
    assert len(NAMES) == len(set(NAMES)) >= 40
    assert len(families) >= 25
    zoo_families = {zoo[name].family.lower() for name in list_models()}
    assert zoo_families, "the zoo lists no models"
    assert not {family.lower() for family in families} & zoo_families
    assert not set(NAMES) & set(list_models())


@pytest.mark.slow
def test_sweep_has_ten_models_under_half_a_gmac():
    timm = pytest.importorskip("timm")
    small = []
    for name in NAMES:
        with torch.device("meta"):  # no weights: only the counter's MACs are needed here
            model = timm.create_model(name, pretrained=False).eval()
        channels, height, width = model.pretrained_cfg["input_size"]
        if count(model, torch.empty(1, channels, height, width, device="meta")).macs < 0.5e9:
            small.append(name)
    assert len(small) >= 10, small


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_counter_equals_flop_counter_and_its_real_pass(name):
    pytest.importorskip("timm")
    model, x = build(name)
    meta, real = count(model, x), count(model, x, mode="real")
    assert meta.differences(real) == []
    assert not meta.notes and not meta.uncounted
    with torch.no_grad():
        assert meta.out_shape == tuple(model(x).shape)
    assert meta.params == sum(p.numel() for p in model.parameters())

    oracle = flop_counter_macs(model, x)
    if not any(isinstance(module, nn.LSTM) for module in model.modules()):
        assert meta.macs == oracle
        return
    # The one exception (Sequencer): on CPU, with oneDNN on (PyTorch's default), nn.LSTM
    # runs as the oneDNN kernel ``mkldnn_rnn_layer``, which FlopCounterMode charges nothing:
    # it misses exactly the LSTMs' MACs, which the counter charges (``lstm`` rows).
    lstm_macs = meta.by_operator()["lstm"]["macs"]
    assert lstm_macs > 0 and oracle == meta.macs - lstm_macs
    # With oneDNN off, PyTorch runs the LSTM step by step and FlopCounterMode sees it all.
    with torch.backends.mkldnn.flags(enabled=False):
        assert flop_counter_macs(model, x) == meta.macs
