"""Export a model to ONNX and time it in ONNX Runtime beside eager PyTorch, with the same threads.

ONNX Runtime is a different engine for the same graph: it fuses operators (conv + BN +
activation), picks its own kernels and runs without Python between operators. Comparing it with
eager PyTorch on one device, at one thread count, shows how much of a latency number belongs to
the *runtime* rather than to the architecture (the papers used Core ML, TensorRT or XNNPACK).

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
>>> result = compare_backends(net, torch.randn(1, 3, 32, 32), threads=1, budget_s=0.1)
>>> result.max_abs_diff < 1e-4
True
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from course.latency.compare import measure_interleaved
from course.latency.policy import resolve_threads
from course.latency.profile import stamp
from course.latency.timing import Timing, measure

__all__ = ["BackendComparison", "compare_backends", "export_onnx", "ort_session", "time_onnxruntime"]

OPSET = 18  # the first opset PyTorch's ONNX exporter (torch.export + onnxscript) writes natively


def export_onnx(model: nn.Module, x: torch.Tensor, opset: int = OPSET) -> bytes:
    """The ONNX graph of ``model(x)`` (eval mode), as bytes, with the exporter PyTorch maintains.

    ``torch.onnx.export(..., dynamo=True)``: ``torch.export`` captures the graph (no Python runs
    between operators), onnxscript translates each ATen operator, and the graph is optimized
    (constant folding, dead nodes removed). The input is named ``"x"`` and the output ``"y"``;
    shapes are fixed to ``x``'s (batch included). A copy of ``model`` is exported, so that
    nothing the capture leaves behind (some models cache tensors in plain attributes, e.g.
    timm's EfficientFormerV2) reaches the model that runs afterwards; the exporter's warnings
    are silenced.
    """
    exported = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "attributes ... were assigned during export"
        with torch.no_grad():
            program = torch.onnx.export(
                exported, (x,), dynamo=True, input_names=["x"], output_names=["y"], opset_version=opset,
                verbose=False,
            )
    return program.model_proto.SerializeToString()


def ort_session(onnx_model: bytes, threads: Optional[int] = None, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` with ``threads`` intra-op threads (``None``: the course
    policy's, as for PyTorch), one inter-op thread, all graph optimisations.

    ``device="cuda"`` uses the CUDA execution provider (``ValueError`` when it is not available).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = resolve_threads(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: keep notebooks clean
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("device 'cuda': this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ValueError(f"device {device!r}: ONNX Runtime timing here supports 'cpu' and 'cuda'")
    return ort.InferenceSession(onnx_model, options, providers=providers)


def time_onnxruntime(session, x: np.ndarray, threads: Optional[int] = None, budget_s: float = 1.0) -> Timing:
    """Median time of ``session.run`` on ``x`` (a float32 array), with :func:`course.latency.measure`.

    ``threads`` only labels the result (the session's threads were fixed when it was made);
    PyTorch's own thread count is set to it meanwhile, so nothing else competes.
    """
    feed = {session.get_inputs()[0].name: x}
    run: Callable[[], Any] = lambda: session.run(None, feed)  # noqa: E731
    return measure(run, threads=threads, budget_s=budget_s)


@dataclass(frozen=True)
class BackendComparison:
    """Eager PyTorch vs ONNX Runtime on one model, one input, one thread count.

    Attributes:
        eager, onnxruntime: the two :class:`Timing` results.
        max_abs_diff: ``max |y_eager - y_ort|`` over the output.
        max_abs_output: ``max |y_eager|`` (to read the difference against).
        export_s: seconds the export and the session creation took.
        threads: threads both engines used.
        environment: :func:`course.latency.stamp`.
    """

    eager: Timing
    onnxruntime: Timing
    max_abs_diff: float
    max_abs_output: float
    export_s: float
    threads: int
    environment: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """``eager / onnxruntime`` median time (> 1: ONNX Runtime is faster)."""
        return self.eager.median_s / self.onnxruntime.median_s

    def __str__(self) -> str:
        from course.latency.compare import speedup

        return (f"eager PyTorch {self.eager.short()} | ONNX Runtime {self.onnxruntime.short()} | "
                f"ONNX Runtime speed-up {speedup(self.onnxruntime, self.eager)} | {self.threads} thread"
                f"{'' if self.threads == 1 else 's'} | max |diff| {self.max_abs_diff:.1e}")


def compare_backends(
    model: nn.Module,
    x: torch.Tensor,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
    onnx_model: Optional[bytes] = None,
) -> BackendComparison:
    """Export ``model`` (eval mode), check that ONNX Runtime gives the same output, and time both
    engines with the same thread count.

    Args:
        model, x: the network and its input ``(B, 3, H, W)`` (CPU, or CUDA with onnxruntime-gpu).
        threads: for both engines; ``None``: the course policy's (1).
        budget_s: budget of each engine's timing; the two are measured in alternating rounds
            (:func:`course.latency.measure_interleaved`), so a load spike hits both.
        onnx_model: a previous :func:`export_onnx` of the same model and input shape, to reuse.
    """
    threads = resolve_threads(threads)
    model.eval()
    start = time.perf_counter()
    if onnx_model is None:
        onnx_model = export_onnx(model, x)
    session = ort_session(onnx_model, threads, device="cuda" if x.device.type == "cuda" else "cpu")
    export_s = time.perf_counter() - start
    x_np = x.detach().cpu().numpy()
    with torch.inference_mode():
        y = model(x).detach().cpu().numpy()
    y_ort = session.run(None, {session.get_inputs()[0].name: x_np})[0]
    feed = {session.get_inputs()[0].name: x_np}
    timings = measure_interleaved({"eager": (model, (x,)), "onnxruntime": (lambda: session.run(None, feed), ())},
                                  threads=threads, budget_s=2 * budget_s)
    return BackendComparison(
        eager=timings["eager"],
        onnxruntime=timings["onnxruntime"],
        max_abs_diff=float(np.abs(y - y_ort).max()),
        max_abs_output=float(np.abs(y).max()),
        export_s=export_s,
        threads=threads,
        environment=stamp(x.device, threads),
    )
