"""Platform-aware architecture search, small: a latency lookup table and MnasNet's reward.

MnasNet (Tan, Chen, Pang, Vasudevan, Sandler, Howard, Le, "MnasNet: Platform-Aware Neural
Architecture Search for Mobile", CVPR 2019) searches for the model ``m`` maximising

    reward(m) = ACC(m) · (LAT(m) / T)^w,   w = alpha if LAT(m) <= T else beta

with ``T`` the target latency; ``alpha = beta = -0.07`` (a soft constraint: twice the latency
costs about 5% of reward) or ``alpha = 0, beta = -1`` (a hard one). MnasNet measured LAT on
real phones; later work (FBNet, Wu et al., CVPR 2019; ProxylessNAS, Cai et al., ICLR 2019)
predicts it from a **lookup table** of per-block latencies measured once on the device:
``LAT(m) ≈ stem + sum of the blocks' entries + head``.

Here the search space is :class:`course.compression.nets.SearchNet`'s: a fixed sequence of
positions (output channels and stride, :data:`POSITIONS`), and at each position a choice of
depthwise kernel (3 or 5), expansion (1, 3 or 6) and squeeze-and-excitation (off or on),
:data:`CHOICES`. ACC comes from a short training run (a *proxy*).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.compression.nets import STEM, SearchNet, search_block

if TYPE_CHECKING:
    from course.latency import Timing

__all__ = [
    "CHOICES",
    "POSITIONS",
    "Candidate",
    "LatencyTable",
    "evolve",
    "measure_table",
    "mnasnet_reward",
    "spec_of",
    "steadiest",
]

#: ``(M, stride)`` of each searchable position; input 32x32 -> 16 -> 8 -> 4.
POSITIONS: Tuple[Tuple[int, int], ...] = ((24, 2), (24, 1), (40, 2), (40, 1), (80, 2))
#: The choices at every position: ``(K, expansion, se)``.
CHOICES: Tuple[Tuple[int, int, int], ...] = tuple((K, e, se) for K in (3, 5) for e in (1, 3, 6) for se in (0, 1))


def mnasnet_reward(accuracy: float, latency: float, target: float, alpha: float = -0.07,
                   beta: float = -0.07) -> float:
    """MnasNet's reward ``ACC · (LAT / T)^w`` with ``w = alpha`` if ``LAT <= T`` else ``beta``."""
    if not latency > 0 or not target > 0:
        raise ValueError(f"latency and target must be positive, got {latency!r} and {target!r}")
    w = alpha if latency <= target else beta
    return accuracy * (latency / target) ** w


def spec_of(choice_indices: Sequence[int]) -> List[List[int]]:
    """The :class:`SearchNet` spec of one choice (an index into :data:`CHOICES`) per position."""
    if len(choice_indices) != len(POSITIONS):
        raise ValueError(f"need one choice per position ({len(POSITIONS)}), got {len(choice_indices)}")
    spec = []
    for (M, stride), i in zip(POSITIONS, choice_indices):
        K, e, se = CHOICES[i]
        spec.append([K, e, M, stride, se])
    return spec


@dataclass
class LatencyTable:
    """Per-block latencies measured on this device (ms, median), for :data:`POSITIONS` x :data:`CHOICES`.

    Attributes:
        blocks: ``{(position, choice index): ms}``.
        stem_ms, head_ms: the fixed parts (stem; pooling and classifier).
        threads: the thread count of every measurement; ``noisy``: entries whose IQR was over
            10% of the median; ``environment``: the stamp.
    """

    blocks: Dict[Tuple[int, int], float]
    stem_ms: float
    head_ms: float
    threads: int
    noisy: List[Tuple[int, int]] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def predict(self, choice_indices: Sequence[int]) -> float:
        """Predicted latency (ms) of the model with these choices: stem + blocks + head."""
        return self.stem_ms + self.head_ms + sum(self.blocks[(p, c)] for p, c in enumerate(choice_indices))

    def range_ms(self) -> Tuple[float, float]:
        """Predicted latency of the fastest and the slowest model of the space."""
        fast = sum(min(self.blocks[(p, c)] for c in range(len(CHOICES))) for p in range(len(POSITIONS)))
        slow = sum(max(self.blocks[(p, c)] for c in range(len(CHOICES))) for p in range(len(POSITIONS)))
        return self.stem_ms + self.head_ms + fast, self.stem_ms + self.head_ms + slow


def _inputs() -> List[Tuple[int, int]]:
    """``(N, H)`` entering each position for a 32x32 image."""
    out, N, H = [], STEM, 32
    for M, stride in POSITIONS:
        out.append((N, H))
        N, H = M, H // stride
    return out


def steadiest(measure_once: Callable[[], "Timing"], retries: int = 2) -> "Timing":
    """``measure_once()``, measured again up to ``retries`` times while the result stays noisy
    (IQR over 10% of the median after the policy's own re-measurement); the steadiest (lowest
    IQR / median) is kept. A table of 60 short timings on a shared machine otherwise keeps a
    few noisy entries, and one noisy entry misprices every candidate that uses it."""
    timing = measure_once()
    for _ in range(retries):
        if not timing.noisy:
            break
        again = measure_once()
        if again.relative_spread < timing.relative_spread:
            timing = again
    return timing


def measure_table(threads: int = 1, budget_s: float = 0.05, image: int = 32, seed: int = 0,
                  retries: int = 2) -> LatencyTable:
    """Measure every block of the space at batch 1 on the CPU with :func:`course.latency.measure`.

    ``len(POSITIONS) · len(CHOICES)`` = 60 blocks, plus the stem and the head; each timing gets
    ``budget_s`` seconds under the course's latency policy (at least 5 samples, re-measured when
    noisy), and an entry still noisy is measured again up to ``retries`` times (:func:`steadiest`).
    """
    from course.latency import measure, stamp

    if image != 32:
        raise ValueError("the search space is laid out for 32x32 images")

    def timed(module: nn.Module, x: torch.Tensor):
        return steadiest(lambda: measure(module, x, threads=threads, budget_s=budget_s), retries)

    torch.manual_seed(seed)
    blocks, noisy = {}, []
    for p, ((M, stride), (N, H)) in enumerate(zip(POSITIONS, _inputs())):
        x = torch.randn(1, N, H, H)
        for c, (K, e, se) in enumerate(CHOICES):
            block = search_block(N, K, e, M, stride, se).eval()
            timing = timed(block, x)
            blocks[(p, c)] = timing.median_ms
            if timing.noisy:
                noisy.append((p, c))
    net = SearchNet(spec_of([0] * len(POSITIONS))).eval()
    stem_ms = timed(net.stem, torch.randn(1, 3, image, image)).median_ms
    last = POSITIONS[-1][0]
    head = nn.Sequential(net.pool, net.fc).eval()
    h = image
    for _, stride in POSITIONS:
        h //= stride
    head_ms = timed(head, torch.randn(1, last, h, h)).median_ms
    return LatencyTable(blocks, stem_ms, head_ms, threads, noisy, stamp("cpu", threads))


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture: its choices, spec, predicted latency (ms), proxy accuracy (%),
    reward, and the order it was evaluated in (``step``)."""

    choices: Tuple[int, ...]
    spec: Tuple[Tuple[int, ...], ...]
    latency_ms: float
    accuracy: float
    reward: float
    step: int


def evolve(table: LatencyTable, proxy: Callable[[List[List[int]]], float], target_ms: float,
           initial: int = 6, mutations: int = 6, alpha: float = -0.07, beta: float = -0.07,
           seed: int = 0) -> List[Candidate]:
    """A small evolutionary search (regularised evolution, Real et al., AAAI 2019, shrunk).

    ``initial`` random architectures are evaluated; then ``mutations`` times the best of three
    random members of the population (by reward) is copied with one position's choice changed
    at random, evaluated, and added, and the oldest member leaves. ``proxy(spec)`` returns the
    accuracy (%) of a short training run; latency is the table's prediction. Returns every
    candidate evaluated, in order (``max(result, key=reward)`` is the answer).
    """
    rng = random.Random(seed)
    history: List[Candidate] = []
    population: List[Candidate] = []

    def evaluate(choices: Tuple[int, ...]) -> Candidate:
        spec = spec_of(choices)
        latency = table.predict(choices)
        accuracy = float(proxy(spec))
        candidate = Candidate(choices, tuple(tuple(b) for b in spec), latency, accuracy,
                              mnasnet_reward(accuracy, latency, target_ms, alpha, beta), len(history))
        history.append(candidate)
        return candidate

    for _ in range(initial):
        population.append(evaluate(tuple(rng.randrange(len(CHOICES)) for _ in POSITIONS)))
    for _ in range(mutations):
        parent = max(rng.sample(population, min(3, len(population))), key=lambda c: c.reward)
        child = list(parent.choices)
        position = rng.randrange(len(POSITIONS))
        child[position] = rng.choice([c for c in range(len(CHOICES)) if c != child[position]])
        population.append(evaluate(tuple(child)))
        population.pop(0)
    return history
