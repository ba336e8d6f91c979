"""The twin table of issue 14's models: EfficientFormerV2, MobileNetV4, RepViT, FastViT, EfficientViT.

    PYTHONPATH=. .venv/bin/python benchmarks/modern_twins.py                 # all models (~10 min on 2 busy cores)
    PYTHONPATH=. .venv/bin/python benchmarks/modern_twins.py fastvit_t8      # some

Per model: parameters (course / twin / paper), MACs (course counter / paper, at the paper's
input size), the max abs output difference after copying the twin's seeded random weights
(:func:`course.equivalence.randomize_weights`, each conv and linear layer at unit output
deviation on a seeded example; batch 2, eval), and eager CPU latency, batch 1,
one thread: :func:`course.latency.compare.measure_interleaved` (course and twin sampled in
alternating rounds, at least 5 samples each, re-measured once when noisy), median ± IQR.
A deploy-time model's twin is timm's re-parameterized model.
"""

from __future__ import annotations

import sys

import torch

from course.cost import count
from course.equivalence import randomize_weights
from course.latency import environment
from course.latency.compare import measure_interleaved
from course.models import create_model, load_twin_weights, zoo
from course.models.twins import create_twin

NAMES = [
    "efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
    "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium",
    "repvit_m0_9", "repvit_m0_9_deploy", "repvit_m1_0", "repvit_m1_0_deploy",
    "fastvit_t8", "fastvit_t8_deploy", "fastvit_sa12", "fastvit_sa12_deploy",
    "efficientvit_b1", "efficientvit_m0",
]
BUDGET_S = 4.0  # for the pair


def random_twin(name: str, example: torch.Tensor) -> torch.nn.Module:
    """The twin with seeded random weights (unit output deviation on ``example``); a deploy-time
    twin is the random train-time twin re-parameterized by timm."""
    entry = zoo[name]
    if not entry.deploy:
        return randomize_weights(create_twin(entry), seed=0, example=example).eval()
    from timm.utils import reparameterize_model

    train_twin = randomize_weights(create_twin(zoo[name.removesuffix("_deploy")]), seed=0, example=example)
    return reparameterize_model(train_twin.eval())


def row(name: str) -> dict:
    entry = zoo[name]
    size = entry.paper.input_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    twin = random_twin(name, x)
    model = create_model(name).eval()
    load_twin_weights(model, twin, name)
    with torch.no_grad():
        diff = (model(x) - twin(x)).abs().max().item()
    x1 = x[:1]
    timings = measure_interleaved({"course": (model, (x1,)), "twin": (twin, (x1,))}, device="cpu", threads=1,
                                  budget_s=BUDGET_S, min_samples=5)
    return {
        "name": name,
        "params": (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in twin.parameters()),
                   entry.paper.params_m),
        "macs": (count(model, x1).macs, entry.paper.macs_g),
        "size": size,
        "diff": diff,
        "ms": (timings["course"], timings["twin"]),
    }


def markdown(rows) -> str:
    lines = ["| model | input | params course / twin / paper | GMACs course / paper | max abs diff | "
             "eager ms course / twin (1 thread, ± IQR) |", "|---|---|---|---|---|---|"]
    for r in rows:
        (pc, pt, pp), (mc, mp), (tc, tt) = r["params"], r["macs"], r["ms"]
        noisy = " (noisy)" if tc.noisy or tt.noisy else ""
        lines.append(f"| {r['name']} | {r['size']} | {pc:,} / {pt:,} / {pp} M | {mc / 1e9:.3f} / {mp} | "
                     f"{r['diff']:.1e} | {tc.median_ms:.1f} ± {tc.iqr_ms:.1f} / {tt.median_ms:.1f} ± {tt.iqr_ms:.1f}"
                     f"{noisy} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(environment())
    rows = []
    for name in sys.argv[1:] or NAMES:
        rows.append(row(name))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(markdown(rows))
