"""The counter's meta pass (the default): same numbers as a real forward pass, at any size.

Oracle: the same counter with ``mode="real"`` (a real forward pass), compared on every field
by ``CostReport.differences`` (totals, per-module and per-operator rows, bytes included);
its MACs are themselves checked against fvcore and FlopCounterMode in test_cost.py and
test_count_sweep.py; and closed-form totals.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from course.cost import count
from course.cost.meta import attention_output, to_meta, uses_fused_kernel
from course.cost.report import MODEL_LABEL


def _assert_same(real, meta):
    assert meta.differences(real) == []
    assert not meta.notes and not meta.uncounted


@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "swin_t"])
def test_meta_equals_real_on_torchvision_models(builder):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(builder, weights=None)
    x = torch.randn(1, 3, 224, 224)
    _assert_same(count(model, x, mode="real"), count(model, x))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["resnet50", "mobilenetv2_100", "swin_tiny_patch4_window7_224", "vit_base_patch16_224", "pvt_v2_b0",
             "poolformer_s12", "repvgg_a0", "mobileone_s0", "efficientformerv2_s0", "mobilenetv3_large_100"]
)
def test_meta_equals_real_on_timm_models(name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name)
    x = torch.randn(1, 3, 224, 224)
    _assert_same(count(model, x, mode="real"), count(model, x))


@pytest.mark.slow
def test_meta_equals_real_on_every_zoo_model():
    from course.models import create_model, list_models, zoo

    names = list_models()
    assert names, "the zoo lists no models"
    for name in names:
        torch.manual_seed(0)
        model = create_model(name)
        size = zoo[name].input_size
        x = torch.randn(1, 3, size, size)
        real, meta = count(model, x, mode="real"), count(model, x)
        assert meta.differences(real) == [], name
        assert not meta.notes and not meta.uncounted, name


def _vit_b16_macs(image: int) -> int:
    """Closed form for ViT-B/16 (C=768, 12 blocks, 12 heads of 64, MLP 3072, 1000 classes)."""
    C, depth, heads, mlp = 768, 12, 12, 3072
    patches = (image // 16) ** 2
    N = patches + 1  # + class token
    per_block = N * C * (3 * C) + heads * N * N * (2 * C // heads) + N * C * C + 2 * N * C * mlp
    return patches * 3 * 16 * 16 * C + depth * per_block + C * 1000


@pytest.mark.slow
def test_vit_b16_at_1024_counted_without_computing():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_base_patch16_224", img_size=1024)
    x = torch.empty(1, 3, 1024, 1024, device="meta")  # the real pass would need ~10 GB of activations
    report = count(model, x)
    assert report.macs == _vit_b16_macs(1024)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.out_shape == (1, 1000)
    # Check the closed form itself where a real pass is cheap.
    small = timm.create_model("vit_base_patch16_224")
    assert count(small, torch.randn(1, 3, 224, 224), mode="real").macs == _vit_b16_macs(224)


@pytest.mark.slow
def test_swin_t_at_1280_counted_without_computing():
    timm = pytest.importorskip("timm")
    model = timm.create_model("swin_tiny_patch4_window7_224", img_size=1280)
    report = count(model, torch.randn(1, 3, 1280, 1280))
    assert not report.notes and not report.uncounted
    # Every Swin stage's linear layers scale with the number of tokens: (1280/224)^2 x 224's.
    at_224 = count(timm.create_model("swin_tiny_patch4_window7_224"), torch.randn(1, 3, 224, 224))
    assert report.macs > 30 * at_224.macs


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        x = self.a(x)
        if x.sum() > 0:  # the branch depends on values: meta tensors have none
            x = x * 2
        return self.b(x)


def test_data_dependent_model_falls_back_to_a_real_pass_with_a_note():
    torch.manual_seed(0)
    model, x = _DataDependent(), torch.randn(2, 8)
    report = count(model, x)
    assert report.notes and "real forward pass" in report.notes[0]
    assert "Note: counted with a real forward pass" in report.table()
    assert report.total == count(model, x, mode="real").total
    with pytest.raises(RuntimeError, match="cannot run on meta tensors"):
        count(model, x, mode="meta")
    with pytest.raises(RuntimeError, match="cannot run on meta tensors"):
        count(model, torch.empty(2, 8, device="meta"))  # no real input to fall back on
    with pytest.raises(ValueError, match="mode must be one of"):
        count(model, x, mode="fast")


def test_meta_pass_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    model[1].running_mean.uniform_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    model.train()
    model[1].eval()  # a frozen BN inside a training model keeps its own flag
    count(model, torch.randn(1, 3, 8, 8))
    assert [id(p) for p in model.parameters()] == params
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model[0].training and not model[1].training
    model.eval()
    model(torch.randn(1, 3, 8, 8))  # still runs for real


def test_shared_weights_stay_shared_on_meta():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    report = count(model, torch.randn(1, 4))
    assert report.params == 20 and report.macs == 32
    assert {r["module"] for r in report.rows()} == {"0", "1"}
    assert MODEL_LABEL not in {r["module"] for r in report.rows()}


def test_multihead_attention_is_counted_for_real_with_a_note():
    mha = nn.MultiheadAttention(32, 4, batch_first=True)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = mha

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    x = torch.randn(2, 10, 32)
    auto, real = count(Block(), x), count(Block(), x, mode="real")
    assert auto.total == real.total and "real forward pass" in auto.notes[0]
    meta = count(Block(), x, mode="meta")
    assert meta.macs == real.macs and "unfused path" in meta.notes[0]
    # q, k, v and output projections + attention: 4 * 2*10*32*32 + 2 * 4 heads * 10*10*(8+8)
    assert real.macs == 4 * 2 * 10 * 32 * 32 + 2 * 4 * 10 * 10 * 16


# --- recurrent layers (issue 10, bug 1) ----------------------------------------------------------
def _rnn_macs_by_hand(rnn: nn.RNNBase, tokens: int) -> int:
    """tokens x every weight matrix once per step (W_ih, W_hh, and LSTM's projection W_hr)."""
    return tokens * sum(p.numel() for name, p in rnn.named_parameters() if name.startswith("weight"))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_meta_equals_real(cls, bidirectional, num_layers, batch_first):
    torch.manual_seed(0)
    rnn = cls(16, 32, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn(3, 10, 16)  # (B, T, N) if batch_first else (T, B, N): 30 steps either way
    meta, real = count(rnn, x), count(rnn, x, mode="real")
    _assert_same(real, meta)
    assert meta.macs == _rnn_macs_by_hand(rnn, 30)
    # Independent oracle: with oneDNN off, PyTorch runs the RNN step by step and
    # FlopCounterMode sees every matmul.
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as oracle:
        rnn(x)
    assert 2 * meta.macs == oracle.get_total_flops()


@pytest.mark.parametrize("kwargs", [dict(proj_size=8), dict(bias=False), dict(proj_size=8, bias=False, num_layers=2)])
def test_lstm_variants_meta_equals_real(kwargs):
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 32, bidirectional=True, **kwargs)
    x = torch.randn(10, 2, 16)
    meta, real = count(lstm, x), count(lstm, x, mode="real")
    _assert_same(real, meta)
    assert meta.macs == _rnn_macs_by_hand(lstm, 20)


def test_lstm_real_pass_counts_the_onednn_kernel():
    """The issue's reproduction: on CPU the real pass runs one oneDNN kernel, charged 0 before."""
    lstm = nn.LSTM(16, 32, batch_first=True)
    x = torch.randn(1, 10, 16)
    real = count(lstm, x, mode="real")
    assert real.macs == count(lstm, x).macs == 10 * 4 * 32 * (16 + 32)
    assert not real.uncounted
    # Element-wise, per step: gate sums 4H * (1 + 2 biases) and the cell's 9H (ops.RNN_CELL_CHARGE).
    assert real.elementwise == 10 * (4 * 32 * 3 + 9 * 32)


class _Sequencer(nn.Module):
    """An LSTM over the rows of an image, as in Sequencer2D: its output layout feeds a reshape."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 4, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        out, _ = self.rnn(x.reshape(B * H, W, C))
        return self.fc(out.reshape(B, H, W, -1))


def test_lstm_output_layout_matches_so_later_copies_match():
    x = torch.randn(2, 5, 6, 8)
    _assert_same(count(_Sequencer(), x, mode="real"), count(_Sequencer(), x))


def test_unbatched_and_packed_sequences():
    torch.manual_seed(0)
    lstm = nn.LSTM(16, 32)
    x = torch.randn(10, 16)
    _assert_same(count(lstm, x, mode="real"), count(lstm, x))
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(10, 3, 16), [10, 7, 4])
    report = count(lstm, packed)  # batch sizes are values: counted with a real pass, with a note
    assert report.macs == _rnn_macs_by_hand(lstm, 10 + 7 + 4)
    assert report.notes and "real forward pass" in report.notes[0]


# --- a Linear on a strided input (issue 10, bug 2) --------------------------------------------------
@pytest.mark.parametrize("requires_grad", [True, False])
def test_linear_on_a_strided_input_meta_equals_real(requires_grad):
    """PyTorch folds the input into one ``mm`` when the weight requires grad (a copy of the
    input first) and broadcasts a ``bmm`` otherwise; the meta stand-ins must choose alike."""
    lin = nn.Linear(64, 192).requires_grad_(requires_grad)
    x = torch.randn(1, 8, 7, 8, 7, 64).transpose(2, 3)
    meta, real = count(lin, x), count(lin, x, mode="real")
    _assert_same(real, meta)
    assert meta.macs == 8 * 7 * 8 * 7 * 64 * 192
    assert ("mm" if requires_grad else "bmm") in real.by_operator()


# --- attention (issue 10, bug 3) ---------------------------------------------------------------------
class _Attention(nn.Module):
    def forward(self, q, k, v, mask=None):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


def _qkv(layout: str, B=1, heads=3, L=257, E=64):
    torch.manual_seed(0)
    if layout == "row_major":
        return [torch.randn(B, heads, L, E) for _ in range(3)]
    if layout == "timm":  # qkv(x).reshape(B, L, 3, heads, E).permute(2, 0, 3, 1, 4)
        return list(torch.randn(B, L, 3, heads, E).permute(2, 0, 3, 1, 4).unbind(0))
    if layout == "heads_last":  # (B, L, heads, E).transpose(1, 2)
        return [torch.randn(B, L, heads, E).transpose(1, 2) for _ in range(3)]
    raise ValueError(layout)


@pytest.mark.parametrize("mask", [None, "2d", "3d", "4d", "bool"])
@pytest.mark.parametrize("layout", ["row_major", "timm", "heads_last"])
def test_attention_meta_equals_real(layout, mask):
    q, k, v = _qkv(layout)
    masks = {None: None, "2d": torch.randn(257, 257), "3d": torch.randn(1, 257, 257),
             "4d": torch.randn(1, 1, 257, 257), "bool": torch.rand(257, 257) > 0.5}
    meta, real = count(_Attention(), q, k, v, masks[mask]), count(_Attention(), q, k, v, masks[mask], mode="real")
    _assert_same(real, meta)
    assert meta.macs == 3 * 257 * 257 * 128


class _KernelSpy(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _sdpa_cases():
    torch.manual_seed(0)
    q4, k4 = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8)
    q3, k3 = torch.randn(3, 10, 8), torch.randn(3, 12, 8)
    return {
        "plain": (q4, k4, k4, {}),
        "kv_longer_timm_layout": (*(_qkv("timm", 2, 3, 10, 8)[:1]), k4, k4, {}),
        "heads_last": (*_qkv("heads_last", 2, 3, 10, 8), {}),
        "mask2d": (q4, k4, k4, dict(attn_mask=torch.randn(10, 12))),
        "mask2d_row": (q4, k4, k4, dict(attn_mask=torch.randn(1, 12))),
        "mask3d": (q4, k4, k4, dict(attn_mask=torch.randn(3, 10, 12))),
        "mask4d": (q4, k4, k4, dict(attn_mask=torch.randn(2, 1, 10, 12))),
        "mask4d_heads": (q4, k4, k4, dict(attn_mask=torch.randn(1, 3, 10, 12))),
        "mask4d_wrong_batch": (q4, k4, k4, dict(attn_mask=torch.randn(1, 1, 1, 10, 12)[0].expand(2, 3, 10, 12).contiguous()[:1])),
        "mask_last_stride": (q4, k4, k4, dict(attn_mask=torch.randn(12, 10).t())),
        "bool_mask": (q4, k4, k4, dict(attn_mask=torch.rand(10, 12) > 0.3)),
        "causal": (q4, k4, k4, dict(is_causal=True)),
        "scale": (q4, k4, k4, dict(scale=0.3)),
        "dropout": (q4, k4, k4, dict(dropout_p=0.5)),
        "value_dim": (q4, k4, torch.randn(2, 3, 12, 5), {}),
        "inputs3d": (q3, k3, k3, {}),
        "inputs3d_mask3d": (q3, k3, k3, dict(attn_mask=torch.randn(3, 10, 12))),
        "inputs3d_mask2d": (q3, k3, k3, dict(attn_mask=torch.randn(10, 12))),
        "inputs5d": (q4[None], k4[None], k4[None], {}),
        "query_last_stride": (torch.randn(2, 3, 8, 10).transpose(2, 3), k4, k4, {}),
        "gqa": (q4, k4[:, :1], k4[:, :1], dict(enable_gqa=True)),
        "expanded_kv": (q4, k4[:, :1].expand(2, 3, 12, 8), k4[:, :1].expand(2, 3, 12, 8), {}),
        "double": (q4.double(), k4.double(), k4.double(), {}),
    }


@pytest.mark.parametrize("case", list(_sdpa_cases()))
def test_fused_kernel_rule_and_output_layout_match_pytorch(case):
    """``uses_fused_kernel`` predicts the kernel PyTorch 2.14 dispatches on CPU, and
    ``attention_output`` lays the meta result out as that kernel lays out its result."""
    q, k, v, kwargs = _sdpa_cases()[case]
    spy = _KernelSpy()
    with spy, torch.no_grad():
        out = F.scaled_dot_product_attention(q, k, v, **kwargs)
    fused = "_scaled_dot_product_flash_attention_for_cpu" in spy.ops
    assert uses_fused_kernel(q, k, v, **kwargs) == fused
    predicted = attention_output(*to_meta((q, k, v)), fused=fused)
    assert (predicted.shape, predicted.stride(), predicted.dtype) == (out.shape, out.stride(), out.dtype)


def test_flash_backend_switch_is_obeyed():
    q = torch.randn(1, 2, 5, 8)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        assert not uses_fused_kernel(q, q, q)
        _assert_same(count(_Attention(), q, q, q, mode="real"), count(_Attention(), q, q, q))
    assert uses_fused_kernel(q, q, q)


# --- operators (issue 10, bug 4) and the whole-call restart -------------------------------------------
class _SplitNot(nn.Module):
    def forward(self, x):
        a, b = x.unsafe_split(4, dim=1)
        return ~(a > b)


def test_unsafe_split_is_a_view_and_bitwise_not_is_counted():
    x = torch.randn(2, 8)
    meta, real = count(_SplitNot(), x), count(_SplitNot(), x, mode="real")
    _assert_same(real, meta)
    ops = meta.by_operator()
    assert "unsafe_split" not in ops  # a view: free, no row
    assert ops["bitwise_not"]["elementwise"] == 2 * 4 and ops["gt"]["elementwise"] == 2 * 4


class _CatchesEverything(nn.Module):
    """Attention after a conv, inside a try/except that would swallow any Exception."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2).reshape(1, -1, 2, 4).transpose(1, 2)
        try:
            return F.scaled_dot_product_attention(t, t, t)
        except Exception:  # noqa: BLE001
            return t


def test_meta_pass_meeting_attention_late_restarts_and_matches_real():
    model, x = _CatchesEverything(), torch.randn(1, 3, 6, 6)
    real = count(model, x, mode="real")
    first, again = count(model, x), count(model, x)  # the second starts with the whole-call mode
    _assert_same(real, first)
    _assert_same(real, again)
    assert first.by_operator()["scaled_dot_product_attention"]["calls"] == 1


# --- leaf modules charged without their forward (course.cost.leaves) ---------------------------------
class _Flatten(nn.Module):
    """reshape copies a tensor that is not row-major: the bytes show the leaf's output layout."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1) + 1.0


_LEAF_LAYOUTS = {
    "row_major": lambda: torch.randn(2, 8, 6, 6),
    "channels_last": lambda: torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last),
    "channel_slice": lambda: torch.randn(1, 16, 6, 6)[:, 4:12],
    "transposed": lambda: torch.randn(2, 8, 6, 6).transpose(2, 3),
}
_LEAVES = {
    "conv": lambda: nn.Conv2d(8, 16, 3, stride=2, padding=1),
    "conv_depthwise": lambda: nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False),
    "conv_reflect": lambda: nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect"),
    "conv_same": lambda: nn.Conv2d(8, 4, 4, padding="same"),
    "batch_norm": lambda: nn.BatchNorm2d(8), "batch_norm_plain": lambda: nn.BatchNorm2d(8, affine=False),
    "batch_norm_no_stats": lambda: nn.BatchNorm2d(8, track_running_stats=False),
    "relu": lambda: nn.ReLU(), "relu_inplace": lambda: nn.ReLU(inplace=True), "relu6": lambda: nn.ReLU6(),
    "silu_inplace": lambda: nn.SiLU(inplace=True), "hardswish": lambda: nn.Hardswish(),
    "hardsigmoid": lambda: nn.Hardsigmoid(), "sigmoid": lambda: nn.Sigmoid(), "tanh": lambda: nn.Tanh(),
    "gelu": lambda: nn.GELU(), "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "hardtanh": lambda: nn.Hardtanh(-1, 1),
    "identity": lambda: nn.Identity(), "dropout": lambda: nn.Dropout(0.5),
}


@pytest.mark.parametrize("leaf", list(_LEAVES))
def test_leaf_shortcut_gives_the_records_of_a_dispatched_call(leaf, monkeypatch):
    from course.cost import counter, leaves

    taken = []

    def spy(module):
        call = leaves.leaf_call(module)
        if call is not None:
            taken.append(type(module).__name__)
        return call

    for layout, make_input in _LEAF_LAYOUTS.items():
        torch.manual_seed(0)
        model, x = nn.Sequential(_LEAVES[leaf](), _Flatten()).train(), make_input()  # (count runs it in eval)
        real = count(model, x, mode="real")
        monkeypatch.setattr(counter, "leaf_call", spy)
        shortcut = count(model, x)
        monkeypatch.setattr(counter, "leaf_call", lambda module: None)
        dispatched = count(model, x)
        monkeypatch.undo()
        if shortcut.notes:
            # PyTorch's meta kernels do not lay channels-last results out as its CPU kernels
            # do (a convolution's layout even depends on the backend it picks): the count
            # falls back to a real pass, and says so.
            assert layout == "channels_last" and "channels-last" in shortcut.notes[0], layout
            assert shortcut.records == real.records
            continue
        assert shortcut.differences(real) == [], layout
        assert dispatched.differences(real) == [], layout
        assert shortcut.records == dispatched.records, layout
    if leaf not in ("conv_reflect", "conv_same", "batch_norm_no_stats", "gelu_tanh"):
        assert taken, "the shortcut was never taken"


def test_channels_last_model_meta_equals_real():
    """PyTorch's meta kernels return convolutions, padding and group norm of channels-last
    tensors row-major where its CPU kernels keep them channels-last: the shape rules follow
    the CPU kernels (a mistake would show in the copy ``_Flatten`` makes or not)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.ZeroPad2d(1),
                          nn.GroupNorm(2, 8), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, groups=8), _Flatten())
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    _assert_same(count(model, x, mode="real"), count(model, x))


def test_unknown_channels_last_layout_is_counted_with_a_real_pass_and_a_note():
    """Where the CPU layout is not known from shapes (reflection padding, which has no rule;
    a grouped channels-last convolution with a 1x1 result, whose layout depends on the
    backend PyTorch picks), the count falls back to a real pass and says so."""
    torch.manual_seed(0)
    for model in (nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(8, 8, 3), _Flatten()),
                  nn.Sequential(nn.Conv2d(8, 8, 8, groups=8), _Flatten())):
        x = torch.randn(2, 8, 8, 8).contiguous(memory_format=torch.channels_last)
        auto, real = count(model, x), count(model, x, mode="real")
        assert "channels-last" in auto.notes[0]
        assert auto.records == real.records
        with pytest.raises(RuntimeError, match="channels-last"):
            count(model, x, mode="meta")


def test_count_pauses_the_garbage_collector_only_during_the_pass():
    import gc

    from course.cost import count

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(gc.isenabled())
            return x * 2

    assert gc.isenabled()
    count(Probe(), torch.ones(2, 3))
    assert seen == [False] and gc.isenabled()  # paused inside, back on after
    gc.disable()
    try:
        count(Probe(), torch.ones(2, 3))
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()

    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        count(Broken(), torch.ones(2, 3), mode="real")
    assert gc.isenabled()  # back on after an error too
