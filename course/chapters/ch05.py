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
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from course.blocks.metaformer import AttentionMixer, SpatialReductionMixer, WindowAttentionMixer
from course.cost import Cost
from course.cost import attention as formulas
from course.latency.memory import peak_memory_bytes  # noqa: F401  (the notebook uses ch05.peak_memory_bytes)

__all__ = [
    "ATTENTIONS",
    "STAGE1",
    "attention_explorer",
    "attention_formula",
    "attention_layer",
    "cost_curves",
    "peak_memory_bytes",
    "resolution_sweep",
    "sweep_table",
    "vit_attention_table",
    "vit_macs",
    "window_figure",
]

#: The chapter's three attentions, by name.
ATTENTIONS = ("global", "window", "sra")

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
                    shift: int = 0, fused: bool = False) -> nn.Module:
    """One attention layer on a ``(B, C, h, w)`` map: ``"global"``, ``"window"`` or ``"sra"``."""
    if kind == "global":
        return AttentionMixer(C, heads, fused=fused)
    if kind == "window":
        return WindowAttentionMixer(C, heads, window, shift, fused=fused)
    if kind == "sra":
        return SpatialReductionMixer(C, heads, sr_ratio, fused=fused)
    raise ValueError(f"kind={kind!r} is not one of {ATTENTIONS}")


def attention_formula(kind: str, h: int, w: int, C: int = 64, heads: int = 1, window: int = 7,
                      sr_ratio: int = 8, batch: int = 1) -> Cost:
    """Closed-form cost of :func:`attention_layer` on an ``h x w`` map (:mod:`course.cost.attention`)."""
    if kind == "global":
        return formulas.global_attention(h, w, C, heads, batch=batch)
    if kind == "window":
        return formulas.window_attention(h, w, C, heads, window, batch=batch)
    if kind == "sra":
        return formulas.spatial_reduction_attention(h, w, C, heads, sr_ratio, batch=batch)
    raise ValueError(f"kind={kind!r} is not one of {ATTENTIONS}")


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
    """Formula MACs (always) and measured latency and peak memory (where affordable) of each
    attention at each input resolution, on the ``stride``-downsampled map.

    A point is measured only when ``measure`` and its formula MACs are at most
    ``max_measured_macs`` (global attention at 896 input would need 10 GB for its scores);
    otherwise ``ms``, ``timing`` and ``peak_MB`` are ``None``. The attentions of one resolution
    are measured together, in alternating rounds (:func:`course.latency.measure_interleaved`,
    by the course's policy: ``threads`` ``None`` is 1), so they compare fairly. The input is a
    seeded ``torch.randn(1, C, h, w)`` with ``h = w = resolution // stride``.

    Returns:
        One dict per (resolution, kind): ``resolution, kind, h, tokens, macs, scores_MB``
        (formula bytes of the unfused score matrix), ``ms``, ``timing`` (the
        :class:`~course.latency.Timing`), ``peak_MB``.
    """
    from course import latency
    from course.latency.memory import peak_memory_bytes

    rows = []
    for resolution in resolutions:
        h = resolution // stride
        cases = {}
        for kind in kinds:
            cost = attention_formula(kind, h, h, C, heads, window, sr_ratio)
            keys = {"global": h * h, "window": min(window, h) ** 2, "sra": (h // sr_ratio) ** 2}[kind]
            row = {
                "resolution": resolution, "kind": kind, "h": h, "tokens": h * h, "macs": cost.macs,
                "scores_MB": formulas.attention_scores_bytes(h * h, keys, heads) / 1e6, "ms": None, "timing": None,
                "peak_MB": None,
            }
            if measure and cost.macs <= max_measured_macs:
                torch.manual_seed(0)
                layer = attention_layer(kind, C, heads, window, sr_ratio, fused=fused).eval()
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

    return tables.table(rows, [("resolution", "input"), ("kind", "attention"), ("tokens", "tokens"),
                               ("macs", "MACs", "G"), ("scores_MB", "scores MB", ".1f"),
                               ("timing", "latency"), ("peak_MB", "peak MB", ".1f")])


_COLORS = {"global": "tab:red", "window": "tab:blue", "sra": "tab:green"}
_LABELS = {"global": "global (ViT)", "window": "window (Swin)", "sra": "spatial-reduction (PVT)"}


def cost_curves(rows: Sequence[dict], title: str = ""):
    """One figure, three panels against input resolution: formula MACs, measured latency (ms,
    with IQR error bars; a noisy point hollow), measured peak memory (MB); one line per
    attention, each with its own marker so that no point hides another; log scales with plain
    tick labels. Unmeasured points are left out of the two measured panels (the legend says how
    many). Returns the matplotlib ``Figure``."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    from course.plots import plain_log_axis, timing_errorbar

    fig = Figure(figsize=(11.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("macs", "MACs (formula)"), ("ms", "latency (ms, measured)"), ("peak_MB", "peak memory (MB, measured)"))
    markers = {"global": "o", "window": "s", "sra": "^"}
    resolutions = sorted({r["resolution"] for r in rows})
    for ax, (key, label) in zip(axes, panels):
        for kind in _COLORS:
            mine = [r for r in rows if r["kind"] == kind]
            points = [r for r in mine if r[key] is not None]
            if not points:
                continue
            missing = len(mine) - len(points)
            name = _LABELS[kind] + (f" ({missing} not measured)" if missing else "")
            xs = [r["resolution"] for r in points]
            if key == "ms":
                timing_errorbar(ax, xs, [r["timing"] or r["ms"] for r in points], color=_COLORS[kind], label=name,
                                marker=markers[kind])
            else:
                ax.plot(xs, [r[key] for r in points], marker=markers[kind], color=_COLORS[kind], label=name,
                        markersize=6, alpha=0.85)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input resolution (pixels)")
        ax.set_ylabel(label)
        ax.set_xticks(resolutions, [str(r) for r in resolutions])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        plain_log_axis(ax.yaxis, formatter="eng" if key == "macs" else "g")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.set_title("not measured", fontsize=8)
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
    layer = attention_layer(c["kind"], c["C"], c["heads"], c["window"], c["sr_ratio"])
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
        "kind": list(ATTENTIONS),
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
