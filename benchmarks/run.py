"""The course's speed budget, measured: one table, medians over repeats, ratios from the same run.

    make bench                      # everything (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --skip-notebooks

Rows:
* counter time / one eager forward pass, / PyTorch's FlopCounterMode, / fvcore, per model;
* explorer update time (Chapter 1's conv explorer at its defaults): cost only, and with a
  fresh latency measurement;
* ``import course`` (with what a chapter notebook imports) on top of ``import torch``;
* each solution notebook's headless run with ``FAST=True``, and the total.

Times are wall-clock medians; a ratio compares medians measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["resnet50", "mobilenetv2_100", "swin_tiny_patch4_window7_224", "vit_base_patch16_224"]


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


def bench_counter(repeats: int) -> list:
    import timm
    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from course.cost import count

    rows = []
    for name in MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
        x = torch.randn(1, 3, 224, 224)

        def eager():
            with torch.no_grad():
                model(x)

        def flop_counter():
            with FlopCounterMode(display=False), torch.no_grad():
                model(x)

        def fvcore():
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.total()

        t_eager, _ = median_time(eager, repeats, warmup=2)
        t_count, _ = median_time(lambda: count(model, x), repeats)
        t_fcm, _ = median_time(flop_counter, repeats)
        t_fv, _ = median_time(fvcore, max(3, repeats // 3))
        rows += [
            (f"counter / eager forward, {name}", t_count / t_eager, "<= 1.0", f"{t_count*1e3:.1f} ms vs {t_eager*1e3:.1f} ms"),
            (f"counter / FlopCounterMode, {name}", t_count / t_fcm, "< 1", f"vs {t_fcm*1e3:.1f} ms"),
            (f"counter / fvcore, {name}", t_count / t_fv, "< 1", f"vs {t_fv*1e3:.0f} ms"),
        ]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # fvcore's use of torch.jit

    import torch

    rows = bench_import(5) + bench_explorer(args.repeats) + bench_counter(args.repeats)
    if not args.skip_notebooks:
        rows += bench_notebooks()
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}")
    print(f"{'measure':{width}s}  {'value':>9s}  {'target':>7s}  note")
    print("-" * (width + 40))
    for name, value, target, note in rows:
        print(f"{name:{width}s}  {value:9.3f}  {target:>7s}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
