"""The Pareto front of a cost-vs-accuracy table: the points no other point beats on both.

>>> pareto_front([10, 20, 30], [70, 80, 75])
[0, 1]
"""

from __future__ import annotations

from typing import List, Sequence

__all__ = ["pareto_front"]


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> List[int]:
    """Indices of the Pareto-optimal points (lower cost and higher accuracy are better), by
    increasing cost.

    A point is dominated when another has ``cost <=`` and ``accuracy >=`` with one of the two
    strict; identical points are all kept. One sweep after sorting by (cost, -accuracy): a
    point is on the front when it beats the best accuracy seen so far (O(n log n)).
    """
    if len(costs) != len(accuracies):
        raise ValueError(f"costs and accuracies differ in length: {len(costs)} vs {len(accuracies)}")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    front: List[int] = []
    best_acc = best_cost = None
    for i in order:
        c, a = costs[i], accuracies[i]
        if best_acc is None or a > best_acc:
            front.append(i)
            best_acc, best_cost = a, c
        elif a == best_acc and c == best_cost:
            front.append(i)  # an exact duplicate of a front point
    return front
