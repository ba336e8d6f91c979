"""The counter's meta pass (the default): same numbers as a real forward pass, at any size.

Oracle: the same counter with ``mode="real"`` (a real forward pass), whose MACs are themselves
checked against fvcore and FlopCounterMode in test_cost.py, and closed-form totals.
"""

import pytest
import torch
from torch import nn

from course.cost import count
from course.cost.report import MODEL_LABEL


def _assert_same(real, meta):
    assert meta.total == real.total
    assert meta.rows() == real.rows()
    assert meta.rows(depth=1) == real.rows(depth=1)
    assert meta.by_operator() == real.by_operator()
    assert not meta.notes


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
    if not names:
        pytest.skip("the zoo has no models yet")
    for name in names:
        torch.manual_seed(0)
        model = create_model(name)
        size = zoo[name].input_size
        x = torch.randn(1, 3, size, size)
        real, meta = count(model, x, mode="real"), count(model, x)
        assert meta.total == real.total, name
        assert meta.rows() == real.rows(), name


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
