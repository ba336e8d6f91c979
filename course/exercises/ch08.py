"""Chapter 8 exercises: arithmetic intensity, the roofline bound, the Pareto front.

Expected values come from :mod:`course.cost` (a layer's MACs and bytes), the
:class:`course.latency.Roofline` model and :func:`course.pareto.pareto_front` (imported on
first use); none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, Exercise, draw_from, register


def _conv_cost(H, N, M, K, stride, groups):
    from course.cost import conv2d

    return conv2d(H, H, N, M, K, stride=stride, groups=groups, bias=False)


# --- 8.1 arithmetic intensity of a convolution ----------------------------------------------------


def _ref_intensity(H, N, M, K, stride, groups):
    return _conv_cost(H, N, M, K, stride, groups).arithmetic_intensity


def _diagnose_intensity(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (int, float)):
        return "return one number: MACs divided by bytes moved."
    cost = _conv_cost(**case)
    if cost.bytes_read and abs(got - cost.macs / cost.bytes_read) <= 1e-6 * abs(got):
        return "count the bytes written too: the output is stored (bytes = 4 x (input + weight + output elements))."
    elements = cost.bytes_moved // 4
    if abs(got - cost.macs / elements) <= 1e-6 * abs(got):
        return "bytes, not elements: float32 takes 4 bytes per element."
    if abs(got - 2 * expected) <= 1e-6 * abs(got):
        return "MACs per byte, not FLOPs per byte (FLOPs = 2 x MACs)."
    if case["groups"] > 1:
        return "a grouped conv's weight is K*K*(N/groups)*M and its MACs H'*W'*K*K*(N/groups)*M."
    if case["stride"] > 1:
        return "at stride 2 the output is H' = (H + 2*(K//2) - K)//2 + 1: fewer MACs and a smaller output."
    return None


_INTENSITY_CASES = (
    dict(H=56, N=64, M=64, K=3, stride=1, groups=1),
    dict(H=56, N=64, M=64, K=3, stride=1, groups=64),
    dict(H=14, N=512, M=512, K=1, stride=1, groups=1),
    dict(H=112, N=32, M=32, K=3, stride=2, groups=32),
    dict(H=28, N=128, M=256, K=3, stride=2, groups=1),
    dict(H=7, N=960, M=160, K=1, stride=1, groups=1),
    dict(H=28, N=96, M=96, K=5, stride=1, groups=96),
)

register(
    Exercise(
        id="8.1",
        title="Arithmetic intensity of a convolution",
        points=2,
        answer="conv_intensity",
        kind=FUNCTION,
        cases=_INTENSITY_CASES,
        hidden_cases=(
            dict(H=14, N=256, M=256, K=3, stride=1, groups=256),
            dict(H=28, N=40, M=240, K=1, stride=1, groups=1),
            dict(H=56, N=24, M=48, K=3, stride=2, groups=1),
        ),
        draw=draw_from(H=[7, 14, 28, 56, 112], N=[16, 32, 64, 128], M=[16, 32, 64, 256], K=[1, 3, 5], stride=[1, 2],
                       groups=[1, 2, 16], where=lambda c: c["N"] % c["groups"] == 0 and c["M"] % c["groups"] == 0),
        reference=_ref_intensity,
        rel_tol=1e-6,
        hints=(
            "intensity = MACs / bytes; bytes = 4 x (input H*W*N + weight K*K*(N/groups)*M + output H'*W'*M), "
            "no bias, padding K//2.",
        ),
        diagnose=_diagnose_intensity,
    )
)


# --- 8.2 the roofline bound of a layer ----------------------------------------------------------


def _roofline(peak_gmacs, bandwidth_gbs):
    from course.latency import Roofline

    return Roofline(peak_gmacs=peak_gmacs, bandwidth_gbs=bandwidth_gbs, matmul_n=0, copy_bytes=0)


def _ref_bound(peak_gmacs, bandwidth_gbs, H, N, M, K, groups):
    roof = _roofline(peak_gmacs, bandwidth_gbs)
    intensity = _conv_cost(H, N, M, K, 1, groups).arithmetic_intensity
    return (roof.bound(intensity), roof.attainable_gmacs(intensity))


def _diagnose_bound(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return 'return a pair: `return bound, attainable_gmacs` with bound "memory" or "compute".'
    bound, attainable = expected
    hints = []
    if got[0] not in ("memory", "compute"):
        hints.append('the bound is the string "memory" or "compute".')
    elif got[0] != bound:
        hints.append("compare the intensity with the ridge point peak / bandwidth: left of it, memory-bound.")
    if isinstance(got[1], (int, float)) and got[1] != attainable:
        if abs(got[1] - case["peak_gmacs"]) < 1e-9 and bound == "memory":
            hints.append("a memory-bound layer cannot reach the peak: attainable = bandwidth x intensity.")
        else:
            hints.append("attainable = min(peak, bandwidth x intensity), in GMAC/s (GB/s x MACs/byte).")
    return " ".join(hints) or None


_BOUND_CASES = (
    dict(peak_gmacs=100.0, bandwidth_gbs=20.0, H=56, N=64, M=64, K=3, groups=1),
    dict(peak_gmacs=100.0, bandwidth_gbs=20.0, H=56, N=64, M=64, K=3, groups=64),
    dict(peak_gmacs=100.0, bandwidth_gbs=20.0, H=56, N=24, M=144, K=1, groups=1),
    dict(peak_gmacs=200.0, bandwidth_gbs=20.0, H=56, N=24, M=144, K=1, groups=1),
    dict(peak_gmacs=30000.0, bandwidth_gbs=900.0, H=14, N=512, M=512, K=1, groups=1),
    dict(peak_gmacs=30000.0, bandwidth_gbs=900.0, H=28, N=256, M=256, K=3, groups=1),
    dict(peak_gmacs=30.0, bandwidth_gbs=15.0, H=7, N=160, M=960, K=1, groups=1),
)

register(
    Exercise(
        id="8.2",
        title="Predict the roofline bound of a layer",
        points=2,
        answer="roofline_bound",
        kind=FUNCTION,
        cases=_BOUND_CASES,
        hidden_cases=(
            dict(peak_gmacs=50.0, bandwidth_gbs=10.0, H=28, N=128, M=128, K=3, groups=1),
            dict(peak_gmacs=1000.0, bandwidth_gbs=100.0, H=56, N=32, M=32, K=3, groups=32),
            dict(peak_gmacs=10.0, bandwidth_gbs=40.0, H=7, N=512, M=512, K=1, groups=1),
        ),
        reference=_ref_bound,
        rel_tol=1e-6,
        output_names=("bound", "attainable_gmacs"),
        hints=(
            "intensity I = MACs / bytes (stride 1, padding K//2, no bias, float32); ridge = peak / bandwidth; "
            "attainable = min(peak, bandwidth x I).",
        ),
        diagnose=_diagnose_bound,
    )
)


# --- 8.3 the Pareto front --------------------------------------------------------------------------


def _ref_front(latencies, accuracies):
    from course.pareto import pareto_front

    return pareto_front(latencies, accuracies)


def _diagnose_front(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or not all(isinstance(i, int) for i in got):
        return "return a list of indices (ints) into the table, by increasing latency."
    if sorted(got) == sorted(expected):
        return "right points, wrong order: sort the indices by increasing latency."
    if any(i not in got for i in expected):
        return ("a point is dominated only when another is at least as fast AND at least as accurate "
                "(one of the two strictly); identical points both stay on the front.")
    return "a point with a faster or equally fast rival that is at least as accurate is not on the front."


_FRONT_CASES = (
    dict(latencies=[10.0, 20.0, 30.0], accuracies=[70.0, 75.0, 80.0]),
    dict(latencies=[10.0, 20.0, 30.0], accuracies=[80.0, 75.0, 70.0]),
    dict(latencies=[5.0, 12.0, 8.0, 30.0, 25.0, 9.0], accuracies=[67.4, 75.2, 72.0, 81.3, 79.4, 71.4]),
    dict(latencies=[10.0, 10.0, 15.0, 20.0], accuracies=[70.0, 72.0, 72.0, 74.0]),
    dict(latencies=[7.0, 7.0, 3.0, 12.0], accuracies=[75.0, 75.0, 60.0, 75.0]),
    dict(latencies=[4.2], accuracies=[71.0]),
)

register(
    Exercise(
        id="8.3",
        title="The Pareto front of a latency/accuracy table",
        points=2,
        answer="pareto_front",
        kind=FUNCTION,
        cases=_FRONT_CASES,
        hidden_cases=(
            dict(latencies=[3.0, 1.0, 2.0], accuracies=[50.0, 40.0, 60.0]),
            dict(latencies=[1.0, 2.0, 3.0, 4.0, 5.0], accuracies=[10.0, 30.0, 20.0, 40.0, 35.0]),
            dict(latencies=[2.0, 2.0], accuracies=[70.0, 70.0]),
        ),
        reference=_ref_front,
        hints=(
            "sort by latency; walk the table keeping the best accuracy so far; a point is on the front "
            "when it beats it (exact duplicates of a front point stay too).",
        ),
        diagnose=_diagnose_front,
    )
)
