"""The course's speed budget, measured: one table, medians over repeats, ratios from the same run.

    make bench                                          # everything (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --skip-notebooks
    .venv/bin/python benchmarks/run.py --only counter --table          # the counter alone, per model
    .venv/bin/python benchmarks/run.py --only counter --table --check  # + meta == real, per model
    .venv/bin/python benchmarks/run.py --only counter --counter-models zoo --model 'mobilenet*'

Sections (``--only``, repeatable):
* ``counter``: ``course.cost.count`` against one eager forward pass and PyTorch's
  ``FlopCounterMode`` on every model of the timm sweep (:mod:`course.cost.timm_sweep`) and
  the zoo: median and worst ratio for each, 1 thread, the three measurements interleaved per
  model, medians of ``--counter-repeats`` (5); ``--table`` prints the per-model table;
* ``fvcore``: the counter against fvcore's ``FlopCountAnalysis`` on four timm models;
* ``explorer``: Chapter 1's conv explorer update: cost only, and with a fresh latency measurement;
* ``import``: ``import course`` (with what a chapter notebook imports) on top of ``import torch``;
* ``notebooks``: each solution notebook's headless run with ``FAST=True``, and the total.

Times are wall-clock medians; a ratio compares medians measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import warnings
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FVCORE_MODELS = ["resnet50", "mobilenetv2_100", "swin_tiny_patch4_window7_224", "vit_base_patch16_224"]


def median_time(fn, repeats: int, warmup: int = 1) -> tuple:
    """(median seconds, IQR/median) of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    median = statistics.median(times)
    return median, (q3 - q1) / median


def _counter_models(which: str, pattern: str | None):
    """(label, family, build) for the timm sweep and/or the zoo; ``build()`` -> (model, input)."""
    import fnmatch

    import torch

    from course.cost.timm_sweep import SWEEP, build

    models = []
    if which in ("sweep", "all"):
        models += [(name, family, "sweep", lambda name=name: build(name)) for name, family in SWEEP]
    if which in ("zoo", "all"):
        from course.models import create_model, list_models, zoo

        def build_zoo(name):
            torch.manual_seed(0)
            size = zoo[name].input_size
            return create_model(name).eval(), torch.randn(1, 3, size, size)

        models += [(name, zoo[name].family, "zoo", lambda name=name: build_zoo(name)) for name in list_models()]
    return [m for m in models if pattern is None or fnmatch.fnmatch(m[0], pattern)]


def time_counter(models, repeats: int, check: bool = False, progress=None) -> list:
    """Per model: medians of ``repeats`` interleaved timings of an eager forward pass, ``count``
    and ``FlopCounterMode``, in one process on one thread (each timed once before, as warm-up).

    ``FlopCounterMode`` runs under ``torch.no_grad()`` like the other two; on the few models
    where its module tracker refuses that (a parameter passed to a submodule: PiT, CaiT) it
    runs with autograd on, and the row says so (``fcm_grad``). Its MACs (FLOPs / 2) are kept
    (``fcm_macs``); ``check`` also counts with a real pass and records whether a meta pass
    equals it on every field, without a note (``meta_eq_real``). Some models cache tensors
    in their first forward pass on a device (LeViT and TinyViT their attention biases): their
    first count charges that work, later ones do not, so both passes are made last.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from course.cost import count

    rows = []
    for label, family, group, build in models:
        model, x = build()

        def eager():
            with torch.no_grad():
                model(x)

        def counter():
            return count(model, x)

        fcm_grad = False

        def flop_counter():
            with FlopCounterMode(display=False) as fcm, (torch.enable_grad() if fcm_grad else torch.no_grad()):
                model(x)
            return fcm.get_total_flops() // 2

        try:
            fcm_macs = flop_counter()
        except AssertionError:  # torch.utils.module_tracker under no_grad
            fcm_grad = True
            fcm_macs = flop_counter()
        report = counter()
        eager()
        times = {"eager": [], "count": [], "fcm": []}
        for _ in range(repeats):
            for key, fn in (("eager", eager), ("count", counter), ("fcm", flop_counter)):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        row = {"model": label, "family": family, "group": group, "macs": report.macs, "fcm_macs": fcm_macs,
               "fcm_grad": fcm_grad}
        if check:  # after the timings, so both passes meet the model's caches warm (LeViT's attention biases)
            meta = count(model, x)
            row["meta_eq_real"] = not meta.notes and not meta.differences(count(model, x, mode="real"))
        row.update({f"t_{key}": statistics.median(values) for key, values in times.items()})
        rows.append(row)
        if progress:
            progress(row)
        del model, x
    return rows


def _summary(rows, group_name: str) -> list:
    """Median and worst count/forward and count/FlopCounterMode over ``rows``."""
    out = []
    for key, target_median, target_worst, title in (
        ("t_eager", "<= 0.3", "<= 1.0", "count / eager forward"),
        ("t_fcm", "", "< 1.0", "count / FlopCounterMode"),
    ):
        ratios = sorted((r["t_count"] / r[key], r["model"]) for r in rows)
        worst, worst_model = ratios[-1]
        median = statistics.median(value for value, _ in ratios)
        n = len(ratios)
        out.append((f"{title}, {group_name} ({n} models): median", median, target_median, ""))
        out.append((f"{title}, {group_name} ({n} models): worst", worst, target_worst, worst_model))
    return out


def counter_table(rows) -> str:
    """The per-model table: MACs (counter, FlopCounterMode), meta == real (when checked), the
    three median times and the two ratios."""
    check = any("meta_eq_real" in r for r in rows)
    lines = [f"{'model':30s} {'family':16s} {'GMACs':>8s} {'FCM GMACs':>10s}" + (" meta==real" if check else "")
             + f" {'eager ms':>9s} {'count ms':>9s} {'FCM ms':>9s} {'count/fwd':>9s} {'count/FCM':>9s}"]
    for r in rows:
        mark = "*" if r["fcm_grad"] else " "
        same = (f" {'yes' if r['meta_eq_real'] else 'NO':>10s}" if check else "")
        fcm = f"{r['fcm_macs'] / 1e9:9.3f}" + ("" if r["fcm_macs"] == r["macs"] else "!")
        lines.append(f"{r['model']:30s} {r['family']:16s} {r['macs'] / 1e9:8.3f} {fcm:>10s}{same}"
                     f" {r['t_eager'] * 1e3:9.1f} {r['t_count'] * 1e3:9.1f} {r['t_fcm'] * 1e3:8.1f}{mark}"
                     f" {r['t_count'] / r['t_eager']:9.2f} {r['t_count'] / r['t_fcm']:9.2f}")
    if any(r["fcm_grad"] for r in rows):
        lines.append("* FlopCounterMode timed with autograd on (its module tracker fails under no_grad here)")
    if any(r["fcm_macs"] != r["macs"] for r in rows):
        lines.append("! FlopCounterMode's MACs differ: it charges nothing for the fused CPU attention kernel (zoo models "
                     "call it; the sweep turns it off) nor for oneDNN's LSTM kernel (tests/test_count_sweep.py)")
    return "\n".join(lines)


def bench_counter(repeats: int, which: str = "all", pattern: str | None = None, table: bool = False,
                  save: str | None = None, check: bool = False) -> list:
    """count() against an eager forward pass and FlopCounterMode over the timm sweep and the zoo."""
    import json

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = time_counter(_counter_models(which, pattern), repeats, check=check)
    finally:
        torch.set_num_threads(threads)
    if table:
        print(counter_table(rows))
    if save:
        Path(save).write_text(json.dumps(rows, indent=1))
    out = []
    for group in ("sweep", "zoo"):
        chosen = [r for r in rows if r["group"] == group]
        if chosen:
            out += _summary(chosen, "timm sweep" if group == "sweep" else "zoo")
    if len({r["group"] for r in rows}) > 1:
        out += _summary(rows, "sweep + zoo")
    return out


def bench_fvcore(repeats: int) -> list:
    """count() against fvcore's FlopCountAnalysis on four timm models."""
    import timm
    import torch
    from fvcore.nn import FlopCountAnalysis

    from course.cost import count

    rows = []
    for name in FVCORE_MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
        x = torch.randn(1, 3, 224, 224)

        def fvcore():
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.total()

        t_count, _ = median_time(lambda: count(model, x), repeats)
        t_fv, _ = median_time(fvcore, max(3, repeats // 3))
        rows.append((f"counter / fvcore, {name}", t_count / t_fv, "< 1", f"{t_count*1e3:.1f} ms vs {t_fv*1e3:.0f} ms"))
    return rows


def bench_explorer(repeats: int) -> list:
    from course.chapters.ch01 import conv_explorer

    cost_only = conv_explorer(measure=False)
    sizes = [56, 64]
    state = {"i": 0}

    def move():  # alternate between two settings of the resolution slider
        state["i"] += 1
        cost_only.set(H=sizes[state["i"] % 2])

    t_cost, _ = median_time(move, repeats * 3)

    live = conv_explorer(measure=True)
    channels = [64, 32]

    def move_and_measure():  # a configuration not measured before: the cache is cleared
        live.timings.clear()
        state["i"] += 1
        live.set(M=channels[state["i"] % 2])

    t_live, spread = median_time(move_and_measure, repeats)
    return [
        ("explorer update, cost only (s)", t_cost, "<= 0.1", "Chapter 1 conv explorer, defaults"),
        ("explorer update, fresh latency (s)", t_live, "<= 0.5", f"IQR/median {spread:.2f} (target <= 0.1)"),
    ]


def bench_import(repeats: int) -> list:
    code = (
        "import time, torch; t = time.perf_counter(); "
        "import course, course.cost, course.latency, course.widgets, course.plots, course.exercises; "
        "print(time.perf_counter() - t)"
    )
    times = [float(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT, text=True).strip().splitlines()[-1])
             for _ in range(repeats)]
    return [("import course (+ cost, latency, widgets, plots, exercises) after torch (s)", statistics.median(times),
             "<= 0.5", f"median of {repeats} fresh processes")]


def bench_notebooks() -> list:
    import papermill

    rows, total = [], 0.0
    for notebook in sorted((ROOT / "solutions").glob("*.ipynb")):
        out = Path("/tmp") / f"bench_{notebook.name}"
        start = time.perf_counter()
        papermill.execute_notebook(str(notebook), str(out), parameters={"FAST": True}, kernel_name="python3",
                                   cwd=str(notebook.parent), execution_timeout=600, progress_bar=False)
        elapsed = time.perf_counter() - start
        total += elapsed
        rows.append((f"notebook {notebook.stem}, FAST (s)", elapsed, "", "papermill, fresh kernel"))
    rows.append(("all solution notebooks, FAST (s)", total, "<= 300", f"{len(rows)} notebooks"))
    return rows


SECTIONS = ("import", "explorer", "counter", "fvcore", "notebooks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9, help="samples per timing (explorer, fvcore)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--counter-repeats", type=int, default=5, help="interleaved samples per model (counter)")
    parser.add_argument("--counter-models", choices=("sweep", "zoo", "all"), default="all",
                        help="counter section: the timm sweep, the zoo, or both")
    parser.add_argument("--model", help="counter section: only models matching this shell pattern")
    parser.add_argument("--table", action="store_true", help="counter section: print the per-model table")
    parser.add_argument("--save", help="counter section: write the per-model timings to this JSON file")
    parser.add_argument("--check", action="store_true",
                        help="counter section: also count with a real pass and show whether meta == real on every field")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # fvcore's use of torch.jit
    warnings.filterwarnings("ignore", category=UserWarning)  # timm's deprecation notices
    sections = args.only or [s for s in SECTIONS if not (s == "notebooks" and args.skip_notebooks)]

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (counter section: 1), "
          f"python {sys.version.split()[0]}, load average {_load()}")
    rows = []
    if "import" in sections:
        rows += bench_import(5)
    if "explorer" in sections:
        rows += bench_explorer(args.repeats)
    if "counter" in sections:
        rows += bench_counter(args.counter_repeats, args.counter_models, args.model, args.table, args.save, args.check)
    if "fvcore" in sections:
        rows += bench_fvcore(args.repeats)
    if "notebooks" in sections:
        rows += bench_notebooks()
    if not rows:
        print("nothing measured (no section, or no model matches --model)")
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}s}  {'value':>9s}  {'target':>7s}  note")
    print("-" * (width + 40))
    for name, value, target, note in rows:
        print(f"{name:{width}s}  {value:9.3f}  {target:>7s}  {note}")
    print(f"load average at the end {_load()} (on {os.cpu_count()} CPUs): timings taken under load are noisy")
    return 0


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
