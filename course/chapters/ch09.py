"""Chapter 9 (compression): pruning, quantization, distillation, search and early exit, each
measured on this device for size, MACs, latency *and* accuracy.

Every function returns plain rows (dataclasses) that a notebook prints with the ``format_*``
helpers and plots with the ``*_figure`` helpers; every sentence about this device is printed
from those rows (``*_verdict`` helpers).

* :func:`speed_table` -- params, MACs, file size, training time, latency, accuracy of models.
* :func:`unstructured_table`, :func:`channel_table`, :func:`pruning_figure`,
  :func:`sensitivity_figure` -- pruning.
* :func:`bits_table`, :func:`int8_table`, :func:`int8_speedups` -- quantization.
* :func:`distillation_experiment` -- a student with and without a teacher.
* :func:`search_experiment`, :func:`search_figure` -- the latency table and a small search.
* :func:`early_exit_figure` -- accuracy vs average MACs.
* :class:`CompressionExplorer` -- the live explorer.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.cost import count
from course.latency import Timing, measure, measure_interleaved

__all__ = [
    "ChannelRow",
    "CompressionExplorer",
    "DistillRow",
    "Int8Row",
    "ModelRow",
    "UnstructuredRow",
    "bits_table",
    "channel_table",
    "compression_explorer",
    "dataset_figure",
    "distillation_experiment",
    "early_exit_figure",
    "format_rows",
    "int8_speedups",
    "int8_table",
    "pruning_figure",
    "search_experiment",
    "search_figure",
    "sensitivity_figure",
    "speed_table",
]

IMAGE = (3, 32, 32)


def _x1() -> torch.Tensor:
    return torch.randn(1, *IMAGE, generator=torch.Generator().manual_seed(0))


# --- measuring several things fairly ---------------------------------------------------------------
# Comparisons go through course.latency.measure_interleaved (the course's policy: alternating
# rounds, >= 5 samples, re-measured when noisy), with zero-argument callables as contenders.


def _interleaved(fns: Dict[str, Callable[[], object]], threads: int, budget_s: float) -> Dict[str, Timing]:
    return measure_interleaved({name: (fn, ()) for name, fn in fns.items()}, threads=threads, budget_s=budget_s)


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.eval()
    return lambda: model(x)


def _ort_call(onnx_bytes: bytes, x: torch.Tensor, threads: int) -> Callable[[], object]:
    from course.latency import ort_session

    session = ort_session(onnx_bytes, threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


# --- tables -------------------------------------------------------------------------------------


def format_rows(rows: Sequence, columns: Sequence[Tuple[str, str, str]]) -> str:
    """A plain-text table: ``columns`` are ``(header, attribute, format)``; ``None`` prints as ``-``."""
    def cell(row, attr, fmt):
        value = getattr(row, attr)
        if value is None:
            return "-"
        if isinstance(value, Timing):
            value = value.median_ms
        return format(value, fmt)

    texts = [[cell(r, a, f) for _, a, f in columns] for r in rows]
    widths = [max([len(h)] + [len(t[i]) for t in texts]) for i, (h, _, _) in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w) in enumerate(zip(columns, widths)))]
    for t in texts:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(t, widths))))
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelRow:
    """What "fast" means for one model: params, MACs, file bytes, training seconds (as recorded
    when it was trained; ``None`` if unknown), latency (batch 1, measured here), accuracy (%)."""

    name: str
    params: int
    macs: int
    file_bytes: int
    train_s: Optional[float]
    latency: Timing
    accuracy: float

    @property
    def latency_ms(self) -> float:
        return self.latency.median_ms


SPEED_COLUMNS = (("model", "name", "s"), ("params", "params", ",d"), ("MACs", "macs", ",d"),
                 ("file bytes", "file_bytes", ",d"), ("train s", "train_s", ".0f"), ("ms", "latency", ".3f"),
                 ("top-1 %", "accuracy", ".1f"))


def speed_table(models: Dict[str, nn.Module], data, train_s: Optional[Dict[str, float]] = None, threads: int = 1,
                budget_s: float = 0.5) -> List[ModelRow]:
    """The talk's list of what "fast" means, for each model: params, MACs, file size, training
    time, latency (interleaved, batch 1) and test accuracy on ``data``."""
    from course.compression.pruning import file_size
    from course.train import evaluate

    x = _x1()
    timings = _interleaved({n: _forward(m, x) for n, m in models.items()}, threads, budget_s * len(models))
    rows = []
    for name, model in models.items():
        cost = count(model, x)
        rows.append(ModelRow(name, cost.params, cost.macs, file_size(model)["bytes"], (train_s or {}).get(name),
                             timings[name], evaluate(model, data.test_x, data.test_y)))
    return rows


def dataset_figure(data, n: int = 30, columns: int = 10):
    """The first ``n`` training images of ``data`` with their class names (un-normalised)."""
    from matplotlib.figure import Figure

    rows = (n + columns - 1) // columns
    fig = Figure(figsize=(columns * 1.1, rows * 1.25), layout="constrained")
    axes = fig.subplots(rows, columns)
    mean = torch.tensor(data.mean)[:, None, None]
    std = torch.tensor(data.std)[:, None, None]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow((data.train_x[i] * std + mean).permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(data.classes[int(data.train_y[i])], fontsize=7)
    fig.suptitle(f"{data.name}: first {n} training images", fontsize=9)
    return fig


# --- pruning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnstructuredRow:
    """A model after global magnitude pruning at ``sparsity`` (no fine-tuning)."""

    sparsity: float
    zeros: float
    macs: int
    file_bytes: int
    compressed_bytes: int
    latency: Timing
    accuracy: float


UNSTRUCTURED_COLUMNS = (("sparsity", "sparsity", ".2f"), ("zeros", "zeros", ".3f"), ("MACs", "macs", ",d"),
                        ("file bytes", "file_bytes", ",d"), ("zlib bytes", "compressed_bytes", ",d"),
                        ("ms", "latency", ".3f"), ("top-1 %", "accuracy", ".1f"))


def unstructured_table(model: nn.Module, data, sparsities: Sequence[float] = (0.0, 0.5, 0.7, 0.9),
                       threads: int = 1, budget_s: float = 0.3) -> List[UnstructuredRow]:
    """Global magnitude pruning (``torch.nn.utils.prune``, masks folded into the weights) at each
    sparsity: zeros counted, MACs counted, file bytes (raw and zlib), latency (interleaved across
    the sparsities), test accuracy without fine-tuning."""
    from course.compression.pruning import file_size, prune_unstructured, sparsity
    from course.train import evaluate

    x = _x1()
    pruned = {s: prune_unstructured(model, s) for s in sparsities}
    timings = _interleaved({str(s): _forward(m, x) for s, m in pruned.items()}, threads, budget_s * len(pruned))
    rows = []
    for s, m in pruned.items():
        size = file_size(m)
        rows.append(UnstructuredRow(s, sparsity(m), count(m, x).macs, size["bytes"], size["compressed"],
                                    timings[str(s)], evaluate(m, data.test_x, data.test_y)))
    return rows


@dataclass(frozen=True)
class ChannelRow:
    """A model after channel pruning at ``ratio``: its widths, cost, latency, accuracy right after
    pruning and after a short fine-tune (``None`` when not fine-tuned)."""

    ratio: float
    widths: Tuple[int, ...]
    params: int
    macs: int
    file_bytes: int
    latency: Timing
    accuracy: float
    finetuned: Optional[float]
    finetune_s: Optional[float] = None


CHANNEL_COLUMNS = (("ratio", "ratio", ".2f"), ("params", "params", ",d"), ("MACs", "macs", ",d"),
                   ("file bytes", "file_bytes", ",d"), ("ms", "latency", ".3f"), ("top-1 pruned", "accuracy", ".1f"),
                   ("after fine-tune", "finetuned", ".1f"))


def channel_table(model: nn.Module, data, ratios: Sequence[float] = (0.0, 0.25, 0.5, 0.75), finetune_epochs: int = 1,
                  finetune_data=None, threads: int = 1, budget_s: float = 0.3, lr: float = 1e-3,
                  seed: int = 0) -> List[ChannelRow]:
    """Channel pruning (Torch-Pruning, L1 importance, the same ratio in every group) at each ratio:
    widths of the stage outputs, params and MACs counted, file bytes, latency (interleaved), test
    accuracy right after pruning, then after ``finetune_epochs`` of the course recipe on
    ``finetune_data`` (default ``data``) with peak learning rate ``lr`` (0 epochs: no fine-tune).
    The unpruned model (ratio 0) is fine-tuned too, so the comparison is fair."""
    from course.compression.pruning import conv_widths, file_size, prune_channels
    from course.train import evaluate, fit

    x = _x1()
    pruned = {r: prune_channels(model, r, x) for r in ratios}
    timings = _interleaved({str(r): _forward(m, x) for r, m in pruned.items()}, threads, budget_s * len(pruned))
    rows = []
    for r, m in pruned.items():
        cost = count(m, x)
        accuracy = evaluate(m, data.test_x, data.test_y)
        finetuned = finetune_s = None
        if finetune_epochs:
            result = fit(m, finetune_data or data, epochs=finetune_epochs, lr=lr, seed=seed, threads=threads)
            finetuned, finetune_s = evaluate(m, data.test_x, data.test_y), result.train_s
        widths = tuple(w for name, w in conv_widths(m).items() if name.endswith("conv2.conv") or name == "stem.conv")
        rows.append(ChannelRow(r, widths, cost.params, cost.macs, file_size(m)["bytes"], timings[str(r)], accuracy,
                               finetuned, finetune_s))
    return rows


def pruning_verdict(unstructured: Sequence[UnstructuredRow], channels: Sequence[ChannelRow]) -> str:
    """What this device did, in words, from the two tables."""
    lines = []
    if len(unstructured) >= 2:
        dense, sparse = unstructured[0], unstructured[-1]
        lines.append(
            f"Unstructured, {sparse.sparsity:.0%} of the weights zeroed: MACs {sparse.macs:,} vs {dense.macs:,}, "
            f"file {sparse.file_bytes:,} vs {dense.file_bytes:,} bytes (zlib: {sparse.compressed_bytes:,} vs "
            f"{dense.compressed_bytes:,}), latency {sparse.latency.median_ms:.3f} vs {dense.latency.median_ms:.3f} ms "
            f"({sparse.latency.median_s / dense.latency.median_s:.2f}x), accuracy {sparse.accuracy:.1f}% vs "
            f"{dense.accuracy:.1f}%.")
    if len(channels) >= 2:
        base = channels[0]
        for r in channels[1:]:
            lines.append(
                f"Channels, ratio {r.ratio:.2f}: MACs x{r.macs / base.macs:.2f}, params x{r.params / base.params:.2f}, "
                f"latency x{r.latency.median_s / base.latency.median_s:.2f}; accuracy {r.accuracy:.1f}% right after "
                f"pruning" + (f", {r.finetuned:.1f}% after fine-tuning" if r.finetuned is not None else "") + ".")
    return "\n".join(lines)


def pruning_figure(unstructured: Sequence[UnstructuredRow], channels: Sequence[ChannelRow]):
    """Left: accuracy against MACs for both kinds of pruning. Right: latency ratio against MACs
    ratio (to the unpruned model) for channel pruning, with the ``y = x`` line MACs would predict."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([r.macs / 1e6 for r in unstructured], [r.accuracy for r in unstructured], "o-", label="unstructured (no fine-tune)")
    for r in unstructured:
        left.annotate(f"{r.sparsity:.0%}", (r.macs / 1e6, r.accuracy), xytext=(4, 0), textcoords="offset points", fontsize=7)
    left.plot([r.macs / 1e6 for r in channels], [r.accuracy for r in channels], "s-", label="channels (right after)")
    if any(r.finetuned is not None for r in channels):
        left.plot([r.macs / 1e6 for r in channels], [r.finetuned for r in channels], "s--", label="channels (fine-tuned)")
    left.set_xlabel("MACs per image (M, counted)")
    left.set_ylabel("test top-1 (%)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    base = channels[0]
    xs = [r.macs / base.macs for r in channels]
    ys = [r.latency.median_s / base.latency.median_s for r in channels]
    right.plot([0, 1.05], [0, 1.05], color="gray", ls=":", label="latency ∝ MACs")
    right.plot(xs, ys, "s-", color="tab:orange", label="channel pruning, measured")
    for r, xv, yv in zip(channels, xs, ys):
        right.annotate(f"{r.ratio:.2f}", (xv, yv), xytext=(4, -8), textcoords="offset points", fontsize=7)
    right.set_xlabel("MACs / MACs of the unpruned model")
    right.set_ylabel("latency / latency of the unpruned model")
    right.set_xlim(0, 1.05)
    right.set_ylim(0, max(1.05, max(ys) * 1.05))
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    return fig


def sensitivity_figure(rows, baseline_accuracy: Optional[float] = None):
    """Accuracy after pruning each channel group alone, one line per ratio (``rows`` from
    :func:`course.compression.pruning.sensitivity_scan`)."""
    from matplotlib.figure import Figure

    layers = list(dict.fromkeys(r.layer for r in rows))
    ratios = sorted({r.ratio for r in rows})
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    for ratio in ratios:
        acc = {r.layer: r.accuracy for r in rows if r.ratio == ratio}
        ax.plot(range(len(layers)), [acc[l] for l in layers], "o-", label=f"{ratio:.0%} of the group's channels removed")
    if baseline_accuracy is not None:
        ax.axhline(baseline_accuracy, color="gray", ls=":", label="unpruned")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([l.replace(".conv", "") for l in layers], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test top-1 (%), no fine-tune")
    ax.set_xlabel("channel group (named by the conv that produces it)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --- quantization -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BitsRow:
    """Accuracy of the fake-quantized model at ``bits``: weights only, and weights + activations."""

    bits: int
    weights_only: float
    weights_and_activations: float
    weight_bytes: int


def bits_table(model: nn.Module, data, bits: Sequence[int] = (8, 4, 2), calibration: Optional[torch.Tensor] = None) -> List[BitsRow]:
    """Simulated quantization (:func:`course.compression.quantization.fake_quantize_model`) at each
    bit width: test accuracy with weights quantized (per channel), and with activations too
    (per tensor, ranges from ``calibration``, default the first 256 training images). The
    weight bytes are what the weights would take at that width (``params · bits / 8``, scales
    not counted)."""
    from course.compression.quantization import fake_quantize_model
    from course.train import evaluate

    calibration = data.train_x[:256] if calibration is None else calibration
    n_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    rows = []
    for b in bits:
        w = evaluate(fake_quantize_model(model, b, activations=False), data.test_x, data.test_y)
        wa = evaluate(fake_quantize_model(model, b, calibration), data.test_x, data.test_y)
        rows.append(BitsRow(b, w, wa, n_weights * b // 8))
    return rows


BITS_COLUMNS = (("bits", "bits", "d"), ("weights only %", "weights_only", ".1f"),
                ("weights+activations %", "weights_and_activations", ".1f"), ("weight bytes", "weight_bytes", ",d"))


@dataclass(frozen=True)
class Int8Row:
    """One ONNX Runtime model: kind, file bytes, latency (batch 1), test accuracy (%), agreement
    with fp32 (share of test images with the same top-1 class), and its operator counts."""

    kind: str
    file_bytes: int
    latency: Timing
    accuracy: float
    agreement: float
    ops: Dict[str, int] = field(default_factory=dict)


INT8_COLUMNS = (("ONNX Runtime model", "kind", "s"), ("file bytes", "file_bytes", ",d"), ("ms", "latency", ".3f"),
                ("top-1 %", "accuracy", ".1f"), ("same top-1 as fp32", "agreement", ".3f"))


def int8_table(model: nn.Module, data, n_calibration: int = 512, threads: int = 1, budget_s: float = 0.5,
               dynamic: bool = True) -> List[Int8Row]:
    """fp32 vs int8 in ONNX Runtime: static QDQ (per-channel weights, calibrated on the first
    ``n_calibration`` *training* images) with 8-bit and with 7-bit weights (``reduce_range``),
    and, if ``dynamic``, dynamic quantization. File bytes, latency (interleaved, batch 1,
    ``threads``), test accuracy and agreement with fp32."""
    from course.compression.quantization import ort_dynamic_int8, ort_fp32, ort_predict, ort_static_int8
    from course.latency import ort_session

    calibration = data.train_x[:n_calibration]
    models = [ort_fp32(model), ort_static_int8(model, calibration, reduce_range=False),
              ort_static_int8(model, calibration, reduce_range=True)]
    if dynamic:
        models.append(ort_dynamic_int8(model))
    x = _x1()
    timings = _interleaved({m.kind: _ort_call(m.onnx, x, threads) for m in models}, threads, budget_s * len(models))
    rows, reference = [], None
    for m in models:
        predicted = ort_predict(ort_session(m.onnx, threads), data.test_x).argmax(1)
        if reference is None:
            reference = predicted
        rows.append(Int8Row(m.kind, m.bytes, timings[m.kind], 100.0 * int((predicted == data.test_y).sum()) / len(predicted),
                            int((predicted == reference).sum()) / len(predicted), m.op_counts()))
    return rows


def int8_verdict(rows: Sequence[Int8Row]) -> str:
    """The int8 comparison in words, from the measured rows."""
    fp32 = rows[0]
    lines = []
    for r in rows[1:]:
        speed = fp32.latency.median_s / r.latency.median_s
        lines.append(f"{r.kind}: {speed:.2f}x the speed of fp32 ({r.latency.median_ms:.3f} vs "
                     f"{fp32.latency.median_ms:.3f} ms), {fp32.file_bytes / r.file_bytes:.1f}x smaller file, "
                     f"accuracy {r.accuracy:.1f}% vs {fp32.accuracy:.1f}%, same top-1 as fp32 on {r.agreement:.1%} "
                     f"of the test images" + (" (noisy timing)" if r.latency.noisy or fp32.latency.noisy else "") + ".")
    return "\n".join(lines)


def int8_speedups(models: Dict[str, nn.Module], calibration: torch.Tensor, threads: int = 1,
                  budget_s: float = 0.5) -> Dict[str, Tuple[Timing, Timing]]:
    """``{name: (fp32 timing, int8 static timing)}`` in ONNX Runtime at batch 1, for architectures
    of different kinds (weights need not be trained: latency does not depend on them)."""
    from course.compression.quantization import ort_fp32, ort_static_int8

    x = _x1()
    fns = {}
    for name, model in models.items():
        fns[(name, "fp32")] = _ort_call(ort_fp32(model).onnx, x, threads)
        fns[(name, "int8")] = _ort_call(ort_static_int8(model, calibration).onnx, x, threads)
    timings = _interleaved(fns, threads, budget_s * len(fns))
    return {name: (timings[(name, "fp32")], timings[(name, "int8")]) for name in models}


# --- distillation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DistillRow:
    """One student run: how it was taught, images and labels it saw, accuracy (%), seconds."""

    setting: str
    images: int
    labels: int
    seed: int
    accuracy: float
    train_s: float


DISTILL_COLUMNS = (("student trained on", "setting", "s"), ("images", "images", "d"), ("labels", "labels", "d"),
                   ("seed", "seed", "d"), ("top-1 %", "accuracy", ".1f"), ("train s", "train_s", ".1f"))


def distillation_experiment(teacher: nn.Module, build_student: Callable[[], nn.Module], data, n_labeled: int = 500,
                            epochs: int = 20, unlabeled_epochs: Optional[int] = None, n_unlabeled: Optional[int] = None,
                            seeds: Sequence[int] = (0,),
                            temperature: float = 4.0, alpha: float = 0.9, threads: int = 1) -> List[DistillRow]:
    """A small student in the few-labels setting, three ways (same seeds, same recipe):

    1. ``labels``: cross-entropy on the ``n_labeled`` labelled images;
    2. ``labels + teacher``: Hinton's loss on the same images (``alpha`` on the soft targets);
    3. ``teacher on all images``: the soft targets alone (``alpha = 1``) on the first
       ``n_unlabeled`` training images (default: all), labels unused: the teacher labels images
       nobody labelled (``unlabeled_epochs`` epochs, default: as many steps as run 1, at least one).
    """
    from course.train import fit

    labeled = data.subset(n_train=n_labeled)
    unlabeled = data.subset(n_train=n_unlabeled) if n_unlabeled else data
    n_all = len(unlabeled.train_y)
    unlabeled_epochs = unlabeled_epochs or max(1, round(epochs * n_labeled / n_all))
    rows = []
    for seed in seeds:
        for setting in ("labels", "labels + teacher", "teacher on all images"):
            torch.manual_seed(seed)
            student = build_student()
            if setting == "labels":
                r = fit(student, labeled, epochs=epochs, seed=seed, threads=threads)
                images, labels = n_labeled, n_labeled
            elif setting == "labels + teacher":
                r = fit(student, labeled, epochs=epochs, seed=seed, teacher=teacher, temperature=temperature,
                        alpha=alpha, threads=threads)
                images, labels = n_labeled, n_labeled
            else:
                r = fit(student, unlabeled, epochs=unlabeled_epochs, seed=seed, teacher=teacher, temperature=temperature,
                        alpha=1.0, threads=threads)
                images, labels = n_all, 0
            rows.append(DistillRow(setting, images, labels, seed, r.accuracy, r.train_s))
    return rows


def distillation_verdict(rows: Sequence[DistillRow]) -> str:
    """Mean accuracy per setting and what the teacher changed, in words, from the runs."""
    settings = list(dict.fromkeys(r.setting for r in rows))
    mean = {s: statistics.mean(r.accuracy for r in rows if r.setting == s) for s in settings}
    spread = {s: (max(r.accuracy for r in rows if r.setting == s) - min(r.accuracy for r in rows if r.setting == s))
              for s in settings}
    n = len([r for r in rows if r.setting == settings[0]])
    lines = [f"{s}: {mean[s]:.1f}% (mean of {n} seed{'s' if n > 1 else ''}"
             + (f", spread {spread[s]:.1f} points)" if n > 1 else ")") for s in settings]
    base = mean["labels"]
    noise = max(max(spread.values()), 1.0)  # one seed says little: a point is the least we call noise
    for s in settings[1:]:
        gain = mean[s] - base
        verdict = "helped" if gain > noise else "hurt" if gain < -noise else "made no difference beyond the noise"
        lines.append(f"{s} vs labels only: {gain:+.1f} points: the teacher {verdict} here (noise taken as "
                     f"{noise:.1f} points).")
    return "\n".join(lines)


# --- search ---------------------------------------------------------------------------------------


def search_experiment(data, table=None, target_ms: Optional[float] = None, initial: int = 6, mutations: int = 6,
                      proxy_epochs: int = 1, proxy_train: int = 2000, proxy_test: int = 500, threads: int = 1,
                      budget_s: float = 0.05, seed: int = 0):
    """Measure the latency table (unless given), search, and measure the candidates for real.

    ``target_ms`` defaults to the middle of the table's predicted range. The proxy trains each
    candidate for ``proxy_epochs`` on the first ``proxy_train`` training images and tests it on
    the first ``proxy_test`` test images. Returns ``(table, candidates, measured)`` where
    ``measured`` maps each candidate's choices to its measured :class:`Timing` (batch 1, the
    whole model, interleaved).
    """
    from course.compression.nets import SearchNet
    from course.compression.search import evolve, measure_table
    from course.train import fit

    table = table or measure_table(threads=threads, budget_s=budget_s, seed=seed)
    if target_ms is None:
        lo, hi = table.range_ms()
        target_ms = (lo + hi) / 2
    proxy_data = data.subset(proxy_train, proxy_test)

    def proxy(spec):
        torch.manual_seed(seed)
        return fit(SearchNet(spec), proxy_data, epochs=proxy_epochs, seed=seed, threads=threads).accuracy

    candidates = evolve(table, proxy, target_ms, initial=initial, mutations=mutations, seed=seed)
    x = _x1()
    unique = {c.choices: c for c in candidates}
    measured = _interleaved({c: _forward(SearchNet(list(map(list, u.spec))), x) for c, u in unique.items()},
                                   threads, max(0.1, 4 * budget_s) * len(unique))
    return table, candidates, measured, target_ms


def search_figure(candidates, measured, target_ms: float):
    """Left: proxy accuracy against predicted latency, the target and the winner. Right: measured
    against predicted latency with ``y = x``."""
    from matplotlib.figure import Figure

    best = max(candidates, key=lambda c: c.reward)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.scatter([c.latency_ms for c in candidates], [c.accuracy for c in candidates], c=[c.step for c in candidates],
                 cmap="viridis", s=30, label="candidates (colour: order evaluated)")
    left.scatter([best.latency_ms], [best.accuracy], s=160, facecolors="none", edgecolors="red", label="best reward")
    left.axvline(target_ms, color="gray", ls=":", label=f"target T = {target_ms:.2f} ms")
    left.set_xlabel("predicted latency (ms, lookup table)")
    left.set_ylabel("proxy accuracy (%)")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    pred = [c.latency_ms for c in candidates]
    real = [measured[c.choices].median_ms for c in candidates]
    lo, hi = min(pred + real) * 0.9, max(pred + real) * 1.1
    right.plot([lo, hi], [lo, hi], color="gray", ls=":", label="measured = predicted")
    right.scatter(pred, real, s=30)
    right.scatter([best.latency_ms], [measured[best.choices].median_ms], s=160, facecolors="none", edgecolors="red")
    right.set_xlabel("predicted latency (ms, sum of the table)")
    right.set_ylabel("measured latency (ms, whole model)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    return fig


# --- early exit -------------------------------------------------------------------------------


def early_exit_figure(points, full_macs: int, full_accuracy: float):
    """Accuracy against average MACs per image as the threshold moves, with the plain network."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot([p.average_macs / 1e6 for p in points], [p.accuracy for p in points], "o-", label="early exit, threshold moving")
    for p in points[:: max(1, len(points) // 6)]:
        ax.annotate(f"{p.threshold:.2f}", (p.average_macs / 1e6, p.accuracy), xytext=(4, -10), textcoords="offset points",
                    fontsize=7)
    ax.scatter([full_macs / 1e6], [full_accuracy], marker="*", s=140, color="black", label="final head only (no exit)")
    ax.set_xlabel("average MACs per image (M)")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# --- the explorer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerPoint:
    """One setting of :class:`CompressionExplorer`: MACs (average for early exit), bytes of the
    weights, latency (``None`` where no kernel exists: 4 and 2 bits), accuracy (%), a note."""

    technique: str
    amount: float
    macs: float
    weight_bytes: int
    latency: Optional[Timing]
    accuracy: float
    note: str = ""


TECHNIQUES = ("unstructured sparsity", "channel pruning ratio", "quantization bits", "early-exit threshold")
AMOUNTS = {
    "unstructured sparsity": (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    "channel pruning ratio": (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75),
    "quantization bits": (32, 8, 6, 4, 3, 2),
    "early-exit threshold": (1.01, 0.99, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.0),
}


class CompressionExplorer:
    """Technique and amount -> MACs, weight bytes, measured latency and test accuracy, with every
    visited setting on an accuracy-vs-MACs plot. Nothing is fine-tuned: this shows what each
    knob does to a trained model at once.

    * unstructured sparsity: global magnitude pruning of ``model``; latency of the dense kernel;
    * channel pruning ratio: Torch-Pruning of ``model``; latency of the narrower model;
    * quantization bits: ``model`` fake-quantized (weights and activations, calibrated on
      ``calibration``); latency of ONNX Runtime's int8 model at 8 bits, none below (no kernel);
    * early-exit threshold: ``early_exit`` with that threshold; average MACs; latency of
      ``infer`` on a batch of test images (images that exit are cheaper).

    ``set(technique=..., amount=...)`` drives it from code (tests) and returns the point.
    """

    def __init__(self, model: nn.Module, early_exit: nn.Module, data, calibration: Optional[torch.Tensor] = None,
                 threads: int = 1, budget_s: float = 0.3, n_test: Optional[int] = None, widgets: bool = True):
        self.model, self.early_exit = model.eval(), early_exit.eval()
        self.data = data.subset(n_test=n_test) if n_test else data
        self.calibration = data.train_x[:256] if calibration is None else calibration
        self.threads, self.budget_s = threads, budget_s
        self.cache: Dict[Tuple[str, float], ExplorerPoint] = {}
        self.point: Optional[ExplorerPoint] = None
        self.widget = None
        if widgets:
            self._build_widgets()
        self.set(technique=TECHNIQUES[0], amount=AMOUNTS[TECHNIQUES[0]][0])

    def _build_widgets(self):
        import ipywidgets as w

        self._technique = w.Dropdown(options=TECHNIQUES, value=TECHNIQUES[0], description="technique",
                                     layout=w.Layout(width="320px"))
        self._amount = w.SelectionSlider(options=AMOUNTS[TECHNIQUES[0]], value=AMOUNTS[TECHNIQUES[0]][0],
                                         description="amount", continuous_update=False)
        self._text = w.HTML()
        self._plot = w.Image(format="png", layout=w.Layout(max_width="520px"))
        self._technique.observe(self._on_technique, names="value")
        self._amount.observe(lambda change: self._update(), names="value")
        self.widget = w.VBox([w.HTML("<b>Compression explorer: what each knob does to a trained model</b>"),
                              w.HBox([self._technique, self._amount]), w.HBox([self._text, self._plot])])
        self._holding = False

    def _on_technique(self, change):
        if getattr(self, "_holding", False):
            return
        self._holding = True
        self._amount.options = AMOUNTS[change["new"]]
        self._amount.value = AMOUNTS[change["new"]][0]
        self._holding = False
        self._update()

    def set(self, technique: str, amount: float) -> ExplorerPoint:
        """Select a technique and an amount (one of :data:`AMOUNTS`), compute, redraw."""
        if technique not in TECHNIQUES:
            raise ValueError(f"technique must be one of {TECHNIQUES}, got {technique!r}")
        if amount not in AMOUNTS[technique]:
            raise ValueError(f"amount for {technique!r} must be one of {AMOUNTS[technique]}, got {amount!r}")
        if self.widget is not None:
            self._holding = True
            self._technique.value = technique
            self._amount.options = AMOUNTS[technique]
            self._amount.value = amount
            self._holding = False
        self._technique_value, self._amount_value = technique, amount
        self._update()
        return self.point

    def _current(self) -> Tuple[str, float]:
        if self.widget is not None:
            return self._technique.value, self._amount.value
        return self._technique_value, self._amount_value

    def compute(self, technique: str, amount: float) -> ExplorerPoint:
        """The point for one setting (cached)."""
        key = (technique, amount)
        if key in self.cache:
            return self.cache[key]
        from course.compression import pruning, quantization
        from course.compression.early_exit import exit_curve
        from course.train import evaluate

        x, data = _x1(), self.data
        note = ""
        if technique == "unstructured sparsity":
            m = pruning.prune_unstructured(self.model, amount)
            macs, nbytes = count(m, x).macs, pruning.file_size(m)["bytes"]
            timing = measure(m, x, threads=self.threads, budget_s=self.budget_s)
            accuracy = evaluate(m, data.test_x, data.test_y)
            note = f"{pruning.sparsity(m):.1%} of the weights are zero; zlib file {pruning.file_size(m)['compressed']:,} bytes"
        elif technique == "channel pruning ratio":
            m = pruning.prune_channels(self.model, amount, x)
            macs, nbytes = count(m, x).macs, pruning.file_size(m)["bytes"]
            timing = measure(m, x, threads=self.threads, budget_s=self.budget_s)
            accuracy = evaluate(m, data.test_x, data.test_y)
        elif technique == "quantization bits":
            macs = count(self.model, x).macs
            n_weights = sum(l.weight.numel() for l in self.model.modules() if isinstance(l, (nn.Conv2d, nn.Linear)))
            nbytes = n_weights * int(amount) // 8
            if amount == 32:
                timing = measure(self.model, x, threads=self.threads, budget_s=self.budget_s)
                accuracy = evaluate(self.model, data.test_x, data.test_y)
                note = "float32 (eager PyTorch)"
            else:
                sim = quantization.fake_quantize_model(self.model, int(amount), self.calibration)
                accuracy = evaluate(sim, data.test_x, data.test_y)
                timing = None
                if amount == 8:
                    int8 = quantization.ort_static_int8(self.model, self.calibration)
                    timing = measure(_ort_call(int8.onnx, x, self.threads), threads=self.threads,
                                     budget_s=self.budget_s)
                    note = "latency: ONNX Runtime int8 (QDQ); accuracy: simulated int8"
                else:
                    note = f"no {int(amount)}-bit kernel on this CPU: latency not measured"
        else:
            (p,) = exit_curve(self.early_exit, data.test_x, data.test_y, [amount])
            macs, accuracy = p.average_macs, p.accuracy
            nbytes = pruning.file_size(self.early_exit)["bytes"]
            batch = data.test_x[:64]
            timing = measure(lambda: self.early_exit.infer(batch, amount), threads=self.threads,
                             budget_s=self.budget_s)
            note = f"{p.exited:.0%} of the images exit early; latency: a batch of 64 test images / 64"
            timing = Timing(timing.median_s / 64, timing.iqr_s / 64, timing.runs, timing.device, timing.threads)
        point = ExplorerPoint(technique, amount, macs, nbytes, timing, accuracy, note)
        self.cache[key] = point
        return point

    def _update(self):
        technique, amount = self._current()
        self.point = self.compute(technique, amount)
        if self.widget is not None:
            self._text.value = self._html(self.point)
            self._plot.value = self._png()

    @staticmethod
    def _html(p: ExplorerPoint) -> str:
        latency = (f"{p.latency.median_ms:.3f} ms ± {p.latency.iqr_ms:.2g} (IQR, {p.latency.runs} runs, "
                   f"{p.latency.threads} thread{'s' if p.latency.threads != 1 else ''})" if p.latency else "not measured")
        return (f"<table><tr><td>MACs / image</td><td><b>{p.macs:,.0f}</b></td></tr>"
                f"<tr><td>weight bytes</td><td><b>{p.weight_bytes:,}</b></td></tr>"
                f"<tr><td>latency (batch 1)</td><td><b>{latency}</b></td></tr>"
                f"<tr><td>test top-1</td><td><b>{p.accuracy:.1f}%</b></td></tr></table><p>{p.note}</p>")

    def figure(self):
        """Accuracy against MACs of every setting visited, one colour per technique."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.6), dpi=90, layout="constrained")
        ax = fig.subplots()
        for technique in TECHNIQUES:
            pts = sorted((p for (t, _), p in self.cache.items() if t == technique), key=lambda p: p.macs)
            if pts:
                ax.plot([p.macs / 1e6 for p in pts], [p.accuracy for p in pts], "o-", label=technique)
        if self.point is not None:
            ax.scatter([self.point.macs / 1e6], [self.point.accuracy], s=150, facecolors="none", edgecolors="red")
        ax.set_xlabel("MACs / image (M)")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return fig

    def _png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png")
        return buffer.getvalue()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def compression_explorer(model: nn.Module, early_exit: nn.Module, data, **kwargs) -> CompressionExplorer:
    """The chapter's explorer (see :class:`CompressionExplorer`)."""
    return CompressionExplorer(model, early_exit, data, **kwargs)
