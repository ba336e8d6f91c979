"""Honest timing and device profiling.

* ``measure(model, *inputs)`` -> :class:`Timing` (median ± IQR), under a budget; ``environment()``.
* ``profile_model`` -> :class:`Profile`: self time per module and per ATen operator
  (``torch.profiler``), reconciled with the unprofiled end-to-end time.
* ``measure_roofline`` -> :class:`Roofline` (peak GMAC/s from a large matmul, GB/s from a large
  copy); ``place_layers`` puts each layer of a model on it by arithmetic intensity.
* ``compare_backends``: ONNX export + ONNX Runtime timing beside eager PyTorch (same threads).
* ``sweep``: threads x batch size x channels_last.
* ``stamp()``: the environment stamp every result carries.

>>> from course.latency import measure, environment
"""

from course.latency.timing import Timing, environment, measure
from course.latency.profile import ModuleTime, OperatorTime, Profile, op_type, profile_model, stamp
from course.latency.roofline import LayerPoint, Roofline, achieved_by_type, measure_roofline, place_layers
from course.latency.onnx import BackendComparison, compare_backends, export_onnx, ort_session
from course.latency.sweep import SweepRow, sweep, sweep_table

__all__ = [
    "BackendComparison",
    "LayerPoint",
    "ModuleTime",
    "OperatorTime",
    "Profile",
    "Roofline",
    "SweepRow",
    "Timing",
    "achieved_by_type",
    "compare_backends",
    "environment",
    "export_onnx",
    "measure",
    "measure_roofline",
    "op_type",
    "ort_session",
    "place_layers",
    "profile_model",
    "stamp",
    "sweep",
    "sweep_table",
]
