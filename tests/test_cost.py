"""course.cost: closed-form formulas and the counter, checked against independent oracles.

Oracles: hand-derived numbers, fvcore's FlopCountAnalysis, PyTorch's FlopCounterMode, and
parameter counts from ``nn.Module.parameters()``.
"""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course.cost import Cost, conv2d, conv_output_size, count, linear
from course.cost.report import MODEL_LABEL, human


# --- formulas ---------------------------------------------------------------------------------
def test_conv2d_formula_by_hand():
    # ResNet's layer1 3x3 conv: 56*56 positions x 3*3*64 products x 64 filters.
    cost = conv2d(H=56, W=56, N=64, M=64, K=3, bias=False)
    assert cost.macs == 56 * 56 * 9 * 64 * 64 == 115_605_504
    assert cost.flops == 2 * cost.macs
    assert cost.params == 9 * 64 * 64
    assert cost.out_shape == (1, 64, 56, 56)
    assert cost.activations == 64 * 56 * 56
    assert cost.bytes_read == 4 * (64 * 56 * 56 + 9 * 64 * 64)
    assert cost.bytes_written == 4 * 64 * 56 * 56
    assert cost.elementwise == 0


def test_conv2d_formula_stride_groups_bias():
    # 224 -> 112 with a 7x7 stride-2 stem, padding 3: the ResNet stem.
    stem = conv2d(224, 224, 3, 64, 7, stride=2, padding=3, bias=False)
    assert stem.out_shape == (1, 64, 112, 112)
    assert stem.macs == 112 * 112 * 49 * 3 * 64 == 118_013_952
    grouped = conv2d(28, 28, 32, 64, 3, groups=4, bias=True)
    assert grouped.params == 9 * (32 // 4) * 64 + 64
    assert grouped.macs == 28 * 28 * 9 * 8 * 64
    assert grouped.elementwise == 64 * 28 * 28  # the bias add
    depthwise = conv2d(14, 14, 96, 96, 3, groups=96, bias=False)
    assert depthwise.macs == 14 * 14 * 9 * 96


@pytest.mark.parametrize(
    "size, K, stride, padding, dilation, expected",
    [(224, 7, 2, 3, 1, 112), (7, 3, 2, 0, 1, 3), (32, 3, 1, 2, 2, 32), (5, 5, 1, 0, 1, 1), (8, 1, 3, 0, 1, 3)],
)
def test_conv_output_size(size, K, stride, padding, dilation, expected):
    assert conv_output_size(size, K, stride, padding, dilation) == expected
    # Oracle: PyTorch itself.
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, K, K), stride=stride, padding=padding, dilation=dilation)
    assert out.shape[-1] == expected


@pytest.mark.parametrize(
    "kwargs, names",
    [
        (dict(H=8, W=8, N=6, M=8, K=3, groups=4), "groups=4 must divide the input channels N=6"),
        (dict(H=8, W=8, N=8, M=6, K=3, groups=4), "output channels M=6"),
        (dict(H=2, W=2, N=1, M=1, K=5, padding=0), "kernel does not fit"),
        (dict(H=0, W=8, N=1, M=1, K=3), "H must be a positive integer"),
        (dict(H=8, W=8, N=1, M=1, K=3, stride=0), "stride must be a positive integer"),
        (dict(H=8, W=8, N=1, M=1, K=3, padding=-1), "padding must be a non-negative integer"),
    ],
)
def test_conv2d_rejects_impossible_configurations(kwargs, names):
    with pytest.raises(ValueError, match=names):
        conv2d(**kwargs)


def test_linear_formula_by_hand():
    cost = linear(768, 3072, tokens=197)
    assert cost.macs == 197 * 768 * 3072
    assert cost.params == 768 * 3072 + 3072
    assert cost.out_shape == (1, 197, 3072)
    assert linear(2048, 1000, bias=False).params == 2_048_000


def test_cost_addition_and_scaling():
    a, b = conv2d(8, 8, 4, 4, 3), linear(16, 4)
    total = sum([a, b])
    assert total.macs == a.macs + b.macs and total.params == a.params + b.params
    assert a.scaled(3).macs == 3 * a.macs and a.scaled(3).params == a.params


# --- counter vs formulas ----------------------------------------------------------------------
def _random_conv_configs(n, seed=0):
    rng = random.Random(seed)
    configs = []
    while len(configs) < n:
        groups = rng.choice([1, 1, 2, 3, 4, 8])
        N = groups * rng.randint(1, 6)
        M = groups * rng.randint(1, 6)
        K = rng.choice([1, 2, 3, 5, 7])
        stride = rng.choice([1, 2, 3])
        dilation = rng.choice([1, 1, 2])
        padding = rng.randint(0, 3)
        H, W = rng.randint(1, 20), rng.randint(1, 20)
        span = dilation * (K - 1) + 1
        if min(H, W) + 2 * padding < span:
            continue
        configs.append(dict(H=H, W=W, N=N, M=M, K=K, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, bias=rng.random() < 0.5, batch=rng.choice([1, 2])))
    return configs


@pytest.mark.parametrize("cfg", _random_conv_configs(220), ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_formula_equals_counter_on_random_convs(cfg):
    torch.manual_seed(0)
    layer = nn.Conv2d(cfg["N"], cfg["M"], cfg["K"], stride=cfg["stride"], padding=cfg["padding"],
                      dilation=cfg["dilation"], groups=cfg["groups"], bias=cfg["bias"])
    x = torch.randn(cfg["batch"], cfg["N"], cfg["H"], cfg["W"])
    formula = conv2d(**cfg)
    counted = count(layer, x).total
    assert counted == formula
    assert formula.params == sum(p.numel() for p in layer.parameters())
    assert formula.out_shape == tuple(layer(x).shape)


@pytest.mark.parametrize("tokens, bias", [(1, True), (1, False), (50, True)])
def test_formula_equals_counter_on_linear(tokens, bias):
    layer = nn.Linear(24, 40, bias=bias)
    x = torch.randn(1, 24) if tokens == 1 else torch.randn(1, tokens, 24)
    assert count(layer, x).total == linear(24, 40, bias=bias, tokens=tokens)


# --- counter: operators -------------------------------------------------------------------------
class _Functional(nn.Module):
    """Matrix products written as functions, with broadcasting: no nn.Linear to hook."""

    def forward(self, a, b, c):
        x = torch.matmul(a, b)  # (2, 1, 5, 8) @ (3, 8, 4) -> (2, 3, 5, 4)
        y = torch.einsum("bij,bjk->bik", c, c.transpose(1, 2))  # (6, 7, 9) @ (6, 9, 7)
        return x.sum() + y.sum()


def test_matmul_and_einsum_with_broadcasting():
    report = count(_Functional(), torch.randn(2, 1, 5, 8), torch.randn(3, 8, 4), torch.randn(6, 7, 9))
    assert report.macs == 2 * 3 * 5 * 8 * 4 + 6 * 7 * 9 * 7
    assert report.rows() and report.rows()[0]["module"] == MODEL_LABEL


@pytest.mark.parametrize("Ev", [16, 8])  # Ev == E takes the fused CPU kernel; Ev != E the math path
def test_attention_counted_fused_or_explicit(Ev):
    q, k, v = torch.randn(2, 4, 10, 16), torch.randn(2, 4, 12, 16), torch.randn(2, 4, 12, Ev)
    expected = 2 * 4 * 10 * 12 * (16 + Ev)
    fused = count(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), q, k, v)
    explicit = count(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v, q, k, v)
    assert fused.macs == explicit.macs == expected
    assert not fused.uncounted


def test_pytorch_flop_counter_misses_the_fused_cpu_kernel():
    from torch.utils.flop_counter import FlopCounterMode

    q = k = v = torch.randn(2, 4, 10, 16)
    with FlopCounterMode(display=False) as oracle, torch.no_grad():
        F.scaled_dot_product_attention(q, k, v)
    ours = count(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), q, k, v)
    assert ours.by_operator()["scaled_dot_product_attention"]["calls"] == 1
    assert oracle.get_total_flops() == 0 and ours.macs == 2 * 4 * 10 * 10 * 32
    with FlopCounterMode(display=False) as oracle:  # the explicit form it does see
        torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v
    assert oracle.get_total_flops() == 2 * ours.macs


def test_counter_agrees_with_pytorch_flop_counter_on_resnet18():
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    with FlopCounterMode(display=False) as oracle, torch.no_grad():
        model(x)
    assert 2 * count(model, x).macs == oracle.get_total_flops()


def test_elementwise_charges_are_stated_and_applied():
    from course.cost import ops

    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Softmax(dim=1))
    report = count(model, torch.randn(1, 4, 6, 6))
    per_module = {r["module"]: r["elementwise"] for r in report.rows()}
    assert per_module["0"] == ops.BATCH_NORM_CHARGE * 4 * 6 * 6
    assert per_module["1"] == ops.ARITHMETIC_CHARGE * 4 * 6 * 6
    assert per_module["2"] == 4 * 3 * 3 * (2 * 2)  # each output reads a 2x2 window
    assert per_module["4"] == ops.SOFTMAX_CHARGE * 4 * 3 * 3
    assert report.macs == 0


class _Spectral(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=1).values + torch.fft.fft(x).real


def test_unknown_operators_are_listed_never_silent():
    report = count(_Spectral(), torch.randn(2, 8))
    assert report.uncounted.get("sort") == 1
    assert any("fft" in op for op in report.uncounted)
    assert "Not costed" in report.table() and "sort x1" in report.table()


# --- counter: attribution and report --------------------------------------------------------------
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.body(x)  # this add runs in the model's own forward
        return self.head(x.mean((2, 3)))


def test_attribution_depths_and_percentages():
    x = torch.randn(1, 3, 16, 16)
    report = count(_Tiny(), x)
    leaf = {r["module"]: r for r in report.rows()}
    assert leaf["stem.0"]["macs"] == conv2d(16, 16, 3, 8, 3).macs
    assert leaf["body.0"]["macs"] == conv2d(16, 16, 8, 8, 3, bias=False).macs
    assert leaf["head"]["macs"] == 8 * 10
    assert leaf[MODEL_LABEL]["elementwise"] == 8 * 16 * 16 + 8 * 16 * 16  # the add + the mean
    for depth in (None, 1, 2):
        rows = report.rows(depth)
        assert sum(r["macs_pct"] for r in rows) == pytest.approx(100.0)
        assert sum(r["macs"] for r in rows) == report.macs
        assert sum(r["params"] for r in rows) == report.params
    assert [r["module"] for r in report.rows(1)] == [MODEL_LABEL, "stem", "body", "head"]
    assert report.module_cost("body").params == 8 * 8 * 9 + 2 * 8
    assert report.params == sum(p.numel() for p in _Tiny().parameters())
    assert report.out_shape == (1, 10)


def test_same_numbers_repeated_train_eval_and_grad():
    model = _Tiny()
    x = torch.randn(1, 3, 16, 16)
    model.train()
    first = count(model, x)
    assert model.training, "count must restore the training flag"
    model.eval()
    second = count(model, x)
    assert not model.training
    with torch.enable_grad():
        third = count(model, x.requires_grad_())
    for other in (second, third):
        assert other.total == first.total
        assert other.rows() == first.rows()


def test_shared_parameters_counted_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    report = count(model, torch.randn(1, 4))
    assert report.params == 20
    assert report.macs == 2 * 16
    assert {r["module"]: r["calls"] for r in report.rows()}["0"] == 2


def test_a_failing_forward_leaves_no_hooks_behind():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x).view(7, -1)

    model = Broken().train()
    with pytest.raises(RuntimeError):
        count(model, torch.randn(1, 3, 8, 8))
    assert model.training
    assert not model.conv._forward_hooks and not model.conv._forward_pre_hooks


def test_report_renders_text_html_and_rows():
    report = count(_Tiny(), torch.randn(1, 3, 16, 16))
    text = report.table(depth=1)
    assert "total" in text and "% MACs" in text and "stem" in text
    html = report._repr_html_()
    assert html.startswith("<table>") and "stem" in html
    assert set(report.rows()[0]) >= {"module", "type", "macs", "flops", "macs_pct", "params", "elementwise",
                                       "activations", "bytes_read", "bytes_written"}
    assert human(4_089_184_256) == "4.09 G" and human(512) == "512"


# --- counter vs fvcore on whole timm models --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2_100"])
def test_conv_and_linear_macs_equal_fvcore(name):
    timm = pytest.importorskip("timm")
    from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    fv = analysis.by_operator()  # fvcore counts one multiply-add as one "flop"
    ours = count(model, x).by_operator()
    assert ours["convolution"]["macs"] == fv["conv"]
    assert ours["addmm"]["macs"] == fv["linear"]
    assert count(model, x).params == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_vit_same_macs_with_fused_attention_on_and_off():
    timm = pytest.importorskip("timm")

    def vit(fused):
        torch.manual_seed(0)
        model = timm.create_model("vit_small_patch16_224")
        for module in model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = fused
        return model

    x = torch.randn(1, 3, 224, 224)
    fused, explicit = count(vit(True), x), count(vit(False), x)
    assert fused.macs == explicit.macs
    assert fused.by_operator()["scaled_dot_product_attention"]["calls"] == 12
    # Attention matmuls: per block, heads * 197 * 197 * (64 + 64) MACs.
    assert explicit.by_operator()["bmm"]["macs"] == 12 * 6 * 197 * 197 * 128
    assert not fused.uncounted and not explicit.uncounted


# --- every layer of real CNNs: formula == counter ------------------------------------------------
@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0"])
def test_layer_formulas_equal_counter_on_torchvision_models(builder):
    import torchvision
    from course.cost import layer_formulas

    model = getattr(torchvision.models, builder)(weights=None)
    x = torch.randn(2, 3, 96, 96)
    report = count(model, x)
    formulas = layer_formulas(model, x)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(formulas) == len(convs)
    for name, formula in formulas.items():
        counted = report.module_cost(name)
        assert (counted.macs, counted.params, counted.bytes_read, counted.bytes_written, counted.activations) == (
            formula.macs, formula.params, formula.bytes_read, formula.bytes_written, formula.activations), name
    assert sum(f.macs for f in formulas.values()) == report.macs
