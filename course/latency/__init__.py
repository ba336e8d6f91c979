"""Honest timing and device profiling, by one measurement policy.

* :mod:`course.latency.policy`: the course's defaults (1 thread, >= 5 samples, warm-up,
  re-measure when noisy); ``policy.set_policy(threads=THREADS)`` in a notebook's first cells.
* ``measure(model, *inputs)`` -> :class:`Timing` (median ± IQR, noisy flag); ``environment()``
  (the threads the following measurements use); ``format_time`` (ns/µs/ms/s, 3 digits).
* ``measure_interleaved({"A": (fn, inputs), "B": ...})``: alternating rounds, so a load spike
  hits both; ``speedup(a, b)`` and ``describe_speedup(...)``: "A is 3.1x faster than B".
* ``profile_model`` -> :class:`Profile`: self time per module and per ATen operator
  (``torch.profiler``), reconciled with the unprofiled end-to-end time.
* ``measure_roofline`` -> :class:`Roofline` (peak GMAC/s from a large matmul, GB/s from a large
  copy); ``place_layers`` puts each layer of a model on it by arithmetic intensity.
* ``compare_backends``: ONNX export + ONNX Runtime timing beside eager PyTorch (same threads).
* ``sweep``: threads x batch size x channels_last.
* ``stamp()``: the environment stamp every result carries; ``default_device()``.

>>> from course.latency import measure, environment
"""

from course.latency import policy
from course.latency.units import format_time
from course.latency.devices import available_devices, default_device
from course.latency.timing import Environment, Timing, environment, measure
from course.latency.compare import Speedup, clearly_slower, describe_speedup, measure_interleaved, speedup
from course.latency.profile import ModuleTime, OperatorTime, Profile, op_type, profile_model, stamp
from course.latency.roofline import LayerPoint, Roofline, achieved_by_type, measure_roofline, place_layers
from course.latency.onnx import BackendComparison, compare_backends, export_onnx, ort_session
from course.latency.sweep import SweepRow, sweep, sweep_table

__all__ = [
    "BackendComparison",
    "Environment",
    "LayerPoint",
    "ModuleTime",
    "OperatorTime",
    "Profile",
    "Roofline",
    "Speedup",
    "SweepRow",
    "Timing",
    "achieved_by_type",
    "available_devices",
    "clearly_slower",
    "compare_backends",
    "default_device",
    "describe_speedup",
    "environment",
    "export_onnx",
    "format_time",
    "measure",
    "measure_interleaved",
    "measure_roofline",
    "op_type",
    "ort_session",
    "place_layers",
    "policy",
    "profile_model",
    "speedup",
    "stamp",
    "sweep",
    "sweep_table",
]
