"""The roofline of this device: measured peak arithmetic rate and memory bandwidth, and each
layer of a model placed on it by its arithmetic intensity.

The roofline model (Williams, Waterman and Patterson, "Roofline: an insightful visual
performance model for multicore architectures", CACM 2009): a layer that does ``W`` MACs and
moves ``Q`` bytes has the arithmetic intensity ``I = W / Q`` (MACs per byte). It can run at most
at

    attainable(I) = min(peak, bandwidth · I)        [MAC/s]

``peak`` is first probed here with a large matrix product (``n x n @ n x n``: ``n³`` MACs);
``bandwidth`` with a large copy (``numel`` float32 elements read and written: ``8·numel``
bytes). A probe is a lower bound of what the device can do: when a layer of a model runs
faster than the probe did, the roof is the best rate *observed* on this device
(:meth:`Roofline.including`, applied by :func:`place_layers`), so no measured point sits above
the roof. The *ridge point* ``peak / bandwidth`` separates memory-bound layers (intensity left
of it: depthwise convolutions, norms, activations, element-wise adds) from compute-bound ones
(right: dense and 1x1 convolutions with many channels, large linears).

>>> import torch
>>> roof = measure_roofline(fast=True, budget_s=0.2)
>>> roof.peak_gmacs > 0 and roof.bandwidth_gbs > 0
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
from torch import nn

from course.latency.profile import Profile, profile_model, stamp
from course.latency.timing import Timing, measure

__all__ = ["LayerPoint", "Roofline", "measure_bandwidth", "measure_peak", "measure_roofline", "place_layers"]

#: (matmul n, copy elements) for the full and the FAST measurement. The full copy (64 MiB per
#: tensor) is far larger than any CPU cache; the FAST one (16 MiB) may partly sit in a large L3.
SIZES = {"full": (2048, 16 * 2**20), "fast": (768, 4 * 2**20)}


@dataclass(frozen=True)
class Roofline:
    """A device's measured roofline.

    Attributes:
        peak_gmacs: measured peak arithmetic rate, in GMAC/s (1 GMAC/s = 2 GFLOP/s).
        bandwidth_gbs: measured memory bandwidth, in GB/s (10⁹ bytes per second).
        matmul_n: size of the matrix product that measured the peak.
        copy_bytes: bytes moved by one copy (read + write) that measured the bandwidth.
        peak_timing, copy_timing: the two :class:`Timing` measurements.
        environment: :func:`course.latency.stamp` of the measurement.
    """

    peak_gmacs: float
    bandwidth_gbs: float
    matmul_n: int
    copy_bytes: int
    peak_timing: Optional[Timing] = None
    copy_timing: Optional[Timing] = None
    environment: dict = field(default_factory=dict)
    peak_source: str = "matmul probe"
    bandwidth_source: str = "copy probe"
    probe_peak_gmacs: Optional[float] = None
    probe_bandwidth_gbs: Optional[float] = None

    def including(self, points: Sequence["LayerPoint"]) -> "Roofline":
        """This roofline raised to the best rates observed in ``points`` (from
        :func:`place_layers`): the compute roof becomes the highest achieved rate (work / time)
        when a layer beat the matmul probe, the memory roof the highest achieved bandwidth
        (bytes / time) when a layer beat the copy probe. So no measured point lies above the
        roof. The probes' values stay in ``probe_peak_gmacs`` / ``probe_bandwidth_gbs``; the
        ``*_source`` fields say which measurement set each roof."""
        peak, peak_source = self.peak_gmacs, self.peak_source
        bandwidth, bandwidth_source = self.bandwidth_gbs, self.bandwidth_source
        for p in points:
            if p.achieved_gmacs > peak:
                peak, peak_source = p.achieved_gmacs, f"layer {p.name or '(model)'} ({p.op})"
            moved_gbs = p.bytes / (p.time_ms * 1e-3) / 1e9
            if moved_gbs > bandwidth:
                bandwidth, bandwidth_source = moved_gbs, f"layer {p.name or '(model)'} ({p.op})"
        return dataclasses.replace(
            self, peak_gmacs=peak, bandwidth_gbs=bandwidth, peak_source=peak_source,
            bandwidth_source=bandwidth_source,
            probe_peak_gmacs=self.probe_peak_gmacs if self.probe_peak_gmacs is not None else self.peak_gmacs,
            probe_bandwidth_gbs=(self.probe_bandwidth_gbs if self.probe_bandwidth_gbs is not None
                                 else self.bandwidth_gbs),
        )

    @property
    def ridge(self) -> float:
        """The ridge point ``peak / bandwidth``, in MACs per byte."""
        return self.peak_gmacs / self.bandwidth_gbs

    def attainable_gmacs(self, intensity: float) -> float:
        """``min(peak, bandwidth · intensity)``, in GMAC/s, for ``intensity`` in MACs per byte."""
        if intensity < 0:
            raise ValueError(f"intensity must be >= 0, got {intensity!r}")
        return min(self.peak_gmacs, self.bandwidth_gbs * intensity)

    def bound(self, intensity: float) -> str:
        """``"memory"`` when ``intensity`` is left of the ridge point, else ``"compute"``."""
        return "memory" if intensity < self.ridge else "compute"

    def __str__(self) -> str:
        threads = self.environment.get("threads", "?")
        noisy = [name for name, t in (("matmul", self.peak_timing), ("copy", self.copy_timing)) if t is not None and t.noisy]
        return (f"peak {self.peak_gmacs:.1f} GMAC/s ({2 * self.peak_gmacs:.1f} GFLOP/s, {self.peak_source}), "
                f"bandwidth {self.bandwidth_gbs:.1f} GB/s ({self.bandwidth_source}), ridge point "
                f"{self.ridge:.2f} MACs/byte ({self.environment.get('device', '?')}, {threads} thread"
                f"{'' if threads == 1 else 's'})" + (f" NOISY probe(s): {', '.join(noisy)}" if noisy else ""))


def _tensor(*shape: int, device: Optional[str | torch.device], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=gen).to(device or "cpu")


def measure_peak(
    n: int = 2048,
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
) -> tuple:
    """Peak arithmetic rate from an ``n x n @ n x n`` float32 product: ``n³`` MACs per call.

    Returns ``(GMAC/s, Timing)``.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n!r}")
    a, b = _tensor(n, n, device=device, seed=0), _tensor(n, n, device=device, seed=1)
    timing = measure(torch.mm, a, b, threads=threads, budget_s=budget_s)
    return n**3 / timing.median_s / 1e9, timing


def measure_bandwidth(
    numel: int = 16 * 2**20,
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
) -> tuple:
    """Memory bandwidth from copying ``numel`` float32 elements: ``8 · numel`` bytes moved
    (4 read, 4 written per element). Returns ``(GB/s, Timing)``."""
    if numel < 1:
        raise ValueError(f"numel must be positive, got {numel!r}")
    src = _tensor(numel, device=device, seed=2)
    dst = torch.empty_like(src)
    timing = measure(dst.copy_, src, threads=threads, budget_s=budget_s)
    return 8 * numel / timing.median_s / 1e9, timing


def measure_roofline(
    fast: bool = False,
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
    matmul_n: Optional[int] = None,
    copy_numel: Optional[int] = None,
) -> Roofline:
    """Measure this device's roofline: :func:`measure_peak` and :func:`measure_bandwidth`.

    Args:
        fast: smaller sizes (:data:`SIZES`) for CI; the full sizes are larger than caches.
        device: ``None`` for the CPU, else ``"cuda"``/``"mps"``.
        threads: CPU threads (restored afterwards); ``None``: the course policy's (1).
        budget_s: budget of each of the two measurements.
        matmul_n, copy_numel: override the sizes.
    """
    n, numel = SIZES["fast" if fast else "full"]
    n, numel = matmul_n or n, copy_numel or numel
    peak, peak_timing = measure_peak(n, device=device, threads=threads, budget_s=budget_s)
    bandwidth, copy_timing = measure_bandwidth(numel, device=device, threads=threads, budget_s=budget_s)
    return Roofline(
        peak_gmacs=peak,
        bandwidth_gbs=bandwidth,
        matmul_n=n,
        copy_bytes=8 * numel,
        peak_timing=peak_timing,
        copy_timing=copy_timing,
        environment=stamp(device if device is not None else "cpu", peak_timing.threads),
    )


@dataclass(frozen=True)
class LayerPoint:
    """One layer placed on the roofline.

    Attributes:
        name: module name; ``op``: its operator type (:func:`course.latency.profile.op_type`).
        macs: its MACs; ``elementwise``: its element-wise operations (for layers without MACs).
        bytes: bytes it reads and writes (the counter's ``bytes_read + bytes_written``).
        time_ms: its measured self time per pass (profiled), in ms.
        work: what the intensity counts: ``macs`` when > 0, else ``elementwise`` (one
            element-wise operation counted like one MAC).
        intensity: ``work / bytes``, in operations per byte.
        achieved_gmacs: ``work / time``, in G operations per second.
        attainable_gmacs: the roofline's bound at this intensity.
        bound: ``"memory"`` or ``"compute"``.
    """

    name: str
    op: str
    macs: int
    elementwise: int
    bytes: int
    time_ms: float
    work: int
    intensity: float
    achieved_gmacs: float
    attainable_gmacs: float
    bound: str


def place_layers(
    model: nn.Module,
    x: torch.Tensor,
    roofline: Roofline,
    profile: Optional[Profile] = None,
    runs: int = 5,
    threads: Optional[int] = None,
) -> List[LayerPoint]:
    """Place every module that does work on ``roofline``: intensity from :func:`course.cost.count`
    (its *own* MACs and bytes), achieved rate from a profile (its *own* self time).

    Args:
        model, x: the network and its input.
        roofline: from :func:`measure_roofline` (same device and threads, ideally).
        profile: a :func:`profile_model` of the same ``model(x)``; profiled here when ``None``.
        runs, threads: for the profile made here.

    Returns:
        One :class:`LayerPoint` per module with MACs or element-wise work and bytes moved; its
        ``attainable_gmacs`` and ``bound`` are read on ``roofline.including(points)``, the roof
        raised to the best rates observed, so ``achieved_gmacs <= attainable_gmacs`` for every
        point. ``bound`` is ``"memory"`` when the layer's intensity is left of that roof's
        ridge point, else ``"compute"``.
    """
    from course.cost import count

    if profile is None:
        profile = profile_model(model, x, runs=runs, threads=threads)
    report = count(model, x)
    own = {("" if r["module"] == "(model)" else r["module"]): r for r in report.rows()}
    points = []
    for m in profile.modules:
        row = own.get(m.name)
        if row is None:
            continue
        moved = row["bytes_read"] + row["bytes_written"]
        work = row["macs"] or row["elementwise"]
        if not work or not moved or m.self_ms <= 0:
            continue
        intensity = work / moved
        points.append(
            LayerPoint(
                name=m.name,
                op=m.op,
                macs=row["macs"],
                elementwise=row["elementwise"],
                bytes=moved,
                time_ms=m.self_ms,
                work=work,
                intensity=intensity,
                achieved_gmacs=work / (m.self_ms * 1e-3) / 1e9,
                attainable_gmacs=roofline.attainable_gmacs(intensity),
                bound=roofline.bound(intensity),
            )
        )
    roof = roofline.including(points)
    return [dataclasses.replace(p, attainable_gmacs=roof.attainable_gmacs(p.intensity), bound=roof.bound(p.intensity))
            for p in points]


def achieved_by_type(points: Sequence[LayerPoint]) -> dict:
    """Per operator type: total work / total time, in G operations per second."""
    work, time = {}, {}
    for p in points:
        work[p.op] = work.get(p.op, 0) + p.work
        time[p.op] = time.get(p.op, 0.0) + p.time_ms
    return {op: work[op] / (time[op] * 1e-3) / 1e9 for op in work if time[op] > 0}
