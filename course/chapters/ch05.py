"""Chapter 5: window and spatial-reduction attention. Sweeps, memory, figures and the explorer.

* :func:`course.latency.memory.peak_memory_bytes` (here as ``ch05.peak_memory_bytes``): the peak
  memory one call allocates.
* :func:`vit_attention_table`: closed-form cost of ViT's attention at 224 and 1280 input.
* :func:`attention_layer` / :func:`attention_formula`: the three attentions of the chapter on
  a ``(B, C, h, w)`` map, and their closed-form costs.
* :func:`resolution_sweep` and :func:`cost_curves`: formula MACs, measured latency and
  measured peak memory against input resolution, on one figure.
* :func:`window_figure`: the windows, the cyclic shift and the mask.
* :func:`attention_explorer`: resolution, window, reduction ratio, heads and width.
* :func:`attention_kernels` and :func:`kernels_table`: PyTorch's fused attention kernel against
  its math kernel at growing token counts: the same MACs, measured time, tracked peak memory and
  the bytes the operators write.
* :func:`verdicts`: the sentences about a sweep, written from its measurements.

The chapter's attentions (:data:`ATTENTIONS`): global (ViT), window (Swin), spatial-reduction
(PVT), and EfficientViT's two (Cai et al., ICCV 2023: ReLU linear attention, ``"linear"``;
Liu et al., CVPR 2023: cascaded group attention in windows, ``"cascaded"``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from course.blocks.cascaded_attention import LocalWindowAttention
from course.blocks.linear_attention import LiteMLA
from course.blocks.metaformer import AttentionMixer, SpatialReductionMixer, WindowAttentionMixer
from course.cost import Cost
from course.cost import attention as formulas
from course.latency.memory import peak_memory_bytes  # noqa: F401  (the notebook uses ch05.peak_memory_bytes)

__all__ = [
    "ATTENTIONS",
    "STAGE1",
    "KERNELS",
    "KERNEL_COLUMNS",
    "SWEEP_COLUMNS",
    "attention_explorer",
    "attention_kernels",
    "attention_formula",
    "attention_layer",
    "cost_curves",
    "kernel_verdicts",
    "kernels_table",
    "peak_memory_bytes",
    "resolution_sweep",
    "sweep_table",
    "vit_attention_table",
    "verdicts",
    "vit_macs",
    "window_figure",
    "written_bytes",
]

#: The chapter's attentions, by name: ViT's global, Swin's window, PVT's spatial-reduction, and
#: EfficientViT's ReLU linear attention (MIT) and cascaded group attention in windows (MSRA).
ATTENTIONS = ("global", "window", "sra", "linear", "cascaded")

#: EfficientViT-B's head width for the ReLU linear attention (``heads = C // 16``), and MSRA
#: EfficientViT's key width and heads for the cascaded group attention.
LINEAR_HEAD_DIM = 16
CASCADED_KEY_DIM, CASCADED_HEADS = 16, 4

#: The setting of the sweeps: a first-stage feature map (stride 4) of width 64 with one head,
#: Swin's window 7 and PVT's first-stage reduction ratio 8 (PVT-Tiny's stage 1).
STAGE1 = dict(stride=4, C=64, heads=1, window=7, sr_ratio=8)


# --- ViT's attention, closed form ---------------------------------------------------------------


def vit_macs(img_size: int = 224, patch: int = 16, C: int = 384, depth: int = 12, mlp_ratio: int = 4,
             num_classes: int = 1000) -> Dict[str, int]:
    """MACs of :class:`course.models.vit.VisionTransformer`, by part, from the formulas.

    With ``T = (img/patch)² + 1`` tokens: patch embedding ``(T-1)·3·P²·C``; per block
    ``4·T·C²`` (projections) ``+ 2·T²·C`` (attention) ``+ 2·mlp_ratio·T·C²`` (MLP); the head
    ``C·classes``. Returns ``{"patch_embed", "projections", "attention", "mlp", "head", "total"}``.
    """
    T = (img_size // patch) ** 2 + 1
    parts = {
        "patch_embed": (T - 1) * 3 * patch * patch * C,
        "projections": depth * 4 * T * C * C,
        "attention": depth * 2 * T * T * C,
        "mlp": depth * 2 * mlp_ratio * T * C * C,
        "head": C * num_classes,
    }
    parts["total"] = sum(parts.values())
    return parts


def vit_attention_table(cases: Sequence[tuple] = ((224, 16), (1280, 16), (1280, 4)), C: int = 768,
                        heads: int = 12, depth: int = 12) -> List[dict]:
    """Closed-form cost of ViT-B's attention for ``(input size, patch stride)`` cases.

    Per case: tokens ``T``, the whole model's MACs (:func:`vit_macs`), the share of the
    ``2·T²·C`` attention term, and the bytes of one block's score matrix
    (:func:`course.cost.attention.attention_scores_bytes`). No model is run: at 1280 input
    these numbers are what would have to fit in memory.
    """
    rows = []
    for size, stride in cases:
        parts = vit_macs(size, stride, C, depth)
        T = (size // stride) ** 2 + 1
        rows.append({
            "input": size,
            "stride": stride,
            "tokens": T,
            "GMACs": parts["total"] / 1e9,
            "attention share": parts["attention"] / parts["total"],
            "scores per block (MB)": formulas.attention_scores_bytes(T, T, heads) / 1e6,
        })
    return rows


# --- the three attentions -----------------------------------------------------------------------


def attention_layer(kind: str, C: int = 64, heads: int = 1, window: int = 7, sr_ratio: int = 8,
                    shift: int = 0, fused: bool = False, h: int = 56) -> nn.Module:
    """One attention layer on a ``(B, C, h, w)`` map, one of :data:`ATTENTIONS`.

    ``"linear"`` is :class:`~course.blocks.linear_attention.LiteMLA` with EfficientViT-B's heads of
    16 channels (``heads`` is not used); ``"cascaded"`` is
    :class:`~course.blocks.cascaded_attention.LocalWindowAttention` (MSRA's EfficientViT: 4 heads,
    keys of 16 channels, ``window x window`` windows; ``h`` is the map size it is built for).
    """
    if kind == "global":
        return AttentionMixer(C, heads, fused=fused)
    if kind == "window":
        return WindowAttentionMixer(C, heads, window, shift, fused=fused)
    if kind == "sra":
        return SpatialReductionMixer(C, heads, sr_ratio, fused=fused)
    if kind == "linear":
        return LiteMLA(C, max(1, C // LINEAR_HEAD_DIM))
    if kind == "cascaded":
        return LocalWindowAttention(C, CASCADED_HEADS, CASCADED_KEY_DIM, resolution=h, window=window)
    raise ValueError(f"kind={kind!r} is not one of {ATTENTIONS}")


def attention_formula(kind: str, h: int, w: int, C: int = 64, heads: int = 1, window: int = 7,
                      sr_ratio: int = 8, batch: int = 1) -> Cost:
    """Closed-form cost of :func:`attention_layer` on an ``h x w`` map (:mod:`course.cost.attention`;
    ``"linear"``: :func:`course.cost.modern.relu_linear_attention`). ``"cascaded"`` has no closed
    form in the course: its MACs come from the counter (``ValueError`` here)."""
    if kind == "global":
        return formulas.global_attention(h, w, C, heads, batch=batch)
    if kind == "window":
        return formulas.window_attention(h, w, C, heads, window, batch=batch)
    if kind == "sra":
        return formulas.spatial_reduction_attention(h, w, C, heads, sr_ratio, batch=batch)
    if kind == "linear":
        from course.cost.modern import relu_linear_attention

        return relu_linear_attention(h, w, C, max(1, C // LINEAR_HEAD_DIM), batch=batch)
    if kind == "cascaded":
        raise ValueError("kind='cascaded' has no closed form here: count the layer (course.cost.count)")
    raise ValueError(f"kind={kind!r} is not one of {ATTENTIONS}")


def attention_macs(kind: str, h: int, C: int = 64, heads: int = 1, window: int = 7, sr_ratio: int = 8) -> int:
    """MACs of :func:`attention_layer` on an ``h x h`` map: the closed form, or the counter on a
    zero input for ``"cascaded"`` (no closed form)."""
    if kind != "cascaded":
        return attention_formula(kind, h, h, C, heads, window, sr_ratio).macs
    from course.cost import count

    return count(attention_layer(kind, C, heads, window, sr_ratio, h=h), torch.zeros(1, C, h, h)).macs


def _score_keys(kind: str, h: int, window: int, sr_ratio: int) -> Optional[int]:
    """Keys each query scores against (the score matrix's width); None for linear attention,
    which forms no score matrix (only ``d x (d+1)`` per head)."""
    return {"global": h * h, "window": min(window, h) ** 2, "sra": (h // sr_ratio) ** 2, "linear": None,
            "cascaded": min(window, h) ** 2}[kind]


def resolution_sweep(
    resolutions: Sequence[int] = (224, 448, 896),
    kinds: Sequence[str] = ATTENTIONS,
    stride: int = 4,
    C: int = 64,
    heads: int = 1,
    window: int = 7,
    sr_ratio: int = 8,
    measure: bool = True,
    max_measured_macs: float = 3e9,
    budget_s: float = 0.3,
    memory: bool = True,
    device: Optional[str] = None,
    fused: bool = False,
    threads: Optional[int] = None,
) -> List[dict]:
    """MACs (always: the closed form, or the counter for ``"cascaded"``) and measured latency and
    peak memory (where affordable) of each attention at each input resolution, on the
    ``stride``-downsampled map.

    A point is measured only when ``measure`` and its formula MACs are at most
    ``max_measured_macs`` (global attention at 896 input would need 10 GB for its scores);
    otherwise ``ms``, ``timing`` and ``peak_MB`` are ``None``. The attentions of one resolution
    are measured together, in alternating rounds (:func:`course.latency.measure_interleaved`,
    by the course's policy: ``threads`` ``None`` is 1), so they compare fairly. The input is a
    seeded ``torch.randn(1, C, h, w)`` with ``h = w = resolution // stride``.

    Returns:
        One dict per (resolution, kind): ``resolution, kind, h, tokens, macs, scores_MB``
        (formula bytes of the unfused score matrices; 0 for linear attention, which has none), ``ms``, ``timing`` (the
        :class:`~course.latency.Timing`), ``peak_MB``.
    """
    from course import latency
    from course.latency.memory import peak_memory_bytes

    rows = []
    for resolution in resolutions:
        h = resolution // stride
        cases = {}
        for kind in kinds:
            macs = attention_macs(kind, h, C, heads, window, sr_ratio)
            keys = _score_keys(kind, h, window, sr_ratio)
            score_heads = CASCADED_HEADS if kind == "cascaded" else heads
            row = {
                "resolution": resolution, "kind": kind, "h": h, "tokens": h * h, "macs": macs,
                "scores_MB": formulas.attention_scores_bytes(h * h, keys, score_heads) / 1e6 if keys else 0.0,
                "ms": None, "timing": None, "peak_MB": None,
            }
            if measure and macs <= max_measured_macs:
                torch.manual_seed(0)
                layer = attention_layer(kind, C, heads, window, sr_ratio, fused=fused, h=h).eval()
                x = torch.randn(1, C, h, h, generator=torch.Generator().manual_seed(0))
                if device is not None:
                    layer, x = layer.to(device), x.to(device)
                cases[kind] = (layer, (x,))
                if memory:
                    row["peak_MB"] = peak_memory_bytes(layer, x) / 1e6
            rows.append(row)
        if cases:
            timings = latency.measure_interleaved(cases, threads=threads, budget_s=budget_s * len(cases))
            for row in rows[-len(kinds):]:
                if row["kind"] in timings:
                    row["timing"] = timings[row["kind"]]
                    row["ms"] = row["timing"].median_ms
    return rows


def sweep_table(rows: Sequence[dict]) -> "tables.Table":
    """:func:`resolution_sweep`'s rows as a :class:`course.tables.Table` (``print`` it):
    resolution, attention, tokens, formula MACs, score-matrix MB, latency (median ± IQR, noisy
    marked, "—" when not measured) and peak MB."""
    from course import tables

    return tables.table(rows, SWEEP_COLUMNS)


#: :func:`resolution_sweep`'s columns for :func:`course.tables.show`.
SWEEP_COLUMNS = [("resolution", "input"), ("kind", "attention"), ("tokens", "tokens"), ("macs", "MACs", "G"),
                 ("scores_MB", "scores MB", ".1f"), ("timing", "latency"), ("peak_MB", "peak MB", ".1f")]


_COLORS = {"global": "tab:red", "window": "tab:blue", "sra": "tab:green", "linear": "tab:purple",
           "cascaded": "tab:orange"}
_LABELS = {"global": "global (ViT)", "window": "window (Swin)", "sra": "spatial-reduction (PVT)",
           "linear": "ReLU linear (EfficientViT-B)", "cascaded": "cascaded group, windows (EfficientViT-M)"}
_MARKERS = {"global": "o", "window": "s", "sra": "^", "linear": "D", "cascaded": "v"}


def cost_curves(rows: Sequence[dict], title: str = ""):
    """One figure, three panels against input resolution: formula MACs, measured latency (ms,
    with IQR error bars; a noisy point hollow), measured peak memory (MB); one line per
    attention, each with its own marker and a small sideways offset so that no point hides
    another; one legend below the panels; log scales with plain tick labels. Unmeasured points are left out of the two measured panels (the legend says how
    many). Returns the matplotlib ``Figure``."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    from course.plots import plain_log_axis, timing_errorbar

    fig = Figure(figsize=(12.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("macs", "MACs (formula / counter)"), ("ms", "latency (ms, measured)"),
              ("peak_MB", "peak memory (MB, measured)"))
    markers = _MARKERS
    resolutions = sorted({r["resolution"] for r in rows})
    missing = {}
    for ax, (key, label) in zip(axes, panels):
        for i, kind in enumerate(_COLORS):
            mine = [r for r in rows if r["kind"] == kind]
            points = [r for r in mine if r[key] is not None]
            if key != "macs":
                missing[kind] = max(missing.get(kind, 0), len(mine) - len(points))
            if not points:
                continue
            # each attention a little to the side of the resolution, so that equal values hide no point
            xs = [r["resolution"] * 2 ** (0.025 * (i - (len(_COLORS) - 1) / 2)) for r in points]
            if key == "ms":
                timing_errorbar(ax, xs, [r["timing"] or r["ms"] for r in points], color=_COLORS[kind],
                                marker=markers[kind])
            else:
                ax.plot(xs, [r[key] for r in points], marker=markers[kind], color=_COLORS[kind], label=kind,
                        markersize=6, alpha=0.85)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input resolution (pixels)")
        ax.set_ylabel(label)
        ax.set_xticks(resolutions, [str(r) for r in resolutions])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        plain_log_axis(ax.yaxis, formatter="eng" if key == "macs" else "g")
        ax.grid(True, which="both", alpha=0.3)
        if not ax.lines:
            ax.set_title("not measured", fontsize=8)
    handles, kinds = axes[0].get_legend_handles_labels()
    if handles:  # one legend for the three panels, below them, so that it hides no point
        labels = [_LABELS[k] + (f" ({missing[k]} not measured)" if missing.get(k) else "") for k in kinds]
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(handles)), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --- windows, shift and mask --------------------------------------------------------------------


def window_figure(size: int = 8, window: int = 4, shift: Optional[int] = None, focus: int = -1):
    """Swin's Fig. 2 and Fig. 4 on a ``size x size`` map: (a) the regular windows; (b) the
    shifted windows drawn on the original image (the shift moves the window grid by
    ``shift`` pixels; windows at the border wrap around); (c) the ``M² x M²`` mask of window
    ``focus`` after the cyclic shift (dark: masked). Returns the ``Figure``."""
    from matplotlib.figure import Figure

    from course.blocks.attention import shifted_window_mask

    shift = window // 2 if shift is None else shift
    grid = torch.arange(size)
    regular = (grid[:, None] // window) * (size // window) + grid[None, :] // window
    # After rolling by -shift, pixel (y, x) sits at ((y - shift) % size, (x - shift) % size).
    ys, xs = (grid[:, None] - shift) % size, (grid[None, :] - shift) % size
    shifted = (ys // window) * (size // window) + xs // window
    mask = shifted_window_mask(size, size, (window, window), (shift, shift))[focus]

    fig = Figure(figsize=(10, 3.3), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, ids, title in ((axes[0], regular, f"(a) windows {window}x{window}"),
                           (axes[1], shifted, f"(b) shifted by {shift}: windows wrap around")):
        ax.imshow(ids.numpy(), cmap="tab20", vmin=0, vmax=19)
        for y in range(size):
            for x in range(size):
                ax.text(x, y, str(int(ids[y, x])), ha="center", va="center", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2].imshow((mask != 0).numpy(), cmap="Greys")
    axes[2].set_title(f"(c) mask of window {focus % (size // window) ** 2} after the shift\n(dark: -100, not attended)", fontsize=9)
    axes[2].set_xlabel("key token")
    axes[2].set_ylabel("query token")
    return fig


# --- the explorer -------------------------------------------------------------------------------

#: The explorer's attentions: those with a closed form to check the counter against.
EXPLORER_KINDS = ("global", "window", "sra", "linear")

#: Guard for the live explorer: refuse a global attention whose score matrix exceeds this.
MAX_SCORES_BYTES = 256e6


def _build_attention(c: dict):
    h = c["resolution"] // 4
    if c["C"] % c["heads"]:
        raise ValueError(f"heads={c['heads']} must divide C={c['C']}")
    if c["kind"] == "global" and formulas.attention_scores_bytes(h * h, h * h, c["heads"]) > MAX_SCORES_BYTES:
        mb = formulas.attention_scores_bytes(h * h, h * h, c["heads"]) / 1e6
        raise ValueError(f"global attention on {h}x{h} tokens needs {mb:,.0f} MB for its scores: "
                         "not run here, read the formula instead")
    torch.manual_seed(0)
    layer = attention_layer(c["kind"], c["C"], c["heads"], c["window"], c["sr_ratio"], h=h)
    x = torch.randn(1, c["C"], h, h, generator=torch.Generator().manual_seed(0))
    return layer, (x,)


def attention_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 5's explorer: one attention layer on a stride-4 feature map.

    Controls: ``resolution`` (input pixels; the map is ``resolution / 4``), ``kind``
    (global / window / sra), ``window``, ``sr_ratio``, ``heads``, ``C``. The table checks
    :func:`attention_formula`'s MACs and parameters against the counter. A global attention
    whose score matrix would exceed 256 MB is refused with a message (read the formula instead).
    """
    controls = {
        "resolution": (64, 896, 32, 224),
        "kind": list(EXPLORER_KINDS),
        "window": {"options": [4, 7, 8, 12, 14], "default": 7},
        "sr_ratio": {"options": [1, 2, 4, 8, 16], "default": 8},
        "heads": [1, 2, 4, 8],
        "C": {"options": [32, 64, 96, 128], "default": 64},
    }

    def formula(c):
        h = c["resolution"] // 4
        return attention_formula(c["kind"], h, h, c["C"], c["heads"], c["window"], c["sr_ratio"])

    from course.widgets import Explorer

    return Explorer(controls, _build_attention, formula, measure=measure, budget_s=budget_s,
                    title="Chapter 5: one attention layer on a stride-4 feature map", compare=("macs", "params"))


# --- verdicts from a sweep ----------------------------------------------------------------------


def verdicts(rows: Sequence[dict], baseline: str = "global") -> List[str]:
    """The sentences about :func:`resolution_sweep`'s measurements, written from them: at each
    resolution where ``baseline`` was measured, each other measured attention against it
    (:func:`course.latency.describe_speedup`, paired by the interleaved rounds, with the MACs
    ratio), and at the largest resolution where both were measured, window attention against
    ReLU linear attention."""
    from course.latency import describe_speedup

    out = []
    by_resolution: Dict[int, Dict[str, dict]] = {}
    for r in rows:
        if r["timing"] is not None:
            by_resolution.setdefault(r["resolution"], {})[r["kind"]] = r
    for resolution, kinds in sorted(by_resolution.items()):
        base = kinds.get(baseline)
        if base is None:
            continue
        for kind, r in kinds.items():
            if kind != baseline:
                out.append(f"{resolution} input: " + describe_speedup(
                    _LABELS[kind], r["timing"], _LABELS[baseline], base["timing"], r["macs"], base["macs"]))
    both = [k for res, k in sorted(by_resolution.items()) if "window" in k and "linear" in k]
    if both:
        k = both[-1]
        out.append(f"{k['window']['resolution']} input: " + describe_speedup(
            _LABELS["linear"], k["linear"]["timing"], _LABELS["window"], k["window"]["timing"],
            k["linear"]["macs"], k["window"]["macs"]))
    return out


# --- attention kernels: fused against math ------------------------------------------------------

#: PyTorch's two CPU kernels of ``scaled_dot_product_attention``, by the course's names.
KERNELS = ("math", "fused")


class SDPA(nn.Module):
    """``F.scaled_dot_product_attention(q, k, v)`` forced to one kernel: ``"math"`` (the
    decomposition: ``Q Kᵀ`` into a ``(heads, T, T)`` score tensor, softmax into another, times
    ``V``) or ``"fused"`` (the flash kernel: blocks of queries against blocks of keys, the running
    softmax kept per block, no ``T x T`` tensor). ``(B, heads, T, d)`` x3 -> ``(B, heads, T, d)``."""

    def __init__(self, kernel: str):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r} is not one of {KERNELS}")
        self.kernel = kernel

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = SDPBackend.MATH if self.kernel == "math" else SDPBackend.FLASH_ATTENTION
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def written_bytes(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of every tensor the operators return during one call, as the dispatcher sees them
    (under ``torch.no_grad()``): a lower bound on the memory traffic, since each such tensor is
    written once and read at least once. A fused kernel's work inside its blocks (in cache) is
    not seen, which is the point. Deterministic."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Written(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    Written.total += t.numel() * t.element_size()
            return out

    with torch.no_grad(), Written():
        module(*inputs)
    return Written.total


def attention_kernels(tokens: Sequence[int] = (256, 1024, 4096), d: int = 64, heads: int = 1,
                      measure: bool = True, budget_s: float = 0.3, threads: Optional[int] = None) -> List[dict]:
    """The fused and the math kernel of ``scaled_dot_product_attention`` side by side, at each
    token count ``T``, on seeded ``(1, heads, T, d)`` queries, keys and values.

    Per (T, kernel): ``macs`` (the course's counter: ``2·heads·T²·d`` for both: the same
    arithmetic), ``peak_MB`` (:func:`course.latency.memory.peak_activation_bytes`: the peak of live
    tensors the dispatcher sees; a kernel's internal block buffers are not seen, a few tens of KB
    per thread for the flash kernel), ``written_MB`` (:func:`written_bytes`), ``scores_MB`` (the
    formula for one ``heads x T x T`` float32 score tensor), and, when ``measure``, ``timing`` /
    ``ms``: the two kernels of one ``T`` timed in alternating rounds
    (:func:`course.latency.measure_interleaved`, by the course's policy; ``threads`` ``None``: the
    policy's).
    """
    from course import latency
    from course.cost import count
    from course.latency.memory import peak_activation_bytes

    rows = []
    for T in tokens:
        g = torch.Generator().manual_seed(T)
        q, k, v = (torch.randn(1, heads, T, d, generator=g) for _ in range(3))
        cases = {}
        for kernel in KERNELS:
            module = SDPA(kernel)
            rows.append({
                "tokens": T, "kernel": kernel, "macs": count(module, q, k, v).macs,
                "peak_MB": peak_activation_bytes(module, q, k, v) / 1e6,
                "written_MB": written_bytes(module, q, k, v) / 1e6,
                "scores_MB": formulas.attention_scores_bytes(T, T, heads) / 1e6, "timing": None, "ms": None,
            })
            cases[kernel] = (module, (q, k, v))
        if measure:
            timings = latency.measure_interleaved(cases, threads=threads, budget_s=budget_s * len(cases))
            for row in rows[-len(KERNELS):]:
                row["timing"] = timings[row["kernel"]]
                row["ms"] = row["timing"].median_ms
    return rows


def kernels_table(rows: Sequence[dict]) -> "tables.Table":
    """:func:`attention_kernels`' rows as a :class:`course.tables.Table` (``print`` it or pass the
    rows to :func:`course.tables.show`)."""
    from course import tables

    return tables.table(rows, KERNEL_COLUMNS)


KERNEL_COLUMNS = [("tokens", "tokens T"), ("kernel", "kernel"), ("macs", "MACs (counter)", "M"),
                   ("scores_MB", "one T x T scores MB", ".1f"), ("peak_MB", "peak live MB", ".2f"),
                   ("written_MB", "written MB", ".1f"), ("timing", "latency")]


def kernel_verdicts(rows: Sequence[dict]) -> List[str]:
    """One sentence per token count, from :func:`attention_kernels`' measurements: how much
    faster (or not) the fused kernel was, for the same MACs, and how much less it wrote."""
    from course.latency import describe_speedup

    out = []
    for T in sorted({r["tokens"] for r in rows}):
        pair = {r["kernel"]: r for r in rows if r["tokens"] == T}
        if pair["fused"]["timing"] is None:
            continue
        text = describe_speedup("the fused kernel", pair["fused"]["timing"], "the math kernel", pair["math"]["timing"],
                                pair["fused"]["macs"], pair["math"]["macs"])
        ratio = pair["math"]["written_MB"] / pair["fused"]["written_MB"]
        out.append(f"T = {T:,}: {text} It wrote {ratio:.0f}x fewer bytes.")
    return out
