"""Quantization: real numbers stored as small integers, ``x ≈ scale · (q - zero_point)``.

Affine (asymmetric) quantization to ``b`` bits maps the range ``[x_min, x_max]`` (widened to
contain 0, so that 0 is exact: zero padding, ReLU) onto the integers ``[q_min, q_max]``:

    scale = (x_max - x_min) / (q_max - q_min)
    zero_point = q_min - round(x_min / scale)         (clamped to [q_min, q_max])
    q = clamp(round(x / scale) + zero_point, q_min, q_max),   x̂ = scale · (q - zero_point)

Unsigned ``b``-bit integers have ``[q_min, q_max] = [0, 2^b - 1]``; signed ones
``[-2^(b-1), 2^(b-1) - 1]``. Weights are usually quantized *symmetrically* (zero point 0,
``scale = max|w| / (2^(b-1) - 1)``) and *per output channel* (one scale per filter).

The module has the arithmetic (:func:`scale_zero_point`, :func:`quantize`,
:func:`fake_quantize`, :func:`integer_linear`), the simulation of a whole quantized model
(:func:`fake_quantize_model`), real int8 inference with ONNX Runtime (:func:`ort_static_int8`,
:func:`ort_dynamic_int8`) and the CPU's int8 instructions (:func:`int8_instructions`).
References: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi, "Quantizing deep convolutional
networks for efficient inference: A whitepaper", arXiv:1806.08342, 2018.
"""

from __future__ import annotations

import copy
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "OrtModel",
    "fake_quantize",
    "fake_quantize_model",
    "fold_batchnorm",
    "int8_instructions",
    "integer_linear",
    "needs_reduce_range",
    "ort_dynamic_int8",
    "ort_fp32",
    "ort_predict",
    "ort_static_int8",
    "qrange",
    "quantize",
    "dequantize",
    "quantize_multiplier",
    "scale_zero_point",
    "symmetric_scale",
]


def qrange(bits: int, signed: bool = False) -> Tuple[int, int]:
    """``(q_min, q_max)`` of ``bits``-bit integers: ``(0, 2^b - 1)`` or ``(-2^(b-1), 2^(b-1) - 1)``."""
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an int in 2..16, got {bits!r}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def scale_zero_point(x_min: float, x_max: float, bits: int = 8, signed: bool = False) -> Tuple[float, int]:
    """Affine quantization parameters ``(scale, zero_point)`` for values in ``[x_min, x_max]``.

    The range is first widened to contain 0; ``scale = (x_max - x_min) / (q_max - q_min)``
    (``1.0`` when the range is empty); ``zero_point = q_min - round(x_min / scale)`` clamped to
    ``[q_min, q_max]`` (``round`` halves to even, like ``torch.round``). This is PyTorch's
    ``MinMaxObserver`` rule.
    """
    if x_min > x_max:
        raise ValueError(f"x_min must be <= x_max, got {x_min} > {x_max}")
    q_min, q_max = qrange(bits, signed)
    x_min, x_max = min(float(x_min), 0.0), max(float(x_max), 0.0)
    scale = (x_max - x_min) / (q_max - q_min)
    if scale == 0.0:
        scale = 1.0
    zero_point = q_min - round(x_min / scale)
    return scale, int(min(max(zero_point, q_min), q_max))


def symmetric_scale(abs_max: Tensor, bits: int = 8) -> Tensor:
    """Symmetric (zero point 0) signed scale(s): ``max|x| / (2^(b-1) - 1)`` (1 where ``max|x| = 0``)."""
    q_max = qrange(bits, signed=True)[1]
    scale = torch.as_tensor(abs_max, dtype=torch.float32) / q_max
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize(x: Tensor, scale, zero_point, bits: int = 8, signed: bool = False) -> Tensor:
    """``clamp(round(x / scale) + zero_point, q_min, q_max)`` as int64 (``scale`` and ``zero_point``
    may be tensors that broadcast against ``x``: per-channel quantization)."""
    q_min, q_max = qrange(bits, signed)
    return (torch.round(x / scale) + zero_point).clamp(q_min, q_max).to(torch.int64)


def dequantize(q: Tensor, scale, zero_point) -> Tensor:
    """``scale · (q - zero_point)`` as float32."""
    return (q.to(torch.float32) - zero_point) * scale


def fake_quantize(x: Tensor, scale, zero_point, bits: int = 8, signed: bool = False) -> Tensor:
    """Quantize then dequantize: the float values an integer kernel would see (same as
    ``torch.fake_quantize_per_tensor_affine(x, scale, zero_point, q_min, q_max)``)."""
    return dequantize(quantize(x, scale, zero_point, bits, signed), scale, zero_point)


# --- integer-only arithmetic (Jacob et al. 2018) ------------------------------------------------


def quantize_multiplier(multiplier: float) -> Tuple[int, int]:
    """``(m0, shift)`` with ``multiplier ≈ m0 · 2^-(31 + shift)`` and ``m0`` a 31-bit integer in
    ``[2^30, 2^31)``: how an integer-only kernel applies a real ``0 < multiplier < 1``."""
    if not 0 < multiplier < 1:
        raise ValueError(f"multiplier must be in (0, 1), got {multiplier!r}")
    shift = 0
    while multiplier < 0.5:
        multiplier *= 2
        shift += 1
    m0 = round(multiplier * 2 ** 31)
    if m0 == 2 ** 31:
        m0 //= 2
        shift -= 1
    return m0, shift


def integer_linear(x_q: Tensor, x_zero_point: int, w_q: Tensor, bias_q: Tensor, multiplier: float,
                   y_zero_point: int, fixed_point: bool = False) -> Tensor:
    """A quantized linear layer in integers only: ``(B, N) -> (B, M)`` uint8 outputs.

    ``acc = sum_n (x_q - x_zp) · w_q[m, n] + bias_q[m]`` in int32 (weights symmetric int8,
    ``bias_q = round(bias / (s_x · s_w))``), then requantized to the output's scale:
    ``y_q = clamp(round(acc · multiplier) + y_zp, 0, 255)`` with ``multiplier = s_x · s_w / s_y``.
    ``fixed_point=True`` applies the multiplier as an integer ``m0`` and a right shift
    (:func:`quantize_multiplier`, rounding half up), as integer hardware does; the result can
    differ from the float rounding by 1 at exact ties.

    Args:
        x_q: ``(B, N)`` or ``(N,)`` ints in 0..255; w_q: ``(M, N)`` ints in -127..127;
        bias_q: ``(M,)`` int32 values.
    """
    x_q, w_q, bias_q = (torch.as_tensor(t, dtype=torch.int64) for t in (x_q, w_q, bias_q))
    acc = (x_q - x_zero_point) @ w_q.T + bias_q  # exact in int64 (int32 on hardware)
    if fixed_point:
        m0, shift = quantize_multiplier(multiplier)
        total = 31 + shift
        scaled = (acc * m0 + (1 << (total - 1))) >> total
    else:
        scaled = torch.round(acc.to(torch.float64) * multiplier).to(torch.int64)
    return (scaled + y_zero_point).clamp(0, 255)


# --- simulated (fake) quantization of a whole model ------------------------------------------


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) where each ``conv`` child followed by a ``bn`` child of the
    same module (the course's ``ConvBNAct``) is replaced by one conv with the BN folded in
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``; Chapter 7), and the BN by ``nn.Identity``.
    Same outputs (up to float rounding); what an int8 runtime quantizes."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv, bn)
            module.bn = nn.Identity()
    return folded


def _weighted(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def fake_quantize_model(model: nn.Module, bits: int, calibration: Optional[Tensor] = None,
                        weights: bool = True, activations: bool = True) -> nn.Module:
    """Simulate ``bits``-bit inference of ``model`` in float: a copy with BN folded, every conv and
    linear weight fake-quantized per output channel (symmetric, signed) and, when
    ``activations``, the input of every conv and linear fake-quantized per tensor (affine,
    unsigned) with the range observed on ``calibration`` ``(n, 3, H, W)`` (min and max).
    The placement matches ONNX Runtime's QDQ format: quantize-dequantize pairs on the inputs and
    weights of each conv and matmul.
    """
    qrange(bits)  # validates bits
    if activations and calibration is None:
        raise ValueError("activations=True needs calibration images to observe the ranges")
    sim = fold_batchnorm(model)
    layers = _weighted(sim)
    if weights:
        for layer in layers:
            w = layer.weight
            abs_max = w.abs().flatten(1).amax(1).view(-1, *([1] * (w.dim() - 1)))
            layer.weight.copy_(fake_quantize(w, symmetric_scale(abs_max, bits), 0, bits, signed=True))
    if activations:
        ranges: Dict[nn.Module, List[float]] = {}

        def observe(layer, args):
            x = args[0]
            lo, hi = ranges.get(layer, (float("inf"), float("-inf")))
            ranges[layer] = (min(lo, float(x.min())), max(hi, float(x.max())))

        hooks = [layer.register_forward_pre_hook(observe) for layer in layers]
        for i in range(0, len(calibration), 256):
            sim(calibration[i:i + 256])
        for h in hooks:
            h.remove()
        for layer in layers:
            scale, zero_point = scale_zero_point(*ranges[layer], bits=bits)
            layer.register_forward_pre_hook(
                lambda _, args, s=scale, z=zero_point: (fake_quantize(args[0], s, z, bits),) + tuple(args[1:]))
    return sim


# --- real int8 with ONNX Runtime -----------------------------------------------------------------


@dataclass
class OrtModel:
    """An ONNX model for ONNX Runtime: ``onnx`` (bytes), ``kind`` (``"fp32"``, ``"int8 static"``,
    ``"int8 dynamic"``) and what it was made with (``settings``)."""

    onnx: bytes
    kind: str
    settings: dict

    @property
    def bytes(self) -> int:
        """Size of the ``.onnx`` file."""
        return len(self.onnx)

    def op_counts(self) -> Dict[str, int]:
        """``{ONNX operator type: count}`` in the graph (QuantizeLinear, ConvInteger, ...)."""
        import onnx

        counts: Dict[str, int] = {}
        for node in onnx.load_from_string(self.onnx).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        return counts


def ort_fp32(model: nn.Module, image_shape: Sequence[int] = (3, 32, 32), opset: int = 17) -> OrtModel:
    """Export ``model`` (eval) to ONNX with a dynamic batch dimension (input ``"x"``, output ``"y"``)."""
    import io
    import warnings

    model = copy.deepcopy(model).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(model, (torch.zeros(1, *image_shape),), buffer, dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=opset, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return OrtModel(buffer.getvalue(), "fp32", {"opset": opset})


class _Batches:
    """An ONNX Runtime ``CalibrationDataReader`` over a tensor of images, in batches."""

    def __init__(self, images: Tensor, batch: int = 32):
        self.images, self.batch, self.position = images, batch, 0

    def get_next(self):
        if self.position >= len(self.images):
            return None
        chunk = self.images[self.position:self.position + self.batch].numpy()
        self.position += self.batch
        return {"x": chunk}

    def rewind(self):
        self.position = 0


def ort_static_int8(model: nn.Module, calibration: Tensor, per_channel: bool = True,
                    reduce_range: Optional[bool] = None) -> OrtModel:
    """Real int8 inference: ONNX Runtime static quantization in the QDQ format.

    The fp32 export (:func:`ort_fp32`) is pre-processed (``quant_pre_process``: shape inference
    and graph optimisation), then ``quantize_static`` runs the ``calibration`` images
    ``(n, 3, H, W)`` (take them from the *training* split) through it to record every
    activation's range (MinMax), and writes QuantizeLinear/DequantizeLinear pairs: uint8
    activations (affine), int8 weights (symmetric, ``per_channel`` scales). At run time
    ONNX Runtime fuses each DQ -> Conv -> Q pattern into an integer convolution.
    ``reduce_range`` uses 7-bit weights: ONNX Runtime's advice for x86 CPUs without VNNI, whose
    uint8 x int8 kernel (``vpmaddubsw``) adds pairs of products into int16 *with saturation*;
    7-bit weights keep those sums in range. ``None`` (default) decides from this CPU's flags
    (:func:`needs_reduce_range`).
    """
    if reduce_range is None:
        reduce_range = needs_reduce_range()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32 = ort_fp32(model, calibration.shape[1:])
    with tempfile.TemporaryDirectory(prefix="course-int8-") as work:
        work = Path(work)
        (work / "fp32.onnx").write_bytes(fp32.onnx)
        quant_pre_process(str(work / "fp32.onnx"), str(work / "prep.onnx"), skip_symbolic_shape=True)
        quantize_static(str(work / "prep.onnx"), str(work / "int8.onnx"), _Batches(calibration),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        data = (work / "int8.onnx").read_bytes()
    kind = "int8 static, 7-bit weights" if reduce_range else "int8 static"
    return OrtModel(data, kind, {"per_channel": per_channel, "reduce_range": reduce_range,
                                          "calibration_images": len(calibration), "format": "QDQ",
                                          "activations": "uint8", "weights": "int8"})


class _quiet_root_logger:
    """Hold the root logger at ERROR (ONNX Runtime's quantization tools warn through it)."""

    def __enter__(self):
        import logging

        self.logger = logging.getLogger()
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def ort_dynamic_int8(model: nn.Module, image_shape: Sequence[int] = (3, 32, 32)) -> OrtModel:
    """ONNX Runtime *dynamic* quantization: int8 weights; each activation's range is computed at
    run time, on every call (``DynamicQuantizeLinear``), and convolutions become ``ConvInteger``
    followed by float rescaling. Made for matmul-heavy models (LSTMs, transformers on CPUs);
    the course measures it on a CNN."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = ort_fp32(model, image_shape)
    with tempfile.TemporaryDirectory(prefix="course-int8-") as work:
        work = Path(work)
        (work / "fp32.onnx").write_bytes(fp32.onnx)
        with _quiet_root_logger():  # "Please consider to run pre-processing before quantization"
            quantize_dynamic(str(work / "fp32.onnx"), str(work / "dyn.onnx"), weight_type=QuantType.QInt8)
        data = (work / "dyn.onnx").read_bytes()
    return OrtModel(data, "int8 dynamic", {"weights": "int8", "activations": "uint8, ranges at run time"})


def ort_predict(session, x: Tensor, batch: int = 256) -> Tensor:
    """Logits of an ONNX Runtime session on ``x`` ``(n, 3, H, W)``, by batches."""
    import numpy as np

    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: x[i:i + batch].numpy()})[0] for i in range(0, len(x), batch)]
    return torch.from_numpy(np.concatenate(outs))


# --- the CPU's int8 instructions ----------------------------------------------------------------

#: CPU flags (Linux ``/proc/cpuinfo``) of instructions that speed up int8 dot products.
INT8_FLAGS = {
    "avx512_vnni": "AVX-512 VNNI (x86): 8-bit multiply-accumulate into int32, 64 per instruction",
    "avx_vnni": "AVX-VNNI (x86): the same on 256-bit registers",
    "amx_int8": "AMX-INT8 (x86): int8 matrix tiles",
    "avx512bw": "AVX-512 BW (x86): byte/word arithmetic on 512-bit registers (no fused int8 dot product)",
    "avx2": "AVX2 (x86): 256-bit int8 multiply-add in two steps (vpmaddubsw + vpmaddwd), can saturate",
    "asimddp": "Arm dot product (SDOT/UDOT)",
    "i8mm": "Arm int8 matrix multiply (SMMLA)",
}


def int8_instructions(cpuinfo: Optional[str] = None) -> Dict[str, bool]:
    """Which of :data:`INT8_FLAGS` this CPU reports, ``{flag: present}`` (``/proc/cpuinfo`` on
    Linux; ``cpuinfo`` text can be passed for testing). Empty on systems without that file."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return {flag: flag in flags for flag in INT8_FLAGS}


def needs_reduce_range(cpuinfo: Optional[str] = None) -> bool:
    """``True`` on an x86 CPU without fused int8 dot products (no AVX-512 VNNI, AVX-VNNI or AMX),
    where ONNX Runtime's uint8 x int8 kernels can saturate; ``False`` elsewhere (or unknown)."""
    found = int8_instructions(cpuinfo)
    x86 = found.get("avx2", False) or found.get("avx512bw", False)  # the x86 int8 paths ONNX Runtime uses
    fused = any(found.get(f, False) for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    return x86 and not fused


def describe_int8_support(cpuinfo: Optional[str] = None) -> str:
    """One paragraph on this CPU's int8 instructions (printed by the notebook)."""
    found = int8_instructions(cpuinfo)
    if not found:
        return f"could not read the CPU's flags on {platform.system()} {platform.machine()}"
    present = [f for f, ok in found.items() if ok]
    fused = [f for f in present if f in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")]
    lines = [f"{flag:12s} {'yes' if ok else 'no ':3s}  {INT8_FLAGS[flag]}" for flag, ok in found.items()]
    if fused:
        lines.append(f"This CPU has fused int8 dot-product instructions ({', '.join(fused)}): int8 kernels can run "
                     "up to ~4x the float32 multiply-accumulate rate.")
    elif "avx2" in present or "avx512bw" in present:
        lines.append("This CPU has no fused int8 dot product (no VNNI/AMX): int8 kernels use the two-step AVX2 "
                     "sequence, so expect a smaller speed-up than on a VNNI CPU.")
    else:
        lines.append("This CPU reports none of these instructions: expect little or no int8 speed-up.")
    return "\n".join(lines)
