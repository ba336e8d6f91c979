"""course.compression: pruning, quantization, distillation, search, early exit, shipped weights.

Oracles: torch.nn.utils.prune, closed-form MACs (course.cost.conv2d sums derived by hand for the
pruned widths), PyTorch's MinMaxObserver and fake_quantize_per_tensor_affine, PyTorch's quantized
Linear (fbgemm), float arithmetic on dequantized values, hand-written KL and cross-entropy, brute
force over NetworkX-free loops, and the manifest written when the weights were made.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course.compression import distillation, early_exit, pruning, quantization, search
from course.compression.nets import EarlyExitNet, ResNetLite, SearchNet, check_spec
from course.cost import conv2d, count, linear

X = torch.zeros(1, 3, 32, 32)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(widths=(16, 32, 64), seed=0):
    torch.manual_seed(seed)
    return ResNetLite(widths).eval()


# --- nets ------------------------------------------------------------------------------------------


def resnetlite_macs(widths, H=32, classes=10):
    """Closed form: stem at H, then per stage a strided BasicBlock (two 3x3 convs and a 1x1
    projection shortcut) halving H, and the classifier; BN and ReLU carry no MACs."""
    total = conv2d(H, H, 3, widths[0], 3, bias=False).macs
    N = widths[0]
    for M in widths:
        total += conv2d(H, H, N, M, 3, stride=2, bias=False).macs  # conv1
        H //= 2
        total += conv2d(H, H, M, M, 3, bias=False).macs  # conv2
        total += conv2d(H * 2, H * 2, N, M, 1, stride=2, bias=False).macs  # shortcut
        N = M
    return total + linear(N, classes).macs


@pytest.mark.parametrize("widths", [(16, 32, 64), (8, 16, 32), (32, 64, 128), (5, 7, 9)])
def test_resnetlite_macs_match_the_closed_form(widths):
    assert count(ResNetLite(widths), X).macs == resnetlite_macs(widths)


def test_spec_validation_names_the_problem():
    assert check_spec([[3, 1, 16, 2, 0]]) == [(3, 1, 16, 2, 0)]
    for spec, match in [([], "non-empty"), ([[4, 1, 16, 2, 0]], "K must be"), ([[3, 7, 16, 2, 0]], "expansion"),
                        ([[3, 1, 16, 3, 0]], "stride"), ([[3, 1, 16, 2, 2]], "se"), ([[3, 1, 16]], "five ints"),
                        ([[3, 1.0, 16, 2, 0]], "five ints")]:
        with pytest.raises(ValueError, match=match):
            SearchNet(spec)


# --- unstructured pruning ----------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_magnitude_mask_equals_torch_prune(sparsity):
    from torch.nn.utils import prune

    layer = nn.Linear(13, 7)
    mask = pruning.magnitude_mask(layer.weight.detach(), sparsity)
    prune.l1_unstructured(layer, "weight", amount=sparsity)
    assert torch.equal(mask, layer.weight_mask)
    assert int((mask == 0).sum()) == round(sparsity * 91)


def test_unstructured_pruning_shrinks_nothing_but_the_compressed_file():
    from torch.nn.utils import prune

    model = _model()
    pruned = pruning.prune_unstructured(model, 0.8)
    # the same weights as torch's global pruning
    oracle = _model()
    prune.global_unstructured([(m, "weight") for _, m in pruning.prunable(oracle)], pruning_method=prune.L1Unstructured,
                              amount=0.8)
    for (_, a), (_, b) in zip(pruning.prunable(pruned), pruning.prunable(oracle)):
        assert torch.equal(a.weight, b.weight)
    assert pruning.sparsity(pruned) == pytest.approx(0.8, abs=1e-4)
    assert pruning.sparsity(model) == 0.0
    assert count(pruned, X).macs == count(model, X).macs and count(pruned, X).params == count(model, X).params
    dense, sparse = pruning.file_size(model), pruning.file_size(pruned)
    assert sparse["bytes"] == dense["bytes"] and sparse["compressed"] < 0.5 * dense["compressed"]
    masked = pruning.file_size(pruning.prune_unstructured(model, 0.8, permanent=False))
    assert masked["bytes"] > 1.8 * dense["bytes"]  # weight_orig + weight_mask
    per_layer = pruning.prune_unstructured(model, 0.5, scope="layer")
    for _, m in pruning.prunable(per_layer):
        assert int((m.weight == 0).sum()) == round(0.5 * m.weight.numel())
    with pytest.raises(ValueError, match="scope"):
        pruning.prune_unstructured(model, 0.5, scope="channel")


# --- channel pruning -----------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_channel_pruning_keeps_floor_and_shrinks_macs_as_the_closed_form(ratio):
    model = _model()
    pruned = pruning.prune_channels(model, ratio, X)
    kept = tuple(math.floor(w * (1 - ratio)) for w in (16, 32, 64))
    widths = pruning.conv_widths(pruned)
    assert widths["stem.conv"] == kept[0]
    for i, w in enumerate(kept):  # the residual sum couples conv2 and the shortcut of each block
        assert widths[f"stages.{i}.0.conv1.conv"] == widths[f"stages.{i}.0.conv2.conv"] == \
               widths[f"stages.{i}.0.shortcut.conv"] == w
    assert pruned.fc.out_features == 10
    assert count(pruned, X).macs == resnetlite_macs(kept)
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert pruning.conv_widths(model)["stem.conv"] == 16  # the original is untouched


def test_channel_pruning_keeps_the_largest_l1_filters():
    model = _model()
    pruned = pruning.prune_channels(model, 0.0, X, layer_ratios={"stages.2.0.conv1.conv": 0.5})
    conv1, conv2 = model.stages[2][0].conv1.conv, model.stages[2][0].conv2.conv
    keep = torch.sort(torch.topk(conv1.weight.abs().sum(dim=(1, 2, 3)), 32).indices).values
    torch.testing.assert_close(pruned.stages[2][0].conv1.conv.weight, conv1.weight[keep])
    torch.testing.assert_close(pruned.stages[2][0].conv2.conv.weight, conv2.weight[:, keep])  # the reader follows


def test_channel_groups_follow_the_residual_sums():
    groups = {root: members for root, members, _ in pruning.channel_groups(_model(), X)}
    residual = next(m for m in groups.values() if "stages.1.0.shortcut.conv" in m and "stages.1.0.conv2.conv" in m)
    assert "stages.2.0.conv1.conv" in residual  # the next block reads the sum
    assert set(groups["stages.0.0.conv1.conv"]) >= {"stages.0.0.conv1.bn", "stages.0.0.conv2.conv"}
    assert len(groups) == 7


def test_layer_ratio_prunes_only_that_group_and_names_unknown_layers():
    model = _model()
    pruned = pruning.prune_channels(model, 0.0, X, layer_ratios={"stages.1.0.conv1.conv": 0.75})
    widths = pruning.conv_widths(pruned)
    assert widths["stages.1.0.conv1.conv"] == 8 and widths["stages.1.0.conv2.conv"] == 32
    with pytest.raises(ValueError, match="no layer named"):
        pruning.prune_channels(model, 0.5, X, layer_ratios={"nope": 0.5})


@pytest.mark.slow
def test_sensitivity_scan_covers_every_group():
    from course.data import shapes
    from course.train import evaluate

    data = shapes(n_train=20, n_test=40)
    model = _model()
    rows = pruning.sensitivity_scan(model, data, ratios=(0.0, 0.5))
    assert len(rows) == 2 * len(pruning.channel_groups(model, X))
    base = evaluate(model, data.test_x, data.test_y)
    for r in rows:
        if r.ratio == 0.0:
            assert r.accuracy == base and r.kept == r.channels
        else:
            assert r.kept == r.channels // 2 and r.macs < count(model, X).macs


# --- quantization arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize("lo, hi", [(-1.0, 3.0), (0.2, 5.0), (-4.0, -0.5), (-0.013, 0.02), (0.0, 0.0)])
def test_scale_zero_point_equals_pytorch_minmax_observer(lo, hi):
    observer = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8)
    observer(torch.tensor([lo, hi]))
    scale, zero_point = observer.calculate_qparams()
    got = quantization.scale_zero_point(lo, hi, 8)
    if lo == hi == 0.0:
        assert got == (1.0, 0)  # PyTorch uses its eps instead of 1: both keep 0 exact
    else:
        assert got[0] == pytest.approx(float(scale), rel=1e-6) and got[1] == int(zero_point)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_fake_quantize_equals_pytorch(bits):
    x = torch.randn(1000) * 2
    scale, zp = quantization.scale_zero_point(float(x.min()), float(x.max()), bits)
    q_min, q_max = quantization.qrange(bits)
    torch.testing.assert_close(quantization.fake_quantize(x, scale, zp, bits),
                               torch.fake_quantize_per_tensor_affine(x, scale, zp, q_min, q_max), atol=1e-6, rtol=0)
    assert quantization.qrange(bits, signed=True) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def test_quantize_multiplier_reconstructs():
    for m in (0.5, 0.1234567, 3e-5, 0.999999999):
        m0, shift = quantization.quantize_multiplier(m)
        assert 2 ** 30 <= m0 < 2 ** 31
        assert m0 * 2.0 ** -(31 + shift) == pytest.approx(m, rel=1e-9)
    with pytest.raises(ValueError):
        quantization.quantize_multiplier(1.5)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_integer_linear_equals_float_and_pytorch_quantized_linear():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 24, generator=g) * 4 - 1  # activations in [-1, 3)
    w = torch.randn(8, 24, generator=g) * 0.3
    b = torch.randn(8, generator=g) * 0.2
    s_x, z_x = quantization.scale_zero_point(-1.0, 3.0)
    s_w = float(w.abs().max()) / 127
    y_float = F.linear(quantization.fake_quantize(x, s_x, z_x), torch.round(w / s_w) * s_w, b)
    s_y, z_y = quantization.scale_zero_point(float(y_float.min()), float(y_float.max()))
    x_q = quantization.quantize(x, s_x, z_x)
    w_q = torch.round(w / s_w).to(torch.int64)
    bias_q = torch.round(b / (s_x * s_w)).to(torch.int64)
    got = quantization.integer_linear(x_q, z_x, w_q, bias_q, s_x * s_w / s_y, z_y)
    fixed = quantization.integer_linear(x_q, z_x, w_q, bias_q, s_x * s_w / s_y, z_y, fixed_point=True)
    want = quantization.quantize(y_float, s_y, z_y)
    assert (got - want).abs().max() <= 1 and (fixed - got).abs().max() <= 1
    # PyTorch's own quantized kernel (fbgemm/qnnpack), same scales and zero points
    qx = torch.quantize_per_tensor(x, s_x, z_x, torch.quint8)
    qw = torch.quantize_per_tensor(w, s_w, 0, torch.qint8)
    layer = torch.ao.nn.quantized.Linear(24, 8)
    layer.set_weight_bias(qw, b)
    layer.scale, layer.zero_point = s_y, z_y
    theirs = layer(qx).int_repr().to(torch.int64)
    assert (got - theirs).abs().max() <= 1


def test_fold_batchnorm_and_fake_quantized_models():
    model = _model()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
        folded = quantization.fold_batchnorm(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), y, atol=1e-4, rtol=1e-4)
        errors = [(quantization.fake_quantize_model(model, b, x)(x) - y).abs().mean().item() for b in (8, 4, 2)]
        assert errors[0] < errors[1] < errors[2] and errors[0] < 0.05 * y.abs().mean().item()
        weights_only = quantization.fake_quantize_model(model, 4, activations=False)
        conv = weights_only.stem.conv.weight
        for channel in conv:  # at most 2^4 - 1 distinct levels per output channel, symmetric
            assert len(torch.unique(channel)) <= 15
    with pytest.raises(ValueError, match="calibration"):
        quantization.fake_quantize_model(model, 8)


def test_int8_instructions_from_cpuinfo_text():
    x86 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512bw avx512_vnni\n"
    found = quantization.int8_instructions(x86)
    assert found["avx512_vnni"] and found["avx2"] and not found["amx_int8"]
    arm = "Features\t: fp asimd asimddp i8mm\n"
    assert quantization.int8_instructions(arm)["asimddp"] and quantization.int8_instructions(arm)["i8mm"]
    assert "fused int8" in quantization.describe_int8_support(x86)
    assert not quantization.needs_reduce_range(x86) and not quantization.needs_reduce_range(arm)
    assert quantization.needs_reduce_range("flags : sse2 avx2\n")
    assert "no fused int8" in quantization.describe_int8_support("flags : avx2\n")


@pytest.mark.slow
def test_onnxruntime_int8_models_agree_with_fp32():
    from course.latency import ort_session

    model = _model()
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)
    fp32 = quantization.ort_fp32(model)
    torch.testing.assert_close(quantization.ort_predict(ort_session(fp32.onnx, 1), x), y, atol=1e-4, rtol=1e-4)
    static = quantization.ort_static_int8(model, x, reduce_range=True)
    assert static.kind == "int8 static, 7-bit weights" and static.settings["reduce_range"]
    ops = static.op_counts()
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    assert static.bytes < 0.4 * fp32.bytes  # int8 weights: about a quarter, plus scales and graph
    y8 = quantization.ort_predict(ort_session(static.onnx, 1), x)
    assert (y8 - y).abs().max() < 0.1 * y.abs().max()
    dynamic = quantization.ort_dynamic_int8(model)
    assert dynamic.op_counts().get("ConvInteger", 0) == 10 and "DynamicQuantizeLinear" in dynamic.op_counts()


# --- distillation ----------------------------------------------------------------------------------


def test_distillation_loss_equals_the_formula_written_out():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, 6, 2, 2])
    for T, alpha in [(1.0, 0.5), (4.0, 0.9), (10.0, 1.0), (2.0, 0.0)]:
        total = 0.0
        for i in range(5):
            p_t = [math.exp(v / T) for v in t[i].tolist()]
            p_s = [math.exp(v / T) for v in s[i].tolist()]
            p_t = [v / sum(p_t) for v in p_t]
            p_s = [v / sum(p_s) for v in p_s]
            kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
            ce = -math.log(math.exp(s[i, y[i]].item()) / sum(math.exp(v) for v in s[i].tolist()))
            total += alpha * T * T * kl + (1 - alpha) * ce
        assert distillation.distillation_loss(s, t, y, T, alpha).item() == pytest.approx(total / 5, rel=1e-9)
    assert distillation.distillation_loss(s, s, y, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="shape"):
        distillation.distillation_loss(s, t[:, :3], y)
    torch.testing.assert_close(distillation.soft_targets(t, 1e6), torch.full((5, 7), 1 / 7, dtype=torch.float64),
                               atol=1e-5, rtol=0)


# --- search ----------------------------------------------------------------------------------------


def test_mnasnet_reward_and_specs():
    assert search.mnasnet_reward(0.8, 50, 50) == 0.8
    assert search.mnasnet_reward(0.8, 100, 50) == pytest.approx(0.8 * 2 ** -0.07)
    assert search.mnasnet_reward(0.8, 25, 50, alpha=0.0, beta=-1.0) == 0.8
    assert search.mnasnet_reward(0.8, 100, 50, alpha=0.0, beta=-1.0) == pytest.approx(0.4)
    spec = search.spec_of([0] * len(search.POSITIONS))
    assert [b[2:4] for b in spec] == [list(p) for p in search.POSITIONS]
    assert len(search.CHOICES) == 12 and len(set(search.CHOICES)) == 12
    net = SearchNet(spec)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_evolve_with_a_fake_proxy_and_table():
    blocks = {(p, c): 1.0 + c * 0.1 + p for p in range(len(search.POSITIONS)) for c in range(len(search.CHOICES))}
    table = search.LatencyTable(blocks, stem_ms=0.5, head_ms=0.1, threads=1)
    choices = (1, 0, 5, 11, 2)
    assert table.predict(choices) == pytest.approx(0.6 + sum(blocks[(p, c)] for p, c in enumerate(choices)))
    lo, hi = table.range_ms()
    assert lo == table.predict((0,) * 5) and hi == table.predict((11,) * 5)

    def proxy(spec):  # bigger kernels and expansions score higher
        return float(sum(k + e for k, e, *_ in spec))

    a = search.evolve(table, proxy, target_ms=12.0, initial=4, mutations=5, seed=1)
    b = search.evolve(table, proxy, target_ms=12.0, initial=4, mutations=5, seed=1)
    assert a == b and len(a) == 9 and [c.step for c in a] == list(range(9))
    for c in a:
        assert c.reward == pytest.approx(search.mnasnet_reward(c.accuracy, c.latency_ms, 12.0))
        assert c.accuracy == proxy(list(c.spec))
    for child in a[4:]:  # each mutation changes exactly one position of some earlier candidate
        assert any(sum(x != y for x, y in zip(child.choices, parent.choices)) == 1 for parent in a[:child.step])


def test_steadiest_measures_again_while_noisy_and_keeps_the_steadiest():
    from types import SimpleNamespace

    def fake(spreads):
        calls = []

        def measure_once():
            spread = spreads[len(calls)]
            calls.append(spread)
            return SimpleNamespace(relative_spread=spread, noisy=spread > 0.1)
        return measure_once, calls

    once, calls = fake([0.05, 0.3])
    assert search.steadiest(once).relative_spread == 0.05 and calls == [0.05]  # steady: measured once
    once, calls = fake([0.3, 0.2, 0.25])
    assert search.steadiest(once, retries=2).relative_spread == 0.2 and calls == [0.3, 0.2, 0.25]
    once, calls = fake([0.3, 0.08, 0.5])
    assert search.steadiest(once, retries=2).relative_spread == 0.08 and calls == [0.3, 0.08]  # stops when steady
    once, calls = fake([0.3, 0.2])
    assert search.steadiest(once, retries=0).relative_spread == 0.3 and calls == [0.3]


@pytest.mark.slow
def test_latency_table_measures_every_block():
    table = search.measure_table(threads=1, budget_s=0.002)
    assert len(table.blocks) == len(search.POSITIONS) * len(search.CHOICES)
    assert all(v > 0 for v in table.blocks.values()) and table.stem_ms > 0 and table.head_ms > 0
    assert table.environment["threads"] == 1


# --- early exit -----------------------------------------------------------------------------------


def test_exit_costs_split_the_network_exactly():
    torch.manual_seed(0)
    net = EarlyExitNet().eval()
    costs = early_exit.exit_costs(net)
    assert costs.full == count(net.backbone, X).macs == resnetlite_macs((16, 32, 64))
    assert costs.exit_head == conv2d(16, 16, 16, 32, 3, stride=2, bias=False).macs + linear(32, 10).macs
    assert costs.average(1.0) == costs.front + costs.exit_head
    assert costs.average(0.0) == costs.full + costs.exit_head
    with pytest.raises(ValueError):
        costs.average(1.5)


def test_exit_curve_makes_the_same_decisions_as_infer():
    torch.manual_seed(0)
    net = EarlyExitNet().eval()
    with torch.no_grad():  # make the exit head's confidence vary across images
        net.exit_head[-1].weight.mul_(20)
    x = torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        confidence = net(x)[0].softmax(1).amax(1)
    thresholds = [0.0, float(confidence.quantile(0.25)), float(confidence.median()), float(confidence.quantile(0.75)), 1.01]
    points = early_exit.exit_curve(net, x, y, thresholds)
    costs = early_exit.exit_costs(net)
    for t, p in zip(thresholds, points):
        logits, exited = net.infer(x, t)
        assert p.exited == int(exited.sum()) / 40
        assert p.accuracy == 100.0 * int((logits.argmax(1) == y).sum()) / 40
        assert p.average_macs == costs.average(p.exited)
    assert points[0].exited == 1.0 and points[-1].exited == 0.0
    assert 0 < points[2].exited < 1 and points[1].exited > points[3].exited


# --- the shipped weights ---------------------------------------------------------------------------


def test_shipped_weights_are_small_and_listed():
    from course.compression.weights import REFERENCE, manifest

    record = manifest()
    for name, ref in REFERENCE.items():
        assert ref.file.exists(), name
        assert ref.file.stat().st_size <= 2_000_000
        assert record[name]["bytes"] == ref.file.stat().st_size
        assert record[name]["epochs"] == ref.epochs and "synthetic" in record[name]["dataset"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["baseline", "early_exit"])
def test_shipped_weights_reach_their_stated_accuracy(name):
    from course.compression.weights import REFERENCE, load_reference, manifest
    from course.data import shapes
    from course.train import evaluate

    data = shapes()
    model = load_reference(name)
    stated = manifest()[name]
    assert evaluate(model, data.test_x, data.test_y) == pytest.approx(stated["accuracy"], abs=0.5)
    assert count(model, X).macs == stated["macs"] and count(model, X).params == stated["params"]
    assert REFERENCE[name].description
