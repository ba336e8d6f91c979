"""Chapter 8 (device profiling): honest measurement, the roofline, eager vs ONNX Runtime, and the
accuracy-vs-latency capstone.

* :func:`cold_vs_warm`, :func:`sync_effect` -- what goes wrong without warm-up or synchronisation;
  :func:`batch_verdict` -- what batching did, from a sweep.
* :func:`layer_figure`, :func:`roofline_figure` -- FLOPs vs time per layer, achieved GMAC/s per
  operator type, and the layers on the device's measured roofline; :func:`roof_check`.
* :func:`compile_comparison` -- eager vs ``torch.compile`` vs ONNX Runtime (interleaved), with
  what preparing each costs (:func:`break_even_calls`); :func:`format_compilation`,
  :func:`describe_compilation`.
* :data:`CAPSTONE` -- the models of the talk; :data:`CAPSTONE_EXTRA` -- published numbers of
  those not in the course zoo (cited); :data:`DISTILLED` -- those whose published top-1 was
  trained with a teacher (:func:`distilled`); :func:`capstone_table` measures them on this device
  (eager PyTorch and ONNX Runtime); :func:`pareto_front`; :func:`capstone_figure`;
  :func:`is_cnn_enough`; :func:`capstone_widget` (device, threads, batch size, backend);
  :data:`MEASURED_SUBSET` (what the full run measures) and :func:`published_table` (all of them).
"""

from __future__ import annotations

import html
import io
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.latency import Timing, measure, stamp
from course.latency.policy import resolve_threads
from course.latency.devices import available_devices, default_device  # noqa: F401  (ch08.default_device)
from course.models import Paper, zoo
from course.pareto import pareto_front

if TYPE_CHECKING:  # for the annotation only
    from course.tables import Table

__all__ = [
    "CAPSTONE",
    "CAPSTONE_EXTRA",
    "DISTILLED",
    "FAST_SUBSET",
    "MEASURED_SUBSET",
    "RUNTIMES",
    "Compilation",
    "CapstoneModel",
    "CapstoneRow",
    "batch_verdict",
    "break_even_calls",
    "build_capstone_model",
    "capstone_figure",
    "capstone_table",
    "capstone_widget",
    "cold_vs_warm",
    "compile_comparison",
    "describe_compilation",
    "format_compilation",
    "distilled",
    "format_capstone",
    "is_cnn_enough",
    "layer_figure",
    "pareto_front",
    "published",
    "published_table",
    "roof_check",
    "roofline_figure",
    "sync_effect",
]

# --- honest measurement ------------------------------------------------------------------------


def cold_vs_warm(model: nn.Module, x: torch.Tensor, calls: int = 10) -> Dict[str, float]:
    """The first call of a fresh model against the following ones (ms): why warm-up matters.

    The first call allocates memory, selects kernels (oneDNN, cuDNN) and fills caches; timing it
    with the others inflates the mean. Returns ``{"first_ms", "median_rest_ms", "mean_all_ms"}``.
    """
    if calls < 2:
        raise ValueError(f"calls must be >= 2, got {calls!r}")
    times = []
    with torch.inference_mode():
        for _ in range(calls):
            start = time.perf_counter()
            model(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            times.append((time.perf_counter() - start) * 1e3)
    rest = sorted(times[1:])
    return {"first_ms": times[0], "median_rest_ms": rest[len(rest) // 2], "mean_all_ms": sum(times) / len(times)}


def sync_effect(model: nn.Module, x: torch.Tensor, calls: int = 10) -> Optional[Dict[str, float]]:
    """On CUDA or MPS: ms per call timed without and with synchronisation (kernels are
    asynchronous: without a sync the clock stops when the work is *queued*). ``None`` on the
    CPU, where every call returns when its work is done."""
    device = x.device
    if device.type not in ("cuda", "mps"):
        return None
    sync = torch.cuda.synchronize if device.type == "cuda" else torch.mps.synchronize
    out = {}
    with torch.inference_mode():
        model(x)
        for synced in (False, True):
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                model(x)
            if synced:
                sync()
            out["synced_ms" if synced else "unsynced_ms"] = (time.perf_counter() - start) * 1e3 / calls
            sync()
    return out


# --- layers: FLOPs vs time, and the roofline ---------------------------------------------------

def _figure(ncols: int, size: Tuple[float, float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(1, ncols)


def layer_figure(points, title: str = ""):
    """Left: measured time against work (MACs, or element-wise operations for layers without
    MACs) per layer, log-log, coloured by operator type, with the slope-1 line of the median
    rate; right: achieved G operations/s per type.

    ``points``: from :func:`course.latency.place_layers`.
    """
    from course.latency import achieved_by_type
    from course.plots import KIND_COLORS, latency_vs_macs

    fig, (left, right) = _figure(2, (11, 4))
    latency_vs_macs([(p.work, p.time_ms) for p in points], ax=left, kinds=[p.op for p in points])
    left.set_xlabel("work per layer (MACs; element-wise ops for layers without MACs)")
    left.set_ylabel("measured self time (ms)")
    rates = achieved_by_type(points)
    ops = [op for op in KIND_COLORS if op in rates]
    right.barh(ops, [rates[op] for op in ops], color=[KIND_COLORS[op] for op in ops])
    right.invert_yaxis()
    right.set_xlabel("achieved G operations / s (work / time)")
    if title:
        fig.suptitle(title)
    return fig


def roofline_figure(roofline, points=(), title: str = ""):
    """The roofline ``min(peak, bandwidth · I)`` (log-log) with ``points``
    (:func:`course.latency.place_layers`) at their intensity and achieved rate.

    The roof drawn is ``roofline.including(points)``: the best rates observed on this device
    (the probes, or a layer that beat them), so no point lies above it; the probes' own roof is
    dotted when a layer beat it. The vertical line is the ridge point: layers left of it are
    memory-bound, right of it compute-bound.
    """
    from course.plots import KIND_COLORS

    roof = roofline.including(points)
    fig, ax = _figure(1, (7.5, 4.6))
    intensities = [p.intensity for p in points] or [roof.ridge]
    lo = min(min(intensities), roof.ridge) / 4
    hi = max(max(intensities), roof.ridge) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [roof.attainable_gmacs(x) for x in xs], color="black", lw=2,
            label=f"roof: best observed ({roof.peak_source}; {roof.bandwidth_source})")
    if (roof.peak_gmacs, roof.bandwidth_gbs) != (roofline.peak_gmacs, roofline.bandwidth_gbs):
        ax.plot(xs, [roofline.attainable_gmacs(x) for x in xs], color="black", lw=1, ls=":",
                label="probes alone (matmul, copy)")
    ax.axvline(roof.ridge, color="black", ls=":", lw=1)
    ax.annotate(f"ridge {roof.ridge:.2f} MAC/B\n<- memory-bound | compute-bound ->", (roof.ridge, roof.peak_gmacs),
                xytext=(4, -24), textcoords="offset points", fontsize=7)
    for op, color in KIND_COLORS.items():
        mine = [p for p in points if p.op == op]
        if mine:
            ax.scatter([p.intensity for p in mine], [p.achieved_gmacs for p in mine], s=16, color=color, label=op, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (operations per byte moved)")
    ax.set_ylabel("G operations / s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    ax.set_title(title or f"peak {roof.peak_gmacs:.1f} GMAC/s, bandwidth {roof.bandwidth_gbs:.1f} GB/s", fontsize=9)
    return fig


def batch_verdict(grid) -> str:
    """What batching did on this device, one line per thread count and memory format, written
    from a :func:`course.latency.sweep` (the smallest against the largest batch measured)::

        1 thread, NCHW: 20.8 ms/image at batch 1, 47.0 ms/image at batch 8: 2.26x MORE per image
        (batching did not amortise anything here).

    A noisy timing is said so. ``grid``: :class:`course.latency.SweepRow` list with >= 2 batch sizes.
    """
    settings: Dict[tuple, list] = {}
    for row in grid:
        settings.setdefault((row.threads, row.channels_last), []).append(row)
    lines = []
    for (threads, channels_last), rows in sorted(settings.items()):
        small = min(rows, key=lambda r: r.batch)
        large = max(rows, key=lambda r: r.batch)
        if small.batch == large.batch:
            continue
        ratio = large.ms_per_image / small.ms_per_image
        if ratio < 0.95:
            verdict = f"{1 / ratio:.2f}x less per image (batching amortised per-call overheads)"
        elif ratio > 1.05:
            verdict = f"{ratio:.2f}x MORE per image (batching did not amortise anything here)"
        else:
            verdict = "the same per image within 5% (nothing to amortise at this size)"
        noisy = " (noisy: rerun on a quieter machine)" if small.timing.noisy or large.timing.noisy else ""
        lines.append(f"{threads} thread{'' if threads == 1 else 's'}, {'NHWC' if channels_last else 'NCHW'}: "
                     f"{_ms(small.ms_per_image)}/image at batch {small.batch}, {_ms(large.ms_per_image)}/image at "
                     f"batch {large.batch}: {verdict}{noisy}.")
    if not lines:
        raise ValueError("grid: the sweep needs at least two batch sizes for one setting")
    return "\n".join(lines)


def roof_check(roofline, points) -> str:
    """The roofline's promise checked on the measured layers: the roof drawn
    (``roofline.including(points)``) is the best rate observed, so no point may sit above it.
    Returns the sentence the notebook prints (it names the layer that set the peak, if one did)."""
    roof = roofline.including(points)
    above = [p for p in points if p.achieved_gmacs > roof.attainable_gmacs(p.intensity) * (1 + 1e-9)]
    if above:  # cannot happen with including(); kept as the check
        return f"{len(above)} layer(s) above the roof: " + ", ".join(p.name for p in above)
    return (f"No layer of {len(points)} sits above the roof: peak {roof.peak_gmacs:.1f} GMAC/s ({roof.peak_source}), "
            f"bandwidth {roof.bandwidth_gbs:.1f} GB/s ({roof.bandwidth_source}), ridge {roof.ridge:.2f} MACs/byte.")


# --- the capstone: the models of the talk ---------------------------------------------------------

#: Published numbers of the capstone models that the course zoo does not build, each with a hand
#: entry ``distilled`` (whether its top-1 was trained with a teacher network) from its source.
CAPSTONE_EXTRA: Dict[str, Paper] = {
    "resnet50": Paper(
        25.6, 4.1, 76.13,
        "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (ResNet-50; the "
        "paper's Table 1 gives 3.8 GFLOPs for v1, torchvision builds v1.5 with stride 2 in the 3x3: "
        "4.1 GMACs). Top-1 76.13 is torchvision's ResNet50_Weights.IMAGENET1K_V1 (torchvision docs; "
        "its recipe has no teacher)",
        convention="FLOPs (= multiply-adds)",
        distilled=False,
    ),
}


@dataclass(frozen=True)
class CapstoneModel:
    """One model of the capstone.

    Attributes:
        label: the name shown in tables and plots.
        name: the course zoo name (deploy variant for re-parameterized models), or the key of
            :data:`CAPSTONE_EXTRA` for a model only timm/torchvision build.
        fallback: ``"timm:NAME"`` or ``"torchvision:NAME"``, used when ``name`` is not in the zoo.
        kind: ``"CNN"`` or ``"transformer"`` (attention or MetaFormer token mixers: FastViT's
            RepMixer and MobileNetV4-Hybrid's Mobile MQA count as transformers; RepViT, a
            "ViT-style" CNN without attention, as a CNN).
    """

    label: str
    name: str
    fallback: str
    kind: str


#: The models of the talk, in the order of the table.
CAPSTONE: Tuple[CapstoneModel, ...] = (
    CapstoneModel("MobileNetV2 1.0", "mobilenetv2_100", "timm:mobilenetv2_100", "CNN"),
    CapstoneModel("MobileNetV3-Small", "mobilenetv3_small_100", "timm:mobilenetv3_small_100", "CNN"),
    CapstoneModel("MobileNetV3-Large", "mobilenetv3_large_100", "timm:mobilenetv3_large_100", "CNN"),
    CapstoneModel("ShuffleNet V2 1.0x", "shufflenet_v2_x1_0", "torchvision:shufflenet_v2_x1_0", "CNN"),
    CapstoneModel("MnasNet-A1", "mnasnet_a1", "timm:semnasnet_100", "CNN"),
    CapstoneModel("RepVGG-A0 (deploy)", "repvgg_a0_deploy", "timm:repvgg_a0", "CNN"),
    CapstoneModel("MobileOne-S0 (deploy)", "mobileone_s0_deploy", "timm:mobileone_s0", "CNN"),
    CapstoneModel("MobileOne-S1 (deploy)", "mobileone_s1_deploy", "timm:mobileone_s1", "CNN"),
    CapstoneModel("MobileOne-S2 (deploy)", "mobileone_s2_deploy", "timm:mobileone_s2", "CNN"),
    CapstoneModel("MobileOne-S3 (deploy)", "mobileone_s3_deploy", "timm:mobileone_s3", "CNN"),
    CapstoneModel("MobileOne-S4 (deploy)", "mobileone_s4_deploy", "timm:mobileone_s4", "CNN"),
    CapstoneModel("ResNet-50", "resnet50", "torchvision:resnet50", "CNN"),
    CapstoneModel("EfficientFormerV2-S0", "efficientformerv2_s0", "timm:efficientformerv2_s0", "transformer"),
    CapstoneModel("EfficientFormerV2-S1", "efficientformerv2_s1", "timm:efficientformerv2_s1", "transformer"),
    CapstoneModel("EfficientFormerV2-S2", "efficientformerv2_s2", "timm:efficientformerv2_s2", "transformer"),
    CapstoneModel("PoolFormer-S12", "poolformer_s12", "timm:poolformer_s12", "transformer"),
    CapstoneModel("PVTv2-B0", "pvt_v2_b0", "timm:pvt_v2_b0", "transformer"),
    CapstoneModel("Swin-T", "swin_tiny_patch4_window7_224", "timm:swin_tiny_patch4_window7_224", "transformer"),
    # since 2023 (issue 14): all in the course zoo, with cited top-1
    CapstoneModel("MobileNetV4-Conv-S", "mobilenetv4_conv_small", "timm:mobilenetv4_conv_small", "CNN"),
    CapstoneModel("MobileNetV4-Hybrid-M", "mobilenetv4_hybrid_medium", "timm:mobilenetv4_hybrid_medium", "transformer"),
    CapstoneModel("RepViT-M0.9 (deploy)", "repvit_m0_9_deploy", "timm:repvit_m0_9", "CNN"),
    CapstoneModel("RepViT-M1.0 (deploy)", "repvit_m1_0_deploy", "timm:repvit_m1_0", "CNN"),
    CapstoneModel("FastViT-T8 (deploy)", "fastvit_t8_deploy", "timm:fastvit_t8", "transformer"),
    CapstoneModel("FastViT-SA12 (deploy)", "fastvit_sa12_deploy", "timm:fastvit_sa12", "transformer"),
    CapstoneModel("EfficientViT-B1", "efficientvit_b1", "timm:efficientvit_b1", "transformer"),
    CapstoneModel("EfficientViT-M0", "efficientvit_m0", "timm:efficientvit_m0", "transformer"),
)

#: What the full (not FAST) run measures: both kinds across the latency range, every family of
#: the talk and since, one or two sizes each; the other models of :data:`CAPSTONE` are shown with
#: their counted MACs and cited top-1 (:func:`published_table`), and the widget measures them all.
MEASURED_SUBSET = (
    "mobilenetv2_100", "mobilenetv3_large_100", "shufflenet_v2_x1_0", "mobileone_s0_deploy", "mobileone_s2_deploy",
    "resnet50", "mobilenetv4_conv_small", "repvit_m0_9_deploy", "efficientformerv2_s0", "efficientformerv2_s1",
    "pvt_v2_b0", "fastvit_t8_deploy", "mobilenetv4_hybrid_medium", "efficientvit_b1", "efficientvit_m0",
    "swin_tiny_patch4_window7_224",
)

#: What FAST mode measures: small models of both kinds, none that needs timm.
FAST_SUBSET = ("mobilenetv2_100", "shufflenet_v2_x1_0", "mobileone_s0_deploy", "mobilenetv3_large_100", "pvt_v2_b0")


def _spec(name: str) -> CapstoneModel:
    for spec in CAPSTONE:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown capstone model {name!r}; choose from {[s.name for s in CAPSTONE]}")


def published(spec: CapstoneModel) -> Tuple[Optional[Paper], str]:
    """``(published numbers, source)`` of a capstone model without building it: the zoo's
    paper when the zoo has ``spec.name``, else :data:`CAPSTONE_EXTRA` (``None`` if neither)."""
    if spec.name in zoo:
        return zoo[spec.name].paper, "course zoo"
    return CAPSTONE_EXTRA.get(spec.name), spec.fallback.split(":")[0]


def distilled(spec: CapstoneModel) -> Optional[bool]:
    """Whether ``spec``'s published top-1 was trained with knowledge distillation (a teacher
    network): the zoo's :attr:`~course.models.zoo.Paper.distilled` for a zoo model, the hand
    entry of :data:`CAPSTONE_EXTRA` for a model only timm/torchvision build; ``None`` when
    neither knows."""
    paper, _ = published(spec)
    return None if paper is None else paper.distilled


#: The capstone models whose published top-1 was trained with a teacher network (read from the
#: zoo's papers and :data:`CAPSTONE_EXTRA` by :func:`distilled`): the capstone table's
#: "distilled" column and the stars of its figure. EfficientFormerV2 (Li et al., ICCV 2023,
#: Table 2) reports its accuracy with distillation.
DISTILLED = frozenset(spec.name for spec in CAPSTONE if distilled(spec))


def published_table(measured: Sequence[str] = ()) -> "Table":
    """Every capstone model's published numbers, without building one: top-1, whether it was
    trained with distillation, MACs and parameters as the paper counts them (its convention in
    the citation), the source of the numbers, and whether ``measured`` (names) includes it.
    ``print`` it; deterministic."""
    from course.tables import table

    rows = []
    for spec in CAPSTONE:
        paper, source = published(spec)
        rows.append({"model": spec.label, "kind": spec.kind, "top1": paper.top1 if paper else None,
                     "distilled": distilled(spec), "macs": paper.macs_g if paper else None,
                     "params": paper.params_m if paper else None, "source": source,
                     "measured": spec.name in measured})
    columns = [("model", "model"), ("kind", "kind"), ("top1", "top-1 %", ".1f"), ("distilled", "distilled"),
               ("macs", "GMACs (paper)", ".2f"), ("params", "params M (paper)", ".1f"), ("source", "numbers from")]
    if measured:
        columns.append(("measured", "measured below"))
    return table(rows, columns, notes=["distilled: the published top-1 was trained with a teacher network; "
                                       "EfficientFormerV2 and RepViT report theirs so, the others without one"])


def build_capstone_model(spec: CapstoneModel) -> Tuple[nn.Module, Optional[Paper], str, str]:
    """``(model in eval mode, published numbers, source, note)`` for one capstone model.

    The course zoo's model when it has ``spec.name`` (its paper numbers from the zoo); else the
    timm/torchvision ``spec.fallback`` with random weights (paper numbers from
    :data:`CAPSTONE_EXTRA` when there, else ``None``) and a note saying so.
    """
    from course.models.twins import create_twin
    from course.models.zoo import ZooEntry

    if spec.name in zoo:
        entry = zoo[spec.name]
        return entry.builder().eval(), entry.paper, "course zoo", ""
    library = spec.fallback.split(":")[0]
    model = create_twin(ZooEntry(name=spec.name, builder=lambda: None, twin=spec.fallback)).eval()
    paper = CAPSTONE_EXTRA.get(spec.name)
    note = "" if spec.name in CAPSTONE_EXTRA else f"not in the course zoo: built from {spec.fallback}, no paper numbers"
    return model, paper, library, note


@dataclass(frozen=True)
class CapstoneRow:
    """One model measured on this device.

    Attributes:
        label, name, kind, source: what was measured (``source``: "course zoo", "timm", "torchvision").
        top1, macs_g_paper, params_m_paper, citation: published numbers (``None`` if unknown).
        macs_g: MACs counted by :func:`course.cost.count` on one image, in G.
        params_m: parameters, in millions (counted).
        eager, onnxruntime: :class:`Timing` per call (``None`` when not measured).
        max_abs_diff: ``max |eager - ONNX Runtime|`` on the output (``None`` without ORT).
        max_abs_output: ``max |eager output|`` (the scale ``max_abs_diff`` is read against).
        batch, threads, device: the setting; ``environment``: the stamp; ``note``: fallbacks.
        distilled: the published top-1 was trained with distillation (:data:`DISTILLED`).
    """

    label: str
    name: str
    kind: str
    source: str
    top1: Optional[float]
    macs_g_paper: Optional[float]
    params_m_paper: Optional[float]
    citation: str
    macs_g: float
    params_m: float
    eager: Optional[Timing]
    onnxruntime: Optional[Timing]
    max_abs_diff: Optional[float]
    batch: int
    threads: int
    device: str
    environment: dict = field(default_factory=dict)
    note: str = ""
    max_abs_output: Optional[float] = None
    distilled: bool = False

    @property
    def outputs_match(self) -> Optional[bool]:
        """ONNX Runtime's output equals eager's: ``max |diff| <= 1e-4 · max(1, max |y|)``
        (``None`` when ONNX Runtime did not run)."""
        if self.max_abs_diff is None:
            return None
        return self.max_abs_diff <= 1e-4 * max(1.0, self.max_abs_output or 0.0)

    @property
    def eager_ms(self) -> Optional[float]:
        return self.eager.median_ms if self.eager else None

    @property
    def ort_ms(self) -> Optional[float]:
        return self.onnxruntime.median_ms if self.onnxruntime else None

    def latency_ms(self, backend: str = "eager") -> Optional[float]:
        """Median ms per call with ``backend`` ("eager" or "onnxruntime")."""
        if backend not in ("eager", "onnxruntime"):
            raise ValueError(f"backend must be 'eager' or 'onnxruntime', got {backend!r}")
        return self.eager_ms if backend == "eager" else self.ort_ms


def capstone_table(
    names: Optional[Sequence[str]] = None,
    fast: bool = False,
    threads: Optional[int] = None,
    batch: int = 1,
    device: str = "cpu",
    backends: Sequence[str] = ("eager", "onnxruntime"),
    budget_s: Optional[float] = None,
    seed: int = 0,
) -> List[CapstoneRow]:
    """Build and measure the capstone models on this device.

    Args:
        names: zoo / :data:`CAPSTONE_EXTRA` names (default: all of :data:`CAPSTONE`, or
            :data:`FAST_SUBSET` when ``fast``).
        fast: the FAST subset and a short budget.
        threads: CPU threads for both backends (``None``: the course policy's, 1); restored.
        batch: images per call (the input is ``(batch, 3, 224, 224)``, seeded).
        device: ``"cpu"``, ``"cuda"`` or ``"mps"`` (ONNX Runtime: CPU, or CUDA with onnxruntime-gpu).
        backends: any of ``"eager"``, ``"onnxruntime"``.
        budget_s: per timing (default 0.3 s in FAST mode, 1 s otherwise).

    Returns:
        One :class:`CapstoneRow` per model, in :data:`CAPSTONE` order. A backend that fails on
        a model (e.g. no ONNX export) leaves its timing ``None`` with the reason in ``note``.
    """
    from course.cost import count
    from course.latency.onnx import compare_backends

    for backend in backends:
        if backend not in ("eager", "onnxruntime"):
            raise ValueError(f"backends: expected 'eager' and/or 'onnxruntime', got {backend!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if names is None:
        names = FAST_SUBSET if fast else [s.name for s in CAPSTONE]
    specs = [_spec(n) for n in names]
    order = [s.name for s in CAPSTONE]
    specs.sort(key=lambda s: order.index(s.name))
    budget_s = budget_s or (0.3 if fast else 1.0)
    threads = resolve_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    x_cpu = torch.randn(batch, 3, 224, 224, generator=gen)
    x = x_cpu.to(device)
    rows = []
    for spec in specs:
        torch.manual_seed(seed)
        model, paper, source, note = build_capstone_model(spec)
        report = count(model, x_cpu[:1])
        model.to(device)
        eager = ort = diff = scale = None
        notes = [note] if note else []
        if "onnxruntime" in backends:
            try:
                result = compare_backends(model, x, threads=threads, budget_s=budget_s)
                eager, ort, diff = result.eager, result.onnxruntime, result.max_abs_diff
                scale = result.max_abs_output
            except Exception as exc:  # a model ONNX cannot export, or no ORT for this device
                notes.append(f"ONNX Runtime: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        if eager is None and "eager" in backends:
            eager = measure(model, x, threads=threads, budget_s=budget_s)
        if "eager" not in backends:
            eager = None
        rows.append(
            CapstoneRow(
                label=spec.label, name=spec.name, kind=spec.kind, source=source,
                top1=paper.top1 if paper else None,
                macs_g_paper=paper.macs_g if paper else None,
                params_m_paper=paper.params_m if paper else None,
                citation=paper.citation if paper else "",
                macs_g=report.macs / 1e9, params_m=report.params / 1e6,
                eager=eager, onnxruntime=ort, max_abs_diff=diff,
                batch=batch, threads=threads, device=str(x.device),
                environment=stamp(x.device, threads), note="; ".join(notes), max_abs_output=scale,
                distilled=spec.name in DISTILLED,
            )
        )
        del model
    return rows


def _usable(rows: Sequence[CapstoneRow], backend: str) -> List[CapstoneRow]:
    return [r for r in rows if r.top1 is not None and r.latency_ms(backend) is not None]


def capstone_figure(rows: Sequence[CapstoneRow], backend: str = "eager"):
    """Published top-1 against measured latency (left, with IQR error bars; a noisy point
    hollow) and against MACs (right), log x, CNNs as circles and transformers as triangles, the
    Pareto front of each panel as a step line, labels placed so that none overlaps another;
    "*" marks a top-1 trained with distillation."""
    from course.plots import label_points

    fig, axes = _figure(2, (12, 4.8))
    usable = _usable(rows, backend)
    env = usable[0].environment if usable else {}
    panels = (
        ([r.latency_ms(backend) for r in usable], f"measured latency, {backend} (ms per call)"),
        ([r.macs_g for r in usable], "MACs (G, counted)"),
    )
    for ax, (xs, xlabel) in zip(axes, panels):
        ys = [r.top1 for r in usable]
        for kind, marker, color in (("CNN", "o", "tab:blue"), ("transformer", "^", "tab:orange")):
            idx = [i for i, r in enumerate(usable) if r.kind == kind]
            faces = [("white" if ax is axes[0] and _timing(usable[i], backend).noisy else color) for i in idx]
            ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], marker=marker, facecolors=faces, edgecolors=color,
                       s=40, label=kind, zorder=3)
        if ax is axes[0]:  # measured latency: its IQR as horizontal error bars
            timings = [_timing(r, backend) for r in usable]
            ax.errorbar(xs, ys, xerr=[[max(0.0, x - t.q1_s * 1e3) for x, t in zip(xs, timings)],
                                      [max(0.0, t.q3_s * 1e3 - x) for x, t in zip(xs, timings)]],
                        fmt="none", ecolor="gray", elinewidth=0.8, capsize=2, zorder=2)
        front = pareto_front(xs, ys)
        if front:
            fx, fy = [xs[i] for i in front], [ys[i] for i in front]
            ax.step(fx, fy, where="post", color="black", lw=1.2, ls="--", label="Pareto front", zorder=2)
            ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="black", zorder=4)
        label_points(ax, xs, ys, [r.label.replace(" (deploy)", "") + (" *" if r.distilled else "") for r in usable],
                     fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ImageNet top-1 (%, published)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    if usable:
        r = usable[0]
        noisy = sum(_timing(u, backend).noisy for u in usable)
        fig.suptitle(f"{env.get('device_name', r.device)}: batch {r.batch}, {r.threads} thread(s), torch "
                     f"{env.get('torch', '?')}; * top-1 with distillation; error bars: IQR"
                     + (f"; hollow: noisy ({noisy})" if noisy else ""), fontsize=9)
    return fig


def _timing(row: CapstoneRow, backend: str) -> Timing:
    return row.eager if backend == "eager" else row.onnxruntime


def format_capstone(rows: Sequence[CapstoneRow]) -> "Table":
    """The capstone table as a :class:`course.tables.Table` (``print`` it): model, kind, top-1,
    distilled, GMACs, params, and one column per backend that was measured (eager, ONNX Runtime
    with its output difference): median ± IQR, noisy marked. Notes: the setting and the
    fallbacks."""
    from course.tables import table

    columns = [("label", "model"), ("kind", "kind"), ("top1", "top-1", ".1f"), ("distilled", "distilled"),
               ("macs_g", "GMACs", ".2f"), ("params_m", "params M", ".1f")]
    if any(r.eager is not None for r in rows):
        columns.append(("eager", "eager"))
    if any(r.onnxruntime is not None for r in rows):
        columns += [("onnxruntime", "ONNX Runtime"), ("max_abs_diff", "|diff|", ".1e")]
    notes = []
    if rows:
        r = rows[0]
        notes.append(f"batch {r.batch}, {r.threads} thread{'' if r.threads == 1 else 's'}, {r.device} "
                     f"({r.environment.get('device_name', '')}); top-1 and published MACs: the zoo's citations; "
                     "distilled: trained with a teacher network (the others were not)")
    notes += sorted({f"{r.label}: {r.note}" for r in rows if r.note})
    return table(rows, columns, notes=notes)


def _ms(milliseconds: float) -> str:
    from course.latency import format_time

    return format_time(milliseconds / 1e3)


def _budgets(latencies: Sequence[float]) -> List[float]:
    """Round latency budgets (1, 2, 5 x 10^k ms) spanning the measured latencies."""
    low, high = min(latencies), max(latencies)
    budgets, k = [], math.floor(math.log10(low))
    while True:
        for m in (1, 2, 5):
            b = m * 10 ** k
            if low <= b <= high * 1.0001:
                budgets.append(float(b))
            if b > high:
                return budgets or [float(high)]
        k += 1


def is_cnn_enough(rows: Sequence[CapstoneRow], backend: str = "eager",
                  budgets_ms: Optional[Sequence[float]] = None) -> str:
    """The talk's question answered for stated latency budgets, from this device's numbers.

    For each budget (default: round values, 1-2-5 ms series, across the measured range): the
    most accurate CNN and the most accurate transformer that fit in it, and which one to pick.
    Before that, the Pareto front (accuracy vs latency) and, for each transformer on it, the
    best CNN at no more latency. "*" marks a top-1 trained with distillation.
    """
    usable = _usable(rows, backend)
    if not usable:
        return "no model has both a published top-1 and a measured latency"
    ms = [r.latency_ms(backend) for r in usable]
    front = [usable[i] for i in pareto_front(ms, [r.top1 for r in usable])]
    cnn = [r for r in front if r.kind == "CNN"]
    vit = [r for r in front if r.kind != "CNN"]

    def name(r):
        return r.label + (" *" if r.distilled else "")

    lines = [f"Pareto front ({backend}, {usable[0].threads} thread(s), batch {usable[0].batch}): "
             + ", ".join(f"{name(r)} {_ms(r.latency_ms(backend))} / {r.top1:.1f}%" for r in front)]
    lines.append(f"CNNs on the front: {len(cnn)}; transformers on the front: {len(vit)}.")
    for t in vit:
        rivals = [r for r in usable if r.kind == "CNN" and r.latency_ms(backend) <= t.latency_ms(backend)]
        if rivals:
            best = max(rivals, key=lambda r: r.top1)
            lines.append(f"  {name(t)} ({t.top1:.1f}%): the best CNN at no more latency is {name(best)} "
                         f"({best.top1:.1f}%, {_ms(best.latency_ms(backend))}): {t.top1 - best.top1:+.1f} points for the transformer.")
        else:
            lines.append(f"  {name(t)} ({t.top1:.1f}%): no CNN measured is as fast.")
    if not vit:
        lines.append("On this device a CNN is enough: every point of the front is a CNN.")
    elif not cnn:
        lines.append("On this device no CNN is on the front: the transformers win at every latency.")
    lines.append("By latency budget (most accurate model that fits):")
    for budget in (budgets_ms if budgets_ms is not None else _budgets(ms)):
        fits = [r for r in usable if r.latency_ms(backend) <= budget]
        best_cnn = max((r for r in fits if r.kind == "CNN"), key=lambda r: r.top1, default=None)
        best_vit = max((r for r in fits if r.kind != "CNN"), key=lambda r: r.top1, default=None)
        parts = [f"CNN {name(best_cnn)} {best_cnn.top1:.1f}%" if best_cnn else "no CNN",
                 f"transformer {name(best_vit)} {best_vit.top1:.1f}%" if best_vit else "no transformer"]
        if best_cnn is None and best_vit is None:
            verdict = "nothing fits"
        elif best_vit is None or (best_cnn is not None and best_cnn.top1 >= best_vit.top1):
            verdict = "a CNN is enough"
        else:
            verdict = f"the transformer, by {best_vit.top1 - (best_cnn.top1 if best_cnn else 0):.1f} points" \
                if best_cnn else "only a transformer fits"
        lines.append(f"  <= {_ms(budget)}: {parts[0]} vs {parts[1]}: {verdict}.")
    if any(r.distilled for r in usable):
        lines.append("* top-1 trained with distillation (the others' were not): part of such a model's lead is the "
                     "training recipe, not the architecture.")
    return "\n".join(lines)


# --- compilation: eager vs torch.compile vs ONNX Runtime ---------------------------------------

#: The runtimes :func:`compile_comparison` knows, in the order of its table.
RUNTIMES = ("eager", "torch.compile", "onnxruntime")

#: ONNX graphs already exported in this session: ``{(label, input shape): bytes}`` (an export
#: takes seconds to a minute; the same model and shape are exported once).
_ONNX_CACHE: Dict[tuple, bytes] = {}


@dataclass(frozen=True)
class Compilation:
    """One model under several runtimes, measured interleaved on one input.

    Attributes:
        label: the model's name.
        timings: ``{runtime: Timing}`` per call (the runtimes of :data:`RUNTIMES` that ran).
        prepare_s: ``{runtime: seconds}`` spent before the first result: ``torch.compile``'s
            first call (tracing, Inductor's code generation and C++ compilation), the ONNX
            export and session creation; 0 for eager.
        cached: runtimes whose preparation came from a cache (this session's ONNX exports, or
            Inductor's on-disk cache of compiled graphs): ``prepare_s`` is then not the first-time cost.
        max_abs_diff: ``{runtime: max |y - y_eager|}``.
        max_abs_output: ``max |y_eager|``.
        threads: threads every runtime used; ``environment``: the stamp.
    """

    label: str
    timings: Dict[str, Timing]
    prepare_s: Dict[str, float]
    max_abs_diff: Dict[str, float]
    max_abs_output: float
    threads: int
    cached: Tuple[str, ...] = ()
    environment: dict = field(default_factory=dict)

    def outputs_match(self, runtime: str) -> bool:
        """``runtime``'s output equals eager's: ``max |diff| <= 1e-4 · max(1, max |y|)``."""
        return self.max_abs_diff[runtime] <= 1e-4 * max(1.0, self.max_abs_output)


def break_even_calls(prepare_s: float, eager_ms: float, runtime_ms: float) -> Optional[float]:
    """Calls after which a runtime's preparation has paid for itself:
    ``prepare_s / (eager - runtime per call)``; ``None`` when the runtime is not faster
    (it never pays off), 0 when nothing was spent preparing.

    >>> break_even_calls(30.0, 20.0, 15.0)   # 30 s / 5 ms saved per call
    6000.0
    """
    if prepare_s < 0 or eager_ms <= 0 or runtime_ms <= 0:
        raise ValueError(f"prepare_s must be >= 0 and the times positive, got {prepare_s!r}, {eager_ms!r}, {runtime_ms!r}")
    saved_s = (eager_ms - runtime_ms) / 1e3
    if saved_s <= 0:
        return None
    return prepare_s / saved_s


def compile_comparison(model: nn.Module, x: torch.Tensor, label: str = "model",
                       runtimes: Sequence[str] = RUNTIMES, threads: Optional[int] = None,
                       budget_s: float = 1.0, onnx_model: Optional[bytes] = None) -> Compilation:
    """Eager PyTorch, ``torch.compile`` (Inductor) and ONNX Runtime on one model and input.

    Each runtime is prepared (compile: the first call of ``torch.compile(model)``, which is
    when Inductor traces and compiles; ONNX: :func:`course.latency.export_onnx`, cached per
    ``(label, shape)``, and a session with the same threads), its output checked against
    eager's, then all are timed in alternating rounds (:func:`course.latency.measure_interleaved`,
    ``budget_s`` per runtime). Compilation happens at the measurement's thread count: Inductor
    bakes it into the code it generates. ``onnx_model``: an earlier export of the same model and
    input shape (:func:`course.latency.export_onnx`), reused (and counted as cached).

    Raises:
        ValueError: an unknown runtime, or no ``"eager"`` among them (the reference).
    """
    from course.latency import measure_interleaved
    from course.latency.onnx import export_onnx, ort_session
    from course.latency.policy import threads_set

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or "eager" not in runtimes:
        raise ValueError(f"runtimes: choose among {RUNTIMES}, 'eager' included; got {tuple(runtimes)!r}")
    threads = resolve_threads(threads)
    model.eval()
    cases, prepare, diffs, cached = {}, {"eager": 0.0}, {}, []
    with threads_set(threads), torch.inference_mode():
        y = model(x)
        cases["eager"] = (model, (x,))
        if "torch.compile" in runtimes:
            from torch._dynamo.utils import counters

            before = (counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"])
            start = time.perf_counter()
            compiled = torch.compile(model)
            y_c = compiled(x)
            prepare["torch.compile"] = time.perf_counter() - start
            hits = counters["inductor"]["fxgraph_cache_hit"] - before[0]
            if hits and counters["inductor"]["fxgraph_cache_miss"] == before[1]:
                cached.append("torch.compile")  # Inductor's on-disk cache: an earlier run compiled it
            diffs["torch.compile"] = float((y_c - y).abs().max())
            cases["torch.compile"] = (compiled, (x,))
    if "onnxruntime" in runtimes:
        key = (label, tuple(x.shape))
        if onnx_model is not None:
            _ONNX_CACHE[key] = onnx_model
        start = time.perf_counter()
        if key in _ONNX_CACHE:
            cached.append("onnxruntime")
        else:
            _ONNX_CACHE[key] = export_onnx(model, x)
        session = ort_session(_ONNX_CACHE[key], threads)
        prepare["onnxruntime"] = time.perf_counter() - start
        feed = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
        y_o = session.run(None, feed)[0]
        diffs["onnxruntime"] = float(abs(y_o - y.detach().cpu().numpy()).max())
        cases["onnxruntime"] = (lambda: session.run(None, feed), ())
    order = [r for r in RUNTIMES if r in cases]
    timings = measure_interleaved({r: cases[r] for r in order}, threads=threads, budget_s=budget_s * len(order))
    return Compilation(label=label, timings=timings, prepare_s=prepare, max_abs_diff=diffs,
                       max_abs_output=float(y.abs().max()), threads=threads, cached=tuple(cached),
                       environment=stamp(x.device, threads))


def _calls(n: float) -> str:
    n = math.ceil(n)
    return f"{n:,d} call" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"3.4 min"``, ``"2.1 h"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def format_compilation(results: Sequence[Compilation]) -> "Table":
    """One row per model and runtime: time per call (median ± IQR), speed-up over eager (with
    its interval, from the interleaved rounds), preparation time, calls to break even, output
    difference. ``print`` it."""
    from course.latency import speedup
    from course.tables import table

    rows = []
    for c in results:
        eager = c.timings["eager"]
        for runtime, timing in c.timings.items():
            prep = c.prepare_s[runtime]
            even = None if runtime == "eager" else break_even_calls(prep, eager.median_ms, timing.median_ms)
            rows.append({
                "model": c.label, "runtime": runtime, "time": timing,
                "speedup": None if runtime == "eager" else speedup(timing, eager),
                "prepare": None if runtime == "eager" else
                (f"{prep:.1f} s (cached)" if runtime in c.cached else f"{prep:.1f} s"),
                "break_even": None if runtime == "eager" else ("never" if even is None else _calls(even)),
                "diff": c.max_abs_diff.get(runtime),
            })
    notes = []
    if results:
        notes.append(f"{results[0].threads} thread{'' if results[0].threads == 1 else 's'}; the runtimes of a model "
                     "timed in alternating rounds; prepare: torch.compile's first call, or ONNX export + session; "
                     "pays off after: prepare / time saved per call")
    return table(rows, [("model", "model"), ("runtime", "runtime"), ("time", "per call"),
                        ("speedup", "speed-up vs eager"), ("prepare", "prepare"), ("break_even", "pays off after"),
                        ("diff", "max |diff|", ".1e")], notes=notes)


def describe_compilation(result: Compilation) -> str:
    """The sentences the notebook prints for one model, written from the measurement: each
    runtime's speed-up over eager (:func:`course.latency.describe_speedup`), what preparing it
    cost, and after how many calls it pays off."""
    from course.latency import describe_speedup

    eager = result.timings["eager"]
    lines = []
    for runtime, timing in result.timings.items():
        if runtime == "eager":
            continue
        sentence = describe_speedup(f"{result.label} with {runtime}", timing, "eager", eager)
        prep = result.prepare_s[runtime]
        even = break_even_calls(prep, eager.median_ms, timing.median_ms)
        if runtime in result.cached:
            cost = ("its compiled code came from Inductor's on-disk cache (the first compilation costs more)"
                    if runtime == "torch.compile" else "its export came from this session's cache")
        else:
            cost = f"preparing it took {prep:.1f} s"
        pays = ("it never pays off at this setting" if even is None
                else f"it pays off after {_calls(even)} ({_duration(even * eager.median_s)} of eager inference)")
        match = "" if result.outputs_match(runtime) else f" WARNING: outputs differ (max |diff| {result.max_abs_diff[runtime]:.1e})."
        lines.append(f"{sentence} {cost[0].upper() + cost[1:]}; {pays}.{match}")
    return "\n".join(lines)


# --- the capstone widget -------------------------------------------------------------------------


class CapstoneWidget:
    """Device, threads, batch size, backend and model set -> measure -> table and the two plots.

    Measuring takes seconds to minutes, so nothing runs on a control change: the button (or
    :meth:`run` from code) measures the current setting; settings already measured come from a
    cache.

    Attributes:
        widget: the ipywidgets container; ``controls``: ``{name: control}``;
        rows: the latest :class:`CapstoneRow` list; ``cache``: ``{setting: rows}``.
    """

    def __init__(self, fast: bool = True, budget_s: Optional[float] = None):
        import ipywidgets as widgets

        devices = available_devices()
        cpus = os.cpu_count() or 1
        self.budget_s = budget_s
        self.controls = {
            "device": widgets.Dropdown(options=devices, value=devices[0], description="device"),
            "threads": widgets.IntSlider(value=1, min=1, max=cpus, description="threads", continuous_update=False),
            "batch": widgets.Dropdown(options=[1, 8, 64], value=1, description="batch"),
            "backend": widgets.Dropdown(options=["eager", "onnxruntime"], value="eager", description="backend"),
            "models": widgets.Dropdown(options=["FAST subset", "all"], value="FAST subset" if fast else "all",
                                       description="models"),
        }
        self.button = widgets.Button(description="measure", button_style="primary")
        self.status = widgets.HTML("Pick a setting and press <b>measure</b> (seconds to minutes; "
                                   "settings already measured come back at once).")
        self.table = widgets.HTML()
        # Hidden until the first measurement: an Image without a value shows a broken-image icon.
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="900px", display="none"))
        self.button.on_click(lambda _: self.run())
        self.rows: List[CapstoneRow] = []
        self.cache: Dict[tuple, List[CapstoneRow]] = {}
        self.widget = widgets.VBox([
            widgets.HTML("<b>Capstone: published top-1 vs latency measured here</b>"),
            widgets.HBox(list(self.controls.values())[:3]),
            widgets.HBox(list(self.controls.values())[3:] + [self.button]),
            self.status, self.plot, self.table,
        ])

    def setting(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def run(self, **values) -> List[CapstoneRow]:
        """Set the controls given (``threads=2, backend="onnxruntime"``...), measure, redraw."""
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r}; controls: {list(self.controls)}")
            self.controls[name].value = value
        s = self.setting()
        key = tuple(sorted(s.items()))
        self.status.value = "measuring..."
        start = time.perf_counter()
        if key not in self.cache:
            names = FAST_SUBSET if s["models"] == "FAST subset" else None
            self.cache[key] = capstone_table(
                names=names, threads=s["threads"], batch=s["batch"], device=s["device"],
                backends=(s["backend"],), budget_s=self.budget_s or 0.3,
            )
        self.rows = self.cache[key]
        fig = capstone_figure(self.rows, backend=s["backend"])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        self.plot.value = buffer.getvalue()
        self.plot.layout.display = None
        self.table.value = (format_capstone(self.rows)._repr_html_() + "<pre>"
                            + html.escape(is_cnn_enough(self.rows, s["backend"])) + "</pre>")
        self.status.value = f"measured in {time.perf_counter() - start:.1f} s"
        return self.rows

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def capstone_widget(fast: bool = True, budget_s: Optional[float] = None) -> CapstoneWidget:
    """The capstone's explorer (see :class:`CapstoneWidget`)."""
    return CapstoneWidget(fast=fast, budget_s=budget_s)
