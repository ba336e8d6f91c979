"""The numbers the issues' closing notes report, measured in one run on this machine.

    .venv/bin/python benchmarks/tables.py            # all sections (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/tables.py twins      # one section: twins, attention, reparam, roofline, capstone

Every latency is eager CPU, batch 1, measured by the course's policy (``course.latency.policy``:
one thread, >= 5 samples, re-measured once when noisy; comparisons interleaved); shown as
median ± IQR, a noisy one marked.
"""

from __future__ import annotations

import sys

import torch

from course.latency import environment, measure


def twins() -> None:
    """Every zoo model: params (course / twin / paper), MACs (course / paper), output difference, latency."""
    from course.chapters.ch02 import format_zoo_table, zoo_table
    from course.models import list_models, zoo

    names = [n for n in list_models() if not n.endswith("_deploy")]
    rows = []
    for name in names:
        try:
            rows += zoo_table([name], threads=(1,), budget_s=1.0)
        except Exception as error:  # noqa: BLE001 - report and go on
            print(f"{name}: {type(error).__name__}: {error}")
    print(format_zoo_table(rows, threads=(1,)).markdown())
    print({n: zoo[n].paper.convention for n in names if zoo[n].paper})


def attention() -> None:
    """Global, window and spatial-reduction attention at 224, 448 and 896 input (stride 4, C=64)."""
    from course.chapters import ch05

    rows = ch05.resolution_sweep((224, 448, 896), max_measured_macs=25e9, budget_s=1.0, memory=False)
    print(ch05.sweep_table(rows).markdown())


def reparam() -> None:
    """Train-time vs deploy-time latency for the blocks and RepVGG-A0, MobileOne-S0."""
    from course.chapters import ch07
    from course.models import create_model

    torch.manual_seed(0)
    cases = {
        "RepVGG block, 64 ch, 56x56": (ch07.make_block("RepVGG 3x3", 64), torch.randn(1, 64, 56, 56)),
        "MobileOne depthwise unit, k=4, 64 ch, 56x56": (ch07.make_block("depthwise 3x3", 64, k=4), torch.randn(1, 64, 56, 56)),
        "MobileOne pointwise unit, k=4, 64 ch, 56x56": (ch07.make_block("pointwise 1x1", 64, k=4), torch.randn(1, 64, 56, 56)),
        "RepVGG-A0": (create_model("repvgg_a0"), torch.randn(1, 3, 224, 224)),
        "MobileOne-S0": (create_model("mobileone_s0"), torch.randn(1, 3, 224, 224)),
    }
    from course.equivalence import randomize_bn
    from course.tables import table

    rows = []
    for name, (model, x) in cases.items():
        randomize_bn(model)
        r = ch07.compare_train_deploy(model.eval(), x, threads=1, budget_s=1.0)
        pt, pd = r["peak_bytes"]
        rows.append({"model": name, "train": r["latency"][0], "deploy": r["latency"][1], "speedup": r["speedup_iqr"],
                     "peak": f"{pt / 1e6:.2f} -> {pd / 1e6:.2f}", "diff": f"{r['rel_diff']:.1e}"})
    print(table(rows, [("model", "model"), ("train", "train"), ("deploy", "deploy"), ("speedup", "speed-up"),
                       ("peak", "peak activations train -> deploy (MB)"), ("diff", "deploy vs train rel. diff")]).markdown())


def roofline() -> None:
    from course.latency.roofline import measure_roofline

    print(measure_roofline(threads=1, budget_s=2.0))
    print(measure_roofline(threads=2, budget_s=2.0))


def capstone() -> None:
    from course.chapters import ch08

    rows = ch08.capstone_table(threads=1, budget_s=1.0)
    print(ch08.format_capstone(rows).markdown())


SECTIONS = {"twins": twins, "attention": attention, "reparam": reparam, "roofline": roofline, "capstone": capstone}

if __name__ == "__main__":
    print(environment())
    for section in sys.argv[1:] or list(SECTIONS):
        print(f"\n## {section}")
        SECTIONS[section]()
