"""Exercise 1.3 (a convolution as im2col + one matrix multiply): a right module passes every
public, hidden and drawn case; typical mistakes get their specific message."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course.exercises import check, get_exercise
from course.exercises.judge import compare_module_output


class Im2colConv2d(nn.Module):
    def __init__(self, N, M, K, stride, padding, bias):
        super().__init__()
        self.K, self.stride, self.padding = K, stride, padding
        self.weight = nn.Parameter(torch.randn(M, N, K, K))
        self.bias = nn.Parameter(torch.zeros(M)) if bias else None

    def out_size(self, H, W):
        return ((H + 2 * self.padding - self.K) // self.stride + 1, (W + 2 * self.padding - self.K) // self.stride + 1)

    def matmul(self, x):
        M = self.weight.shape[0]
        out = self.weight.view(M, -1) @ F.unfold(x, self.K, padding=self.padding, stride=self.stride)
        return out if self.bias is None else out + self.bias.view(1, M, 1)

    def forward(self, x):
        H_out, W_out = self.out_size(*x.shape[2:])
        return self.matmul(x).view(x.shape[0], -1, H_out, W_out)


class Transposed(Im2colConv2d):  # reshapes to (W', H') and transposes back: the layout is scrambled
    def forward(self, x):
        H_out, W_out = self.out_size(*x.shape[2:])
        return self.matmul(x).view(x.shape[0], -1, W_out, H_out).transpose(2, 3)


class NoStrideInSize(Im2colConv2d):  # the output size ignores the stride (and unfold gets none)
    def forward(self, x):
        H_out, W_out = self.out_size(*x.shape[2:])
        H_out, W_out = (H_out - 1) * self.stride + 1, (W_out - 1) * self.stride + 1
        M = self.weight.shape[0]
        out = self.weight.view(M, -1) @ F.unfold(x, self.K, padding=self.padding)
        out = out if self.bias is None else out + self.bias.view(1, M, 1)
        return out.view(x.shape[0], M, H_out, W_out)


class ForgetsBias(Im2colConv2d):
    def forward(self, x):
        H_out, W_out = self.out_size(*x.shape[2:])
        M = self.weight.shape[0]
        out = self.weight.view(M, -1) @ F.unfold(x, self.K, padding=self.padding, stride=self.stride)
        return out.view(x.shape[0], M, H_out, W_out)


def test_right_module_passes_public_hidden_and_drawn_cases():
    e = get_exercise("1.3")
    assert check("1.3", Im2colConv2d, quiet=True).passed
    cases = e.grading_cases(seed=7)
    assert len(cases) == len(e.cases) + len(e.hidden_cases) + e.n_drawn
    for case, want in zip(cases, e.expected_for(cases)):
        assert compare_module_output(want, e.run_case(Im2colConv2d, case)) is None, case


def test_expected_side_is_torch_conv2d():
    """The reference is nn.Conv2d: its outputs are F.conv2d's on the same weights."""
    e = get_exercise("1.3")
    case = e.cases[1]
    want = e.expected_for([case])[0]
    torch.manual_seed(0)
    kwargs = {k: v for k, v in case.items() if k != "input"}
    module = Im2colConv2d(**kwargs)
    x = torch.randn(*case["input"])
    assert torch.allclose(module(x), F.conv2d(x, module.weight, module.bias, case["stride"], case["padding"]), atol=1e-5)
    assert want["shape"] == list(module(x).shape)


def test_cases_cover_strides_padding_odd_and_non_square_sizes():
    e = get_exercise("1.3")
    cases = e.cases + e.hidden_cases
    assert {c["stride"] for c in cases} >= {1, 2, 3}
    assert any(c["input"][2] != c["input"][3] for c in cases)
    assert any(c["input"][2] % 2 for c in cases)
    assert {c["bias"] for c in cases} == {True, False}
    drawn = [e.draw(random.Random(i)) for i in range(50)]
    assert all(c["input"][2] + 2 * c["padding"] >= c["K"] for c in drawn)


@pytest.mark.parametrize("module, message", [
    (Transposed, "the right numbers in the wrong places"),
    (NoStrideInSize, "H' = (H + 2*padding - K) // stride + 1"),
    (ForgetsBias, "did you add the bias?"),
])
def test_typical_mistakes_get_their_message(module, message):
    result = check("1.3", module, quiet=True)
    assert not result.passed and message in result.message, result.message


def test_missing_parameter_names_are_reported():
    class Named(nn.Module):
        def __init__(self, N, M, K, stride, padding, bias):
            super().__init__()
            self.conv = nn.Conv2d(N, M, K, stride, padding, bias=bias)

        def forward(self, x):
            return self.conv(x)

    result = check("1.3", Named, quiet=True)
    assert not result.passed and "cannot be copied by name" in result.message
