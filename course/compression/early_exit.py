"""Early exit: stop computing for the images that are already easy.

An :class:`~course.compression.nets.EarlyExitNet` has a cheap classifier (the *exit head*)
after an early stage. At inference an image whose exit prediction is confident, top softmax
probability ``>= threshold``, stops there; the others continue through the rest of the network
(Teerapittayanon, McDanel, Kung, "BranchyNet: Fast Inference via Early Exiting from Deep Neural
Networks", ICPR 2016). With a fraction ``p`` of images exiting early, the *average* cost is

    MACs_avg = MACs(front) + MACs(exit head) + (1 - p) · MACs(back)

so the threshold trades accuracy for average MACs: ``threshold > 1`` never exits (the full
network plus the exit head's cost), ``threshold = 0`` always exits. The latency of one image
now depends on the image; a batch is only as fast as its slowest member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch
from torch import Tensor, nn

__all__ = ["ExitCosts", "ExitPoint", "exit_costs", "exit_curve"]


@dataclass(frozen=True)
class ExitCosts:
    """MACs of the three parts of an early-exit network for one image (counted by
    :func:`course.cost.count`): ``front`` (stem and stages up to the exit), ``exit_head``,
    ``back`` (the remaining stages and the final classifier)."""

    front: int
    exit_head: int
    back: int

    @property
    def full(self) -> int:
        """MACs of the plain network (no exit head): ``front + back``."""
        return self.front + self.back

    def average(self, exited_fraction: float) -> float:
        """``front + exit_head + (1 - p) · back`` for a fraction ``p`` of images exiting early."""
        if not 0 <= exited_fraction <= 1:
            raise ValueError(f"exited_fraction must be in [0, 1], got {exited_fraction!r}")
        return self.front + self.exit_head + (1 - exited_fraction) * self.back


class _Part(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def exit_costs(net, image_shape: Sequence[int] = (3, 32, 32)) -> ExitCosts:
    """Count the MACs of ``net``'s front, exit head and back on one image."""
    from course.cost import count

    x = torch.zeros(1, *image_shape)
    with torch.no_grad():
        h = net.front(x)
    front = count(_Part(net.front), x).macs
    head = count(net.exit_head, h).macs
    back = count(_Part(net.back), h).macs
    return ExitCosts(front, head, back)


@dataclass(frozen=True)
class ExitPoint:
    """The early-exit network at one threshold: test accuracy (%), fraction of images that
    exited early, average MACs per image."""

    threshold: float
    accuracy: float
    exited: float
    average_macs: float


@torch.no_grad()
def exit_curve(net, x: Tensor, y: Tensor, thresholds: Sequence[float]) -> List[ExitPoint]:
    """Accuracy and average MACs of ``net`` on ``(x, y)`` at each threshold.

    Both heads are computed once for every image; at a threshold an image takes the exit head's
    prediction when its top softmax probability is ``>= threshold``, else the final head's:
    the same decisions as ``net.infer(x, threshold)`` (tested), without recomputing.
    """
    costs = exit_costs(net, tuple(x.shape[1:]))
    net.eval()
    exit_logits, final_logits = [], []
    for i in range(0, len(x), 500):
        e, f = net(x[i:i + 500])
        exit_logits.append(e)
        final_logits.append(f)
    exit_logits, final_logits = torch.cat(exit_logits), torch.cat(final_logits)
    confidence = exit_logits.softmax(1).amax(1)
    exit_pred, final_pred = exit_logits.argmax(1), final_logits.argmax(1)
    points = []
    for t in thresholds:
        exited = confidence >= t
        pred = torch.where(exited, exit_pred, final_pred)
        p = int(exited.sum()) / len(y)
        points.append(ExitPoint(float(t), 100.0 * int((pred == y).sum()) / len(y), p, costs.average(p)))
    return points
