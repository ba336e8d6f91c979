"""Chapter 8 exercises: a latency lookup-table search, the roofline bound, the Pareto front.

Expected values come from an exhaustive search of the table (8.1), :mod:`course.cost` (a layer's MACs and bytes), the
:class:`course.latency.Roofline` model and :func:`course.pareto.pareto_front` (imported on
first use); none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, Exercise, draw_from, register


def _conv_cost(H, N, M, K, stride, groups):
    from course.cost import conv2d

    return conv2d(H, H, N, M, K, stride=stride, groups=groups, bias=False)


# --- 8.1 a latency lookup-table search ------------------------------------------------------------


def _total(table, choices):
    """Sum of the chosen entries, stage by stage (the order a learner's loop adds them)."""
    total = 0
    for stage, c in zip(table, choices):
        total += stage[c]
    return total


def _ref_lut_search(latency_ms, score, budget_ms):
    """The exhaustive search: every combination of one choice per stage, in ``itertools.product``
    order; the first of the highest total score whose total latency fits ``budget_ms``
    (``None`` when none fits)."""
    import itertools

    best, best_score = None, None
    for choices in itertools.product(*(range(len(stage)) for stage in latency_ms)):
        if _total(latency_ms, choices) <= budget_ms:
            total = _total(score, choices)
            if best is None or total > best_score:
                best, best_score = list(choices), total
    return best


def _greedy_lut(latency_ms, score, budget_ms):
    """Stage by stage, the best-scoring choice that still lets the later stages fit at their
    fastest: the typical wrong answer (right on some tables, not on all)."""
    picked, spent = [], 0.0
    for i, (lat, sc) in enumerate(zip(latency_ms, score)):
        rest = sum(min(stage) for stage in latency_ms[i + 1:])
        fits = [c for c in range(len(lat)) if spent + lat[c] + rest <= budget_ms]
        if not fits:
            return None
        c = max(fits, key=lambda c: (sc[c], -lat[c]))
        picked.append(c)
        spent += lat[c]
    return picked


def _diagnose_lut(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    lat, sc, budget = case["latency_ms"], case["score"], case["budget_ms"]
    fastest = sum(min(stage) for stage in lat)
    if expected is None:
        return (f"nothing fits: even the fastest choice of every stage takes {fastest:.2f} ms > the budget "
                f"{budget:g} ms; return None.")
    if got is None:
        return (f"a selection fits the budget (the fastest choice of every stage takes {fastest:.2f} ms <= "
                f"{budget:g} ms): return the best one, not None.")
    if (not isinstance(got, (list, tuple)) or len(got) != len(lat)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in got)):
        return f"return a list of {len(lat)} ints, one choice index per stage (or None when nothing fits)."
    bad = [i for i, c in enumerate(got) if not 0 <= c < len(lat[i])]
    if bad:
        return f"stage {bad[0]} has choices 0..{len(lat[bad[0]]) - 1}; you picked {got[bad[0]]}."
    ms, total, best = _total(lat, got), _total(sc, got), _total(sc, expected)
    if ms > budget:
        return f"your selection takes {ms:.2f} ms: over the budget of {budget:g} ms (add up its table entries)."
    if total < best:
        if list(got) == _greedy_lut(lat, sc, budget):
            return (f"the stage-by-stage greedy pick (best score that still fits, one stage at a time) scores "
                    f"{total:.2f} here, the best selection {best:.2f}: spending the budget early can cost more "
                    "later; search every combination (or dynamic programming over the budget).")
        return (f"your selection fits ({ms:.2f} ms) but scores {total:.2f}; the best selection under {budget:g} ms "
                f"scores {best:.2f}.")
    if total == best:
        return ("your selection is as good as the expected one: on a tie, return the first in itertools.product "
                "order (keep a new selection only when it scores strictly more).")
    return None


_LUT_CASES = (
    # greedy is right: the best choice of each stage fits
    dict(latency_ms=[[1.0, 2.0], [1.5, 3.0]], score=[[1.0, 2.0], [0.5, 1.5]], budget_ms=5.05),
    # greedy is wrong: spending on stage 0 leaves stage 1 its worst choice
    dict(latency_ms=[[1.0, 3.0], [1.0, 2.5]], score=[[0.0, 1.0], [0.0, 2.0]], budget_ms=4.05),
    # three stages, three choices (e.g. MBConv expand 3/6, or attention) and a tight budget
    dict(latency_ms=[[0.8, 1.4, 2.6], [1.1, 1.9, 3.2], [0.6, 1.0, 2.1]],
         score=[[0.0, 0.6, 1.1], [0.0, 0.9, 1.3], [0.0, 0.4, 1.2]], budget_ms=5.05),
    # nothing fits
    dict(latency_ms=[[2.0, 3.0], [2.5, 4.0]], score=[[0.0, 1.0], [0.0, 1.0]], budget_ms=4.0),
    # a slower choice that scores less is never worth it
    dict(latency_ms=[[1.0, 2.0, 1.5]], score=[[0.2, 0.1, 0.9]], budget_ms=3.0),
)


def _draw_lut(rng) -> Dict[str, Any]:
    """A random lookup table: 2-4 stages of 2-4 choices, latencies to 0.1 ms, integer scores (exact
    sums: a tie is a tie in any order), and a budget between the fastest and the slowest selection
    (ending in .05: no selection lands on it)."""
    stages = rng.randint(2, 4)
    latency = [[rng.randint(5, 40) / 10 for _ in range(rng.randint(2, 4))] for _ in range(stages)]
    score = [[rng.randint(0, 30) for _ in stage] for stage in latency]
    low, high = sum(min(s) for s in latency), sum(max(s) for s in latency)
    budget = round(rng.uniform(low - 0.5, high), 1) + 0.05
    return dict(latency_ms=latency, score=score, budget_ms=budget)


register(
    Exercise(
        id="8.1",
        title="Search a latency lookup table under a budget",
        points=2,
        answer="lut_search",
        kind=FUNCTION,
        cases=_LUT_CASES,
        hidden_cases=(
            dict(latency_ms=[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]], score=[[0.0, 1.5], [0.0, 1.0], [0.0, 1.2]],
                 budget_ms=4.05),
            dict(latency_ms=[[2.0, 1.0], [3.0, 0.5]], score=[[1.0, 0.0], [2.0, 0.0]], budget_ms=5.0),
            dict(latency_ms=[[0.5, 2.5, 1.5], [0.5, 1.0]], score=[[0.0, 2.0, 1.9], [0.0, 0.3]], budget_ms=2.55),
        ),
        draw=_draw_lut,
        reference=_ref_lut_search,
        diagnose=_diagnose_lut,
        hints=(
            "the total latency is the sum of the chosen blocks' table entries; try every combination of one "
            "choice per stage (itertools.product) and keep the best total score that fits.",
        ),
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
        draw=draw_from(peak_gmacs=[10.0, 38.0, 100.0, 1000.0, 9750.0], bandwidth_gbs=[10.0, 24.0, 100.0, 1555.0],
                       H=[7, 14, 28, 56], N=[16, 32, 64, 128, 256], M=[16, 32, 64, 256], K=[1, 3, 5],
                       groups=[1, 2, 16], where=lambda c: c["N"] % c["groups"] == 0 and c["M"] % c["groups"] == 0),
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


def _draw_front(rng) -> Dict[str, Any]:
    """A random table of 1-10 models on a coarse grid (1-8 ms, 60-70 %): ties and duplicates are frequent."""
    n = rng.randint(1, 10)
    return dict(latencies=[float(rng.randint(1, 8)) for _ in range(n)],
                accuracies=[float(rng.randint(60, 70)) for _ in range(n)])


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
        draw=_draw_front,
        reference=_ref_front,
        hints=(
            "sort by latency; walk the table keeping the best accuracy so far; a point is on the front "
            "when it beats it (exact duplicates of a front point stay too).",
        ),
        diagnose=_diagnose_front,
    )
)
