"""Chapter 9's closing tables in one run: one table per technique, measured on this machine.

    PYTHONPATH=. python benchmarks/compression.py                 # every table (a few minutes)
    PYTHONPATH=. python benchmarks/compression.py --only int8     # one table
    PYTHONPATH=. python benchmarks/compression.py --fast          # the notebook's FAST settings

The same library calls and settings as solutions/09_compression.ipynb (full run): the shipped
baseline (also the distillation teacher) and early-exit models on the synthetic ``shapes()`` test split, one thread,
batch 1. Timings depend on the machine and its load: the environment stamp is printed first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course.chapters import ch09  # noqa: E402
from course.compression import early_exit, pruning  # noqa: E402
from course.compression.nets import ResNetLite  # noqa: E402
from course.compression.weights import load_reference, manifest  # noqa: E402
from course.data import digits, shapes  # noqa: E402
from course.train import fit  # noqa: E402
from course.latency import stamp  # noqa: E402

TABLES = ("fast", "unstructured", "channels", "bits", "int8", "distillation", "search", "early_exit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=TABLES)
    parser.add_argument("--fast", action="store_true", help="the notebook's FAST settings")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    fast, threads = args.fast, args.threads
    torch.set_num_threads(threads)
    budget_s = 0.1 if fast else 0.4
    data = shapes()
    test = data.subset(n_test=500) if fast else data
    baseline, exit_net = load_reference("baseline"), load_reference("early_exit")
    teacher = baseline  # the distillation teacher is the baseline
    print(stamp("cpu", threads))
    for name in args.only or TABLES:
        start = time.perf_counter()
        print(f"\n== {name} ==")
        if name == "fast":
            rows = ch09.speed_table({"baseline": baseline, "early_exit": exit_net}, test,
                                    train_s={n: manifest()[n]["train_s"] for n in ("baseline", "early_exit")},
                                    threads=threads, budget_s=budget_s)
            print(ch09.format_rows(rows, ch09.SPEED_COLUMNS))
        elif name == "unstructured":
            sparsities = (0.0, 0.7, 0.9) if fast else (0.0, 0.3, 0.5, 0.7, 0.8, 0.9)
            rows = ch09.unstructured_table(baseline, test, sparsities, threads=threads, budget_s=budget_s)
            print(ch09.format_rows(rows, ch09.UNSTRUCTURED_COLUMNS))
        elif name == "channels":
            ratios = (0.0, 0.5) if fast else (0.0, 0.25, 0.5, 0.75)
            rows = ch09.channel_table(baseline, test, ratios, finetune_epochs=1,
                                      finetune_data=data.subset(1000) if fast else data, threads=threads, budget_s=budget_s)
            print(ch09.format_rows(rows, ch09.CHANNEL_COLUMNS))
            print(ch09.pruning_verdict([], rows))
        elif name == "bits":
            rows = ch09.bits_table(baseline, test, bits=(8, 4, 2), calibration=data.train_x[:256])
            print(ch09.format_rows(rows, ch09.BITS_COLUMNS))
        elif name == "int8":
            rows = ch09.int8_table(baseline, test, n_calibration=256 if fast else 1024, threads=threads, budget_s=budget_s)
            print(ch09.format_rows(rows, ch09.INT8_COLUMNS))
            print(ch09.int8_verdict(rows))
        elif name == "distillation":
            rows = ch09.distillation_experiment(
                teacher, lambda: ResNetLite((8, 16, 32)), data.subset(n_test=len(test.test_y)),
                n_labeled=200 if fast else 500, epochs=3 if fast else 20, unlabeled_epochs=1 if fast else 2,
                n_unlabeled=1000 if fast else None, seeds=(0,) if fast else (0, 1), threads=threads)
            print(ch09.format_rows(rows, ch09.DISTILL_COLUMNS))
            print(ch09.distillation_verdict(rows))
            digit_data = digits()
            torch.manual_seed(0)
            digit_teacher = ResNetLite((16, 32, 64))
            print("digits teacher:", fit(digit_teacher, digit_data, epochs=2 if fast else 6, threads=threads))
            rows = ch09.distillation_experiment(
                digit_teacher, lambda: ResNetLite((8, 16, 32)), digit_data, n_labeled=100,
                epochs=30 if fast else 100, unlabeled_epochs=3 if fast else 10, seeds=(0,) if fast else (0, 1),
                threads=threads)
            print(ch09.format_rows(rows, ch09.DISTILL_COLUMNS))
            print(ch09.distillation_verdict(rows))
        elif name == "search":
            table, candidates, measured, target = ch09.search_experiment(
                digits(), initial=2 if fast else 4, mutations=1 if fast else 4, proxy_epochs=2 if fast else 3,
                proxy_train=600 if fast else None, proxy_test=200 if fast else None, threads=threads,
                budget_s=0.01 if fast else 0.05)
            print(f"target {target:.3f} ms")
            for c in candidates:
                print(f"{c.spec} predicted {c.latency_ms:.3f} ms measured {measured[c.choices].median_ms:.3f} ms "
                      f"proxy {c.accuracy:.1f}% reward {c.reward:.2f}")
        elif name == "early_exit":
            costs = early_exit.exit_costs(exit_net)
            points = early_exit.exit_curve(exit_net, test.test_x, test.test_y, [1.01, 0.99, 0.95, 0.9, 0.8, 0.7, 0.5, 0.0])
            for p in points:
                print(f"threshold {p.threshold:4.2f}: {p.exited:6.1%} exit, {p.average_macs:,.0f} MACs on average "
                      f"(plain {costs.full:,}), top-1 {p.accuracy:.1f}%")
        print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
