"""Chapter 7: re-parameterization. Oracles: PyTorch's own BatchNorm/conv, timm's RepVGG and
MobileOne (byobnet.py) and timm.utils.reparameterize_model, the papers' tables, hand counts."""

import copy
import math

import pytest
import torch
from torch import nn

from course.blocks.conv import ConvBN
from course.blocks.reparam import (
    MobileOneBlock,
    MobileOneUnit,
    RepVGGBlock,
    fold_bn,
    fuse_conv_bn,
    identity_kernel,
    pad_kernel,
    reparameterize_model,
)
from course.chapters import ch07
from course.equivalence import max_relative_diff, randomize_bn
from course.latency.memory import peak_activation_bytes
from course.cost import count
from course.exercises import REGISTRY, check
from course.models import create_model, list_models, zoo
from course.models.twins import create_twin


# --- the three identities -----------------------------------------------------------------------


@pytest.mark.parametrize("groups,stride,bias", [(1, 1, False), (4, 2, True), (8, 1, False)])
def test_fuse_conv_bn_equals_pytorch(groups, stride, bias, seeded):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, stride, 1, groups=groups, bias=bias)
    bn = randomize_bn(nn.Sequential(nn.BatchNorm2d(16)), seed=1)[0].eval()
    x = seeded(2, 8, 13, 11)
    with torch.no_grad():
        expected = bn(conv(x))
        got = fuse_conv_bn(conv, bn)(x)
    assert max_relative_diff(got, expected) < 1e-6
    # the formula by hand, channel 3
    t = bn.weight[3] / torch.sqrt(bn.running_var[3] + bn.eps)
    w, b = fold_bn(conv.weight, bn, conv.bias)
    assert torch.allclose(w[3], conv.weight[3] * t)
    b0 = conv.bias[3] if bias else 0.0
    assert torch.allclose(b[3], bn.bias[3] + t * (b0 - bn.running_mean[3]))


def test_fold_bn_rejects_wrong_channels():
    with pytest.raises(ValueError, match="num_features"):
        fold_bn(torch.zeros(4, 2, 3, 3), nn.BatchNorm2d(5))


def test_padded_1x1_and_identity_kernel_are_the_same_convs(seeded):
    x = seeded(1, 6, 9, 9)
    w1 = seeded(6, 3, 1, 1, seed=1)
    padded = pad_kernel(w1, 3)
    assert padded.shape == (6, 3, 3, 3) and torch.equal(padded[:, :, 1, 1], w1[:, :, 0, 0])
    assert torch.isclose(padded.abs().sum(), w1.abs().sum())
    f = nn.functional
    assert torch.allclose(f.conv2d(x, padded, padding=1, groups=2), f.conv2d(x, w1, groups=2), atol=1e-6)
    for groups in (1, 2, 3, 6):
        eye = identity_kernel(6, 3, groups)
        assert eye.shape == (6, 6 // groups, 3, 3) and eye.sum() == 6
        assert torch.equal(f.conv2d(x, eye, padding=1, groups=groups), x)
    assert torch.equal(f.conv2d(x, identity_kernel(6, 5), padding=2), x)
    with pytest.raises(ValueError, match="K="):
        pad_kernel(w1, 2)
    with pytest.raises(ValueError, match="groups"):
        identity_kernel(6, 3, 4)


# --- blocks: deploy == train -------------------------------------------------------------------


BLOCKS = [
    ("repvgg identity", lambda: RepVGGBlock(16, 16)),
    ("repvgg stride 2", lambda: RepVGGBlock(16, 32, stride=2)),
    ("repvgg groups", lambda: RepVGGBlock(16, 16, groups=4)),
    ("mobileone dw k=4", lambda: MobileOneUnit(16, 16, 3, groups=16, num_branches=4)),
    ("mobileone dw stride 2", lambda: MobileOneUnit(16, 16, 3, stride=2, groups=16, num_branches=3)),
    ("mobileone pw k=4", lambda: MobileOneUnit(16, 16, 1, num_branches=4)),
    ("mobileone pw 16->24 se", lambda: MobileOneUnit(16, 24, 1, num_branches=2, se=True)),
    ("mobileone block", lambda: MobileOneBlock(16, 32, stride=2, num_branches=4)),
]


@pytest.mark.parametrize("name,make", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_deploy_equals_train(name, make, seeded):
    torch.manual_seed(0)
    block = randomize_bn(make(), seed=3).eval()
    x = seeded(2, 16, 12, 12)
    deploy, diff = ch07.deploy_vs_train(block, x)
    assert diff < 1e-5
    assert any(isinstance(m, nn.BatchNorm2d) for m in block.modules())  # the original is untouched
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deploy.modules())
    convs = [m for m in deploy.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.bias is not None for m in convs)  # one conv with bias per unit (+ SE's)
    reparameterize_model(deploy, inplace=True)  # idempotent
    with torch.no_grad():
        assert max_relative_diff(deploy(x), block(x)) < 1e-5


def test_bn_statistics_are_non_trivial(seeded):
    block = randomize_bn(RepVGGBlock(8, 8), seed=0).eval()
    bn = block.identity
    assert bn.running_var.min() >= 0.5 and bn.running_var.max() <= 2.0 and bn.running_mean.abs().max() > 0
    assert 0.5 <= bn.weight.min() and bn.weight.max() <= 1.0 and bn.bias.abs().max() > 0
    again = randomize_bn(RepVGGBlock(8, 8), seed=0).identity
    assert torch.equal(again.running_var, bn.running_var)  # seeded
    x = seeded(1, 8, 6, 6)
    with torch.no_grad():
        assert max_relative_diff(bn(x), x) > 0.1  # not the identity map


def test_deploy_flag_builds_what_reparameterize_gives():
    for make in (lambda d: RepVGGBlock(8, 16, 2, deploy=d), lambda d: MobileOneUnit(8, 8, 3, groups=8, num_branches=3, deploy=d)):
        trained = reparameterize_model(make(False))
        built = make(True)
        assert [(k, v.shape) for k, v in built.state_dict().items()] == [(k, v.shape) for k, v in trained.state_dict().items()]


def test_repvgg_block_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        RepVGGBlock(6, 8, groups=4)
    with pytest.raises(ValueError, match="num_branches"):
        MobileOneUnit(8, 8, 3, num_branches=0)


# --- closed forms vs the counter ----------------------------------------------------------------


@pytest.mark.parametrize(
    "N,M,K,groups,k,stride",
    [(16, 16, 3, 16, 4, 1), (16, 16, 3, 16, 4, 2), (16, 32, 1, 1, 3, 1), (32, 32, 1, 1, 1, 1), (8, 8, 3, 1, 1, 1)],
)
def test_unit_formulas_match_counter(N, M, K, groups, k, stride, n_params):
    x = torch.randn(1, N, 14, 14)
    for deploy in (False, True):
        unit = MobileOneUnit(N, M, K, stride, groups, k, deploy=deploy)
        report = count(unit, x)
        assert report.params == n_params(unit) == ch07.unit_params(N, M, K, groups, k, stride, deploy)
        assert report.macs == ch07.unit_macs(14, 14, N, M, K, groups, k, stride, deploy)
    # hand count, depthwise k=4 at C=16, 14x14 stride 1: 4*(9*16 + 32) + (16 + 32) + 32 = 784
    assert ch07.unit_params(16, 16, 3, 16, 4, 1) == 784


# --- peak memory --------------------------------------------------------------------------------


class _TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x):
        a = self.conv(x)
        b = self.conv(x)
        return a + b


def test_peak_activation_bytes_hand_counts():
    x = torch.randn(1, 8, 32, 32)
    unit = 16 * 32 * 32 * 4  # one (1, 16, 32, 32) float32 tensor
    assert peak_activation_bytes(_TwoConvs(), x) == 3 * unit  # a, b and a + b
    conv_relu = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
    assert peak_activation_bytes(conv_relu, x) == unit  # the in-place ReLU allocates nothing
    assert peak_activation_bytes(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()), x) == 2 * unit
    # RepVGG: BN(conv1x1) alive while BN(conv3x3) is computed (conv out + BN out) = 3 tensors;
    # deploy: one conv output, ReLU in place.
    block = randomize_bn(RepVGGBlock(16, 16)).eval()
    y = torch.randn(1, 16, 32, 32)
    assert peak_activation_bytes(block, y) == 3 * unit
    assert peak_activation_bytes(reparameterize_model(block), y) == unit
    # a view of a weight (linear's transpose) is not new memory
    assert peak_activation_bytes(nn.Linear(64, 10), torch.randn(2, 64)) == 2 * 10 * 4


def test_compare_train_deploy_block(seeded):
    block = ch07.make_block("depthwise 3x3", 32, k=4)
    x = seeded(1, 32, 16, 16)
    result = ch07.compare_train_deploy(block, x, threads=1, budget_s=0.05)
    assert result["rel_diff"] < 1e-5
    assert result["params"] == (ch07.unit_params(32, 32, 3, 32, 4), ch07.unit_params(32, 32, 3, 32, 4, deploy=True))
    assert result["macs"][0] == ch07.unit_macs(16, 16, 32, 32, 3, 32, 4) and result["macs"][1] == 16 * 16 * 9 * 32
    assert result["peak_bytes"][0] > result["peak_bytes"][1] == 32 * 16 * 16 * 4
    assert result["latency"][0].threads == 1 and result["speedup"] > 0
    train, deploy = result["latency"]
    assert train.group == deploy.group and train.samples == deploy.samples >= 5  # interleaved rounds
    assert result["speedup_iqr"].paired and result["speedup_iqr"].value == pytest.approx(result["speedup"])
    assert result["sentence"].startswith("On this device, the deploy-time form ")
    assert result["noisy"] == (train.noisy or deploy.noisy)
    with pytest.raises(ValueError, match="unit"):
        ch07.make_block("nope", 8)
    (row,) = ch07.train_deploy_rows({"dw": result})
    assert row["train-time"] is train and row["deploy speed-up"] is result["speedup_iqr"]
    assert row["peak MB: train"] == result["peak_bytes"][0] / 1e6 and row["deploy"] == 32 * 16 * 16 * 4 / 1e6


def test_explorer_headless(monkeypatch):
    explorer = ch07.reparam_explorer(measure=False)
    result = explorer.result
    assert result.error is None and result.config["k"] == 4
    macs = {}
    for form in ("train", "deploy"):
        macs[form] = explorer.set(unit="depthwise 3x3", k=4, C=64, H=56, form=form).counted.macs
    assert macs["deploy"] == ch07.unit_macs(56, 56, 64, 64, 3, 64, 1, deploy=True)
    assert macs["train"] == ch07.unit_macs(56, 56, 64, 64, 3, 64, 4)
    assert explorer.set(unit="RepVGG 3x3", form="deploy").counted.params == 64 * 64 * 9 + 64


# --- zoo: configurations and papers ---------------------------------------------------------------

MODELS = ["repvgg_a0", "repvgg_a1", "repvgg_b0"] + [f"mobileone_s{i}" for i in range(5)]


def test_zoo_entries():
    names = [n for n in list_models(chapter=7) if zoo[n].family in ("RepVGG", "MobileOne")]  # RepViT, FastViT: test_models_modern.py
    assert sorted(names) == sorted(MODELS + [m + "_deploy" for m in MODELS])
    for name in MODELS:
        train, deploy = zoo[name], zoo[name + "_deploy"]
        assert not train.deploy and deploy.deploy
        assert train.twin == deploy.twin == f"timm:{name}"
        assert train.paper == deploy.paper and train.paper.citation


def _within_paper(value, paper_value):
    """Within 2%, or within half a unit of the paper's last printed digit (it rounds)."""
    decimals = len(repr(paper_value).split(".")[1]) if "." in repr(paper_value) else 0
    return abs(value - paper_value) <= max(0.02 * paper_value, 0.5 * 10 ** -decimals)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_deploy_params_and_macs_match_paper(name, n_params):
    model = create_model(name + "_deploy")
    paper = zoo[name].paper
    params_m = n_params(model) / 1e6
    macs_g = count(model, torch.zeros(1, 3, 224, 224)).macs / 1e9
    assert _within_paper(params_m, paper.params_m), (params_m, paper.params_m)
    assert _within_paper(macs_g, paper.macs_g), (macs_g, paper.macs_g)


# --- the zoo models: train == deploy ------------------------------------------------------------
# (each model against its timm twin, train-time and deploy-time: tests/test_twins.py)


def _reparam_check(name, size, seeded, n_params, float64=True):
    """Re-parameterizing the train-time model (random BN statistics, eval) gives the deploy-time
    model's tensors and its output; timm's re-parameterized twin has as many parameters."""
    from timm.utils import reparameterize_model as timm_reparameterize

    torch.manual_seed(0)
    x = seeded(1, 3, size, size, seed=1)
    model = randomize_bn(create_model(name), seed=0).eval()
    with torch.no_grad():
        if float64:  # the re-parameterization is exact up to rounding
            model64 = copy.deepcopy(model).double()
            assert ch07.deploy_vs_train(model64, x.double())[1] < 1e-10
        # float32: what a deployment sees; rounding only (depth and SE gating amplify it)
        deploy, rel = ch07.deploy_vs_train(model, x)
        assert rel < (1e-3 if name == "mobileone_s4" else 1e-5), rel
        assert n_params(deploy) == n_params(timm_reparameterize(create_twin(zoo[name])))
        built = create_model(name + "_deploy").eval()
        built.load_state_dict(deploy.state_dict())  # the same names: what deploy=True builds
        assert max_relative_diff(built(x), deploy(x)) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["repvgg_a0", "mobileone_s0"])
def test_reparameterized_small_models(name, seeded, n_params):
    _reparam_check(name, 64, seeded, n_params)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["repvgg_a1", "repvgg_b0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"])
def test_reparameterized_large_models(name, seeded, n_params):
    _reparam_check(name, 32, seeded, n_params, float64=name == "mobileone_s4")


# --- exercises ------------------------------------------------------------------------------------


class _RepVGGByHand(nn.Module):
    """The class the notebook gives for 7.1 (the course's submodule names), with a correct
    ``reparameterize()`` that the mistakes below override."""

    def __init__(self, N, M, stride=1, groups=1):
        super().__init__()
        self.conv3x3 = ConvBN(N, M, 3, stride, groups)
        self.conv1x1 = ConvBN(N, M, 1, stride, groups)
        self.identity = nn.BatchNorm2d(M) if N == M and stride == 1 else None
        self.act = nn.ReLU()
        self.reparam = None

    def forward(self, x):
        if self.reparam is not None:
            return self.act(self.reparam(x))
        out = self.conv3x3(x) + self.conv1x1(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)

    def fold(self, kernel, bn):
        t = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return kernel * t.reshape(-1, 1, 1, 1), bn.bias - t * bn.running_mean

    def pad(self, w1):
        return nn.functional.pad(w1, [1, 1, 1, 1])

    def eye(self, weight):
        M, per_group = weight.shape[:2]
        eye = torch.zeros_like(weight)
        eye[torch.arange(M), torch.arange(M) % per_group, 1, 1] = 1.0
        return eye

    @torch.no_grad()
    def reparameterize(self):
        w3, b3 = self.fold(self.conv3x3.conv.weight, self.conv3x3.bn)
        w1, b1 = self.fold(self.conv1x1.conv.weight, self.conv1x1.bn)
        weight, bias = w3 + self.pad(w1), b3 + b1
        if self.identity is not None:
            wi, bi = self.fold(self.eye(weight), self.identity)
            weight, bias = weight + wi, bias + bi
        conv = self.conv3x3.conv
        self.reparam = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1, groups=conv.groups)
        self.reparam.weight.copy_(weight)
        self.reparam.bias.copy_(bias)
        self.conv3x3 = self.conv1x1 = self.identity = None


class _NoEps(_RepVGGByHand):
    def fold(self, kernel, bn):
        t = bn.weight / torch.sqrt(bn.running_var)
        return kernel * t.reshape(-1, 1, 1, 1), bn.bias - t * bn.running_mean


class _CornerPad(_RepVGGByHand):
    def pad(self, w1):
        return nn.functional.pad(w1, [0, 2, 0, 2])


class _UngroupedIdentity(_RepVGGByHand):
    def eye(self, weight):  # forgets the groups: output i reads input i, even past N/G
        eye = torch.zeros_like(weight)
        for i in range(min(weight.shape[0], weight.shape[1])):
            eye[i, i, 1, 1] = 1.0
        return eye


class _NoStride(_RepVGGByHand):
    @torch.no_grad()
    def reparameterize(self):
        super().reparameterize()
        self.reparam.stride = (1, 1)


class _KeepsBranches(_RepVGGByHand):
    @torch.no_grad()
    def reparameterize(self):
        branches = (self.conv3x3, self.conv1x1, self.identity)
        super().reparameterize()
        self.conv3x3, self.conv1x1, self.identity = branches


def test_exercise_7_1_repvgg_reparameterize_messages(capsys):
    assert check("7.1", _RepVGGByHand).points == 5
    assert check("7.1", RepVGGBlock).points == 5  # the course's own block passes its own check
    result = check("7.1", _NoEps)
    assert result.points == 0 and "BN eps ignored" in result.message
    result = check("7.1", _CornerPad)
    assert result.points == 0 and "1x1 kernel not centred when padded" in result.message
    result = check("7.1", _UngroupedIdentity)
    assert result.points == 0
    assert "outputs match without the identity branch but not with it: check the identity kernel" in result.message
    assert "groups=4" in result.message  # the first failing case is the grouped one
    result = check("7.1", _NoStride)
    assert result.points == 0 and "shape" in result.message and "stride" in result.message
    result = check("7.1", _KeepsBranches)
    assert result.points == 0 and "still holds 3 conv(s) and 3 BatchNorm(s)" in result.message
    capsys.readouterr()


def test_exercise_7_1_grader_runs_hidden_and_drawn_cases():
    import json

    from course.exercises import collect_outcomes, grade_outcomes

    exercise = REGISTRY["7.1"]
    cases = exercise.grading_cases(seed=3)
    assert len(cases) == len(exercise.cases) + len(exercise.hidden_cases) + exercise.n_drawn
    for answer, points in ((_RepVGGByHand, 5), (_CornerPad, 0)):
        outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args(cases), call=exercise.run_case)
        got, message = grade_outcomes(exercise, json.loads(json.dumps(outcomes)), cases)
        assert got == points, message


def test_exercise_7_2_unit_params_messages(capsys):
    def params_ok(N, M, K, groups, k, stride):
        return ch07.unit_params(N, M, K, groups, k, stride), ch07.unit_params(N, M, K, groups, k, stride, deploy=True)

    def params_no_identity(N, M, K, groups, k, stride):
        train, deploy = params_ok(N, M, K, groups, k, stride)
        return train - (2 * M if N == M and stride == 1 else 0), deploy

    assert check("7.2", params_ok).points == 2
    result = check("7.2", params_no_identity)
    assert result.points == 0 and "identity" in result.message
    capsys.readouterr()


def test_clearly_slower_by_hand():
    rounds = {"ReLU": [1.0, 2.0, 1.0, 2.0, 1.0], "GELU": [1.1, 2.2, 1.1, 2.2, 1.1], "h-swish": [1.0, 2.0, 1.2, 1.9, 1.0]}
    # GELU: every per-round ratio is 1.1; h-swish ratios 1, 1, 1.2, 0.95, 1: 25th percentile 1.0, not above 1
    assert ch07.clearly_slower(rounds, "ReLU") == ["GELU"]
    assert ch07.clearly_slower(rounds, "GELU") == []
    with pytest.raises(ValueError, match="baseline"):
        ch07.clearly_slower(rounds, "SiLU")
    with pytest.raises(ValueError, match="pair"):
        ch07.clearly_slower({"ReLU": [1.0, 1.0], "GELU": [1.0]}, "ReLU")


def test_exercise_7_3_clearly_slower_messages(capsys):
    assert check("7.3", ch07.clearly_slower).points == 3

    def medians(rounds, baseline):
        import statistics

        base = statistics.median(rounds[baseline])
        return sorted(n for n, t in rounds.items() if n != baseline and statistics.median(t) > base)

    def unpaired(rounds, baseline):
        import numpy as np

        q3 = np.percentile(rounds[baseline], 75)
        return sorted(n for n, t in rounds.items() if n != baseline and np.percentile(t, 25) > q3)

    def with_baseline(rounds, baseline):
        return sorted(ch07.clearly_slower(rounds, baseline) + [baseline])

    result = check("7.3", medians)
    assert result.points == 0 and "median ratio above 1 can be noise" in result.message
    result = check("7.3", unpaired)
    assert result.points == 0 and "compare round by round" in result.message
    result = check("7.3", with_baseline)
    assert result.points == 0 and "leave the baseline" in result.message
    capsys.readouterr()


def test_activation_verdict_from_fake_timings():
    from course.latency import Timing

    def timing(times, group=7):
        return Timing.from_samples(times, len(times), "cpu", 1, group=group)

    timings = {"ReLU": timing([1.0, 2.0, 1.0, 2.0, 1.0]), "GELU": timing([1.1, 2.2, 1.1, 2.2, 1.1]),
               "h-swish": timing([1.0, 2.0, 1.2, 1.9, 1.0])}
    verdict = ch07.activation_verdict(timings)
    assert "clearly slower than ReLU: GELU 1.10x" in verdict and "not clearly slower: h-swish" in verdict


def test_activation_nets_and_measurement():
    x = torch.randn(1, 32, 8, 8)
    nets = {name: ch07.activation_net(name, C=32, depth=2) for name in ch07.ACTIVATIONS}
    macs = {name: count(net, x).macs for name, net in nets.items()}
    per_block = 8 * 8 * 32 * (9 + 32)  # depthwise 3x3 + pointwise 1x1
    assert macs["ReLU"] == macs["GELU"] == macs["h-swish"] == 2 * per_block
    assert macs["SE + ReLU"] == 2 * (per_block + 2 * 32 * 2)  # SE: C -> C/16 -> C on the pooled vector
    # the same convolutions in every net (seeded): only the activation differs
    assert torch.equal(nets["ReLU"][0].depthwise.weight, nets["GELU"][0].depthwise.weight)
    with torch.no_grad():
        assert not torch.allclose(nets["ReLU"](x), nets["GELU"](x))
    with pytest.raises(ValueError, match="activation"):
        ch07.activation_net("swish")
    result = ch07.measure_activations(C=16, H=8, depth=1, activations=("ReLU", "GELU"), budget_s=0.05)
    relu, gelu = result["timings"]["ReLU"], result["timings"]["GELU"]
    assert relu.group == gelu.group and relu.samples == gelu.samples >= 5  # interleaved rounds
    assert result["rows"][0]["time vs ReLU"] is None and result["rows"][1]["time vs ReLU"].paired
    assert result["verdict"].startswith("On this device (1 thread")


def test_describe_equivalence_words_follow_the_number():
    assert ch07.describe_equivalence(1.4e-15, "float64").startswith(
        "float64: largest relative difference 1.4e-15, 13 units of float64 rounding")
    assert ch07.describe_equivalence(0.0).endswith("bit for bit equal.")
    assert "NOT equal" in ch07.describe_equivalence(0.02)
    with pytest.raises(ValueError, match="dtype"):
        ch07.describe_equivalence(1e-7, "int8")


def test_sweep_and_figures():
    rows = ch07.sweep_branches("pointwise 1x1", C=16, H=8, ks=(1, 3), budget_s=0.02)
    assert [r["k"] for r in rows] == [1, 3]
    for r in rows:
        assert r["macs_train"] == ch07.unit_macs(8, 8, 16, 16, 1, 1, r["k"])
        assert r["macs_deploy"] == 8 * 8 * 16 * 16
        assert r["peak_deploy"] == 16 * 8 * 8 * 4 < r["peak_train"]
        assert r["ms_train"] > 0 and r["ms_deploy"] > 0
    assert all(r["timing_train"].group == r["timing_deploy"].group for r in rows)
    fig = ch07.plot_branch_sweep(rows)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2
    assert [c.get_label() for c in fig.axes[0].containers] == ["train", "deploy"]  # IQR error bars
    fig = ch07.plot_speedups(["a", "b"], [2.0, 3.0], [1.0, 1.5])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["2.00x", "2.00x"] and fig.axes[0].get_yscale() == "log"
