"""The counter's shape rules (course.cost.shapes) against PyTorch's CPU kernels.

A meta pass answers common operators from their inputs' shapes and strides instead of
running PyTorch's meta kernels. Oracle: the CPU kernel itself. Each case runs an operation
on real CPU tensors, records every operator PyTorch dispatches with its arguments and result,
then asks the rule for that operator about the same arguments as meta tensors (same shapes,
dtypes and strides): the rule must give the kernel's shape, dtype and strides, or decline.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from course.cost import shapes
from course.cost.meta import to_meta


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        meta_args, meta_kwargs = to_meta(args), to_meta(kwargs)  # before the kernel: in-place ops
        out = func(*args, **kwargs)
        # What the kernel returned, before later operators restride it in place (as_strided_).
        outs = out if isinstance(out, tuple) else (out,)
        seen = [(tuple(t.shape), t.dtype, t.stride()) if isinstance(t, torch.Tensor) else None for t in outs]
        self.calls.append((func, meta_args, meta_kwargs, seen))
        return out


def _layouts():
    """(name, tensor (2, 8, 6, 4)-like): the layouts models hand to kernels."""
    torch.manual_seed(0)
    return {
        "row_major": torch.randn(2, 8, 6, 4),
        "channels_last": torch.randn(2, 8, 6, 4).contiguous(memory_format=torch.channels_last),
        "channel_slice": torch.randn(2, 16, 6, 4)[:, 4:12],
        "channel_slice_batch1": torch.randn(1, 16, 6, 4)[:, 4:12],
        "transposed": torch.randn(2, 8, 4, 6).transpose(2, 3),
        "nhwc_permuted": torch.randn(2, 6, 4, 8).permute(0, 3, 1, 2),
        "odd_size1_strides": torch.randn(1, 8, 6, 4).as_strided((1, 8, 6, 4), (7, 24, 4, 1)),
        "strided_rows": torch.randn(2, 8, 12, 4)[:, :, ::2],
        "width1": torch.randn(2, 8, 6, 1),
        "spatial1": torch.randn(2, 8, 1, 1),
        "spatial1_channels_last": torch.randn(2, 8, 1, 1).contiguous(memory_format=torch.channels_last),
    }


def _bn(training):
    return lambda x: F.batch_norm(x, torch.zeros(8), torch.ones(8), torch.rand(8), torch.rand(8), training)


_OPS = {
    # element-wise: TensorIterator layouts
    "relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "hardswish": F.hardswish, "sigmoid": torch.sigmoid, "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "relu6": F.relu6, "clamp_max": lambda x: x.clamp(max=2.0), "inplace_relu": lambda x: F.relu(x.clone(), inplace=True),
    "hardtanh": lambda x: F.hardtanh(x, -0.5, 0.5), "elu": F.elu, "selu": F.selu, "celu": F.celu, "silu": F.silu,
    "mish": F.mish, "tanh": torch.tanh, "softplus": F.softplus, "hardsigmoid": F.hardsigmoid, "erf": torch.erf,
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "sqrt": lambda x: x.abs().sqrt(),
    "rsqrt": lambda x: x.abs().rsqrt(), "reciprocal": torch.reciprocal, "sin": torch.sin, "cos": torch.cos,
    "log": lambda x: x.abs().log(), "exp2": torch.exp2, "expm1": torch.expm1, "log1p": lambda x: x.abs().log1p(),
    "sign": torch.sign, "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "trunc": torch.trunc,
    "square": torch.square, "threshold": lambda x: F.threshold(x, 0.1, 2.0), "clamp_min": lambda x: x.clamp_min(0.2),
    "clamp": lambda x: x.clamp(-0.3, 0.3), "sub_alpha": lambda x: torch.sub(x, x.flip(0), alpha=2),
    "lerp": lambda x: torch.lerp(x, torch.randn(x.shape), 0.3), "minimum": lambda x: torch.minimum(x, x.flip(1)),
    "mul_scalar": lambda x: x * 2.0, "rsub_scalar": lambda x: 1.0 - x, "add_self": lambda x: x + x,
    "add_row_major": lambda x: x + torch.randn(x.shape), "row_major_add": lambda x: torch.randn(x.shape) + x,
    "mul_channel_broadcast": lambda x: x * torch.randn(x.shape[0], x.shape[1], 1, 1),
    "channel_broadcast_mul": lambda x: torch.randn(x.shape[0], x.shape[1], 1, 1) * x,
    "add_bias_last_dim": lambda x: x + torch.randn(x.shape[-1]),
    "div_expanded": lambda x: x / x.sum(1, keepdim=True).expand_as(x),
    "mul_zero_dim": lambda x: x * torch.tensor(3.0), "pow": lambda x: x.pow(2), "lt": lambda x: x < 0.5,
    "addcmul": lambda x: torch.addcmul(torch.randn(x.shape[-1]), torch.randn(x.shape[-1]), x),
    "maximum": lambda x: torch.maximum(x, torch.randn(x.shape)),
    "div_floor": lambda x: torch.div(x, 0.7, rounding_mode="floor"),
    # kernels that follow the suggested memory format
    "conv": lambda x: F.conv2d(x, torch.randn(8, 8, 3, 3), padding=1),
    "conv_depthwise_strided": lambda x: F.conv2d(x, torch.randn(8, 1, 3, 3), stride=2, padding=1, groups=8),
    "conv1x1_bias": lambda x: F.conv2d(x, torch.randn(16, 8, 1, 1), torch.randn(16)),
    "conv_transposed": lambda x: F.conv_transpose2d(x, torch.randn(8, 4, 2, 2), stride=2),
    "conv1d": lambda x: F.conv1d(x.flatten(2), torch.randn(4, 8, 3), padding=1),
    "batch_norm": _bn(False), "batch_norm_training": _bn(True),
    "group_norm": lambda x: F.group_norm(x, 2, torch.randn(8), torch.randn(8)),
    "max_pool": lambda x: F.max_pool2d(x, 2, ceil_mode=True) if x.shape[-1] > 1 else F.max_pool2d(x, 1),
    "max_pool_padded": lambda x: F.max_pool2d(x, 3, 2, 1) if x.shape[-1] > 1 else F.max_pool2d(x, 1),
    "avg_pool": lambda x: F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False) if x.shape[-1] > 1 else x,
    "adaptive_avg_pool": lambda x: F.adaptive_avg_pool2d(x, 1), "adaptive_avg_pool_3": lambda x: F.adaptive_avg_pool2d(x, 3),
    "upsample_nearest": lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
    "upsample_bilinear": lambda x: F.interpolate(x, size=(5, 7), mode="bilinear"),
    "upsample_bicubic": lambda x: F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=True),
    "pad": lambda x: F.pad(x, (1, 2, 0, 3)), "crop": lambda x: F.pad(x, (0, 0, -1, 0)),
    "pad_nothing": lambda x: F.pad(x, (0, 0, 0, 0)), "crop_and_pad": lambda x: F.pad(x, (1, 0, 0, -1)),
    "repeat": lambda x: x.repeat(1, 2, 1, 1), "repeat_more_dims": lambda x: x.repeat(2, 1, 1, 1, 3),
    "cat_self": lambda x: torch.cat([x, x], 1), "cat_row_major": lambda x: torch.cat([x, torch.randn(x.shape)], 1),
    "cat_last_dim": lambda x: torch.cat([x, x.clone()], -1),
    "stack": lambda x: torch.stack([x, x], 1), "stack_last": lambda x: torch.stack([x.contiguous(), x.contiguous() * 2], -1),
    "cumsum": lambda x: x.cumsum(1), "cumsum_last": lambda x: torch.cumsum(x, -1),
    "cumsum_mask": lambda x: (x > 0).cumsum(2, dtype=torch.float32), "cumsum_int": lambda x: (x > 0).int().cumsum(1),
    # advanced indexing (aten.index): a relative-position bias table, channels, rows, batch
    "index_bias_table": lambda x: x.flatten(2)[:, :, (torch.arange(x[0, 0].numel())[:, None] - torch.arange(x[0, 0].numel())).abs()],
    "index_transposed_index": lambda x: x.flatten(2)[:, :, torch.arange(x[0, 0].numel()).repeat(3, 1).T],
    "index_channels": lambda x: x[:, torch.tensor([3, 0, 5])],
    "index_rows_2d": lambda x: x[:, :, torch.arange(x.shape[2]).flip(0).repeat(2, 1)],
    "index_two_dims": lambda x: x[:, torch.tensor([1, 2]), torch.zeros(2, dtype=torch.long)],
    "index_batch": lambda x: x[torch.arange(x.shape[0]).flip(0).repeat(2)], "index_last": lambda x: x[..., torch.zeros(1, dtype=torch.long)],
    "index_mask": lambda x: x[x > 0], "index_not_adjacent": lambda x: x[torch.zeros(2, dtype=torch.long), :, torch.zeros(2, dtype=torch.long)],
    "index_int32": lambda x: x[:, torch.tensor([3, 0], dtype=torch.int32)],
    # fresh row-major results
    "mean_spatial": lambda x: x.mean((2, 3), keepdim=True), "mean_channels": lambda x: x.mean(1),
    "sum_all": lambda x: x.sum(), "amax": lambda x: x.amax(-1), "norm": lambda x: torch.linalg.vector_norm(x, dim=1),
    "normalize": lambda x: F.normalize(x, dim=-1), "softmax": lambda x: x.softmax(-1),
    "log_softmax": lambda x: x.log_softmax(1), "layer_norm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "matmul": lambda x: x @ torch.randn(x.shape[-1], 5), "matmul_transposed": lambda x: x.transpose(-2, -1) @ x,
    "linear": lambda x: F.linear(x, torch.randn(5, x.shape[-1]), torch.randn(5)),
    "linear_flat": lambda x: F.linear(x.flatten(1), torch.randn(5, x[0].numel())),
    "baddbmm": lambda x: torch.baddbmm(torch.randn(1, 1, 1), x.flatten(0, 1), x.flatten(0, 1).transpose(1, 2)),
    # copies
    "clone": lambda x: x.clone(), "contiguous": lambda x: x.contiguous(),
    "clone_row_major": lambda x: x.clone(memory_format=torch.contiguous_format),
    "copy_into": lambda x: torch.empty(x.shape).copy_(x),
    "unfold": lambda x: F.unfold(x, 2) if x.shape[-1] > 1 else x,
    "fold": lambda x: F.fold(F.unfold(x, 2), x.shape[-2:], 2) if x.shape[-1] > 1 else x,
}


def _check(op: str, layout: str) -> set:
    """Run ``op`` on ``layout`` for real; check every rule that answers one of its operators.

    Returns the names of the operators a rule answered."""
    x = _layouts()[layout]
    recorder = _Recorder()
    with recorder, torch.no_grad():
        _OPS[op](x)
    answered = set()
    for func, args, kwargs, out in recorder.calls:
        rule = shapes.shape_rule(func)
        try:
            predicted = rule(args, kwargs) if rule is not None else None
        except shapes.LayoutUnknown:  # a channels-last convolution: the count falls back to a real pass
            assert func.overloadpacket.__name__ == "convolution"
            assert not (shapes.suggests_row_major(args[0]) and shapes.suggests_row_major(args[1]))
            continue
        if predicted is None:
            continue  # no rule, or the rule declines: PyTorch's meta kernel runs
        answered.add(func.overloadpacket.__name__)
        preds = predicted if isinstance(predicted, tuple) else (predicted,)
        assert len(preds) == len(out), func
        for (shape, dtype, stride), meta in zip(out, preds):
            assert meta.is_meta, func
            assert (tuple(meta.shape), meta.dtype) == (shape, dtype), func
            if meta.numel() > 1:  # (a single element has no layout to speak of)
                assert meta.stride() == stride, (func, meta.stride(), stride)
    return answered


@pytest.mark.parametrize("op", list(_OPS))
def test_rules_give_the_cpu_kernels_layout(op):
    for layout in _layouts():
        try:
            _check(op, layout)
        except AssertionError as error:
            raise AssertionError(f"{op} on a {layout} input: {error}") from error


def test_every_rule_answers_some_case():
    """The grid above is not vacuous: every rule answers (and so is checked) somewhere."""
    answered = set()
    for op in _OPS:
        for layout in ("row_major", "transposed", "channel_slice"):
            answered |= _check(op, layout)
    expected = {name for name in shapes.SHAPE_RULES if name not in ("arange", "empty", "_safe_softmax", "amin",
                                                                      "_upsample_nearest_exact2d", "mm")}
    expected |= {"add", "mul", "relu", "gelu", "div", "lt", "rsub", "hardswish", "addcmul", "maximum", "relu_"}
    assert expected <= answered, sorted(expected - answered)


@pytest.mark.parametrize("args, kwargs", [((10,), {}), ((2, 11, 3), {}), ((0.0, 1.0, 0.25), {}), ((5,), {"dtype": torch.float32})])
def test_arange_rule_matches_the_meta_kernel(args, kwargs):
    func = torch.ops.aten.arange.default if len(args) == 1 else torch.ops.aten.arange.start_step
    predicted = shapes.shape_rule(func)(args, dict(kwargs, device=torch.device("meta")))
    expected = torch.arange(*args, device="meta", **kwargs)
    assert (predicted.shape, predicted.dtype, predicted.stride()) == (expected.shape, expected.dtype, expected.stride())


@pytest.mark.parametrize("size, dtype", [((0,), torch.uint8), ((2, 0, 3), torch.float32), ((4, 5), None), ((), torch.float64)])
def test_empty_rule_matches_the_meta_kernel(size, dtype):
    """``F.batch_norm`` makes an empty reserve tensor on every call; the rule answers it."""
    kwargs = {"dtype": dtype, "layout": torch.strided, "device": torch.device("meta")}
    predicted = shapes.shape_rule(torch.ops.aten.empty.memory_format)((list(size),), kwargs)
    expected = torch.empty(size, device="meta", dtype=dtype)
    assert (predicted.shape, predicted.dtype, predicted.stride()) == (expected.shape, expected.dtype, expected.stride())


def test_elementwise_layout_follows_the_operands_stride_order():
    """A worked case of TensorIterator's rule: the result of ``x * 2`` for a transposed x is
    laid out like x (its last two dims swapped), not row-major."""
    x = torch.randn(2, 3, 5).transpose(1, 2)
    strides = shapes.elementwise_strides((2, 5, 3), [to_meta(x)], scalars=True)
    assert strides == (x * 2).stride() == (15, 1, 5)


def test_channels_last_reading_matches_pytorch():
    from torch._prims_common import suggest_memory_format  # PyTorch's own port of c10's rule

    for x in list(_layouts().values()) + [torch.randn(4, 1, 1, 1), torch.randn(1, 3, 1, 5).transpose(1, 3),
                                          torch.randn(2, 3, 4, 5, 6).contiguous(memory_format=torch.channels_last_3d)]:
        assert shapes.suggests_row_major(x) == (suggest_memory_format(x) == torch.contiguous_format), x.stride()


def test_memoized_elementwise_layouts_tell_operands_apart():
    """The memo of element-wise layouts is keyed on every operand's shape and strides: two
    operands of the same shape laid out differently, or a scalar operand, get their own answers."""
    shapes._LAYOUTS.clear()
    row_major = torch.randn(2, 5, 3)
    transposed = torch.randn(2, 3, 5).transpose(1, 2)
    for x, y, scalars in [(row_major, None, False), (transposed, None, False), (transposed, None, True),
                          (transposed, row_major, False), (row_major, transposed, False)] * 2:
        operands = [to_meta(x)] + ([to_meta(y)] if y is not None else [])
        expected = (x * 2.0) if scalars else (x + (y if y is not None else x))
        assert shapes.elementwise_strides((2, 5, 3), operands, scalars) == expected.stride()
    assert len(shapes._LAYOUTS) == 5


def test_distinct_nbytes_counts_each_tensor_once_and_skips_other_values():
    """The bytes the counter charges for an operator's reads: numel x element size per tensor,
    a tensor passed twice (``x * x``) once, numbers and ``None`` nothing."""
    from course.cost import ops

    x, y = torch.empty(2, 3, 4), torch.empty(5, dtype=torch.float64)
    assert ops.distinct_nbytes([x, x, None, 3.0, y]) == 2 * 3 * 4 * 4 + 5 * 8
    assert ops.distinct_nbytes([x, x.view(6, 4)]) == 2 * (2 * 3 * 4 * 4)  # a view is another tensor, read again
    assert ops.distinct_nbytes([]) == 0
