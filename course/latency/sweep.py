"""Latency sweeps over the settings a number depends on: threads, batch size, memory format.

A latency is only meaningful with its settings: one thread or eight, batch 1 or 64, NCHW or
channels-last (NHWC). :func:`sweep` measures every combination; each row carries the
environment stamp, and the thread count is restored afterwards.

>>> import torch
>>> rows = sweep(torch.nn.Conv2d(8, 8, 3), (8, 16, 16), threads=(1,), batch=(1, 2), budget_s=0.05)
>>> [(r.threads, r.batch, r.channels_last) for r in rows]
[(1, 1, False), (1, 2, False)]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.latency.compare import measure_interleaved
from course.latency.profile import stamp
from course.latency.timing import Timing

if TYPE_CHECKING:  # for the annotation only
    from course.tables import Table

__all__ = ["SweepRow", "sweep", "sweep_table"]


@dataclass(frozen=True)
class SweepRow:
    """One setting of a sweep and its timing.

    Attributes:
        threads, batch, channels_last: the setting.
        timing: the measured :class:`Timing` of one call (the whole batch).
        environment: :func:`course.latency.stamp` for this row.
    """

    threads: int
    batch: int
    channels_last: bool
    timing: Timing
    environment: dict = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return self.timing.median_ms

    @property
    def ms_per_image(self) -> float:
        """Median time divided by the batch size: throughput's view of latency."""
        return self.timing.median_ms / self.batch

    @property
    def images_per_s(self) -> float:
        return self.batch / self.timing.median_s


def sweep(
    model: nn.Module,
    input_shape: Tuple[int, ...] = (3, 224, 224),
    threads: Sequence[int] = (1,),
    batch: Sequence[int] = (1,),
    channels_last: Sequence[bool] = (False,),
    device: Optional[str | torch.device] = None,
    budget_s: float = 0.5,
    seed: int = 0,
) -> List[SweepRow]:
    """Measure ``model`` at every combination of ``threads`` x ``batch`` x ``channels_last``.

    Args:
        model: left unchanged (a channels-last copy is made when needed), run in eval mode.
        input_shape: one input without the batch dimension, e.g. ``(3, 224, 224)``.
        threads: CPU thread counts (each restored afterwards, see :func:`course.latency.measure`);
            the default, one thread, is the course policy's.
        batch: batch sizes ``B``; the input is ``(B, *input_shape)``, seeded.
        channels_last: ``False`` = NCHW (PyTorch's default), ``True`` = NHWC for the weights and
            the input (``torch.channels_last``; needs a 4-D input).
        device: where to run (``None``: where the model's parameters are).
        budget_s: budget of each setting's measurement. The settings of one thread count are
            measured together in alternating rounds (:func:`course.latency.measure_interleaved`,
            by the course's policy), so a load spike hits them all; thread counts one after
            the other (a thread count is process-wide).

    Returns:
        One :class:`SweepRow` per combination, in ``product(threads, batch, channels_last)`` order.
    """
    if not threads or not batch or not channels_last:
        raise ValueError("threads, batch and channels_last each need at least one value")
    for t in threads:
        if not isinstance(t, int) or t < 1:
            raise ValueError(f"threads must be positive integers, got {t!r}")
    for b in batch:
        if not isinstance(b, int) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r}")
    if any(channels_last) and len(input_shape) != 3:
        raise ValueError(f"channels_last needs a (N, H, W) input_shape, got {input_shape!r}")
    if device is None:
        params = list(model.parameters())
        device = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.eval()
    variants = {False: model}
    if any(channels_last):
        variants[True] = copy.deepcopy(model).to(memory_format=torch.channels_last)
    rows = []
    gen = torch.Generator().manual_seed(seed)
    inputs = {b: torch.randn(b, *input_shape, generator=gen).to(device) for b in batch}
    try:
        for t in threads:  # one thread count at a time; its settings interleaved
            cases = {}
            for b, cl in product(batch, channels_last):
                x = inputs[b].contiguous(memory_format=torch.channels_last) if cl else inputs[b]
                cases[(b, cl)] = (variants[cl], (x,))
            timings = measure_interleaved(cases, device=device, threads=t, budget_s=budget_s * len(cases))
            for (b, cl), timing in timings.items():
                rows.append(SweepRow(threads=t, batch=b, channels_last=cl, timing=timing, environment=stamp(device, t)))
    finally:
        model.train(was_training)
    return rows


def sweep_table(rows: Sequence[SweepRow]) -> "Table":
    """:func:`sweep` rows as a :class:`course.tables.Table` (``print`` it): threads, batch,
    format, time per call (median ± IQR, noisy marked), ms per image and images per second."""
    from course.tables import table

    shown = [{"threads": r.threads, "batch": r.batch, "format": "channels_last" if r.channels_last else "NCHW",
              "timing": r.timing, "per_image": r.ms_per_image, "images_per_s": r.images_per_s} for r in rows]
    return table(shown, [("threads", "threads"), ("batch", "batch"), ("format", "format"), ("timing", "per call"),
                         ("per_image", "per image", "ms"), ("images_per_s", "images/s", ".1f")])
