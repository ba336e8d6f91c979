"""Chapter 8: device profiling and the capstone. Oracles: brute-force Pareto dominance, the zoo's
and the papers' numbers, course.cost.count, PyTorch's own outputs (ONNX Runtime), hand counts."""

import random

import pytest
import torch

from course.chapters import ch08
from course.exercises import REGISTRY, check
from course.models import zoo


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- Pareto front ------------------------------------------------------------------------------


def brute_force_front(costs, accs):
    """Every point no other point dominates (<= cost and >= accuracy, one strict), by cost."""
    n = len(costs)
    keep = [
        i for i in range(n)
        if not any(costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j] < costs[i] or accs[j] > accs[i]) for j in range(n))
    ]
    return sorted(keep, key=lambda i: (costs[i], -accs[i], i))


def test_pareto_front_hand_made_tables():
    assert ch08.pareto_front([10, 20, 30], [70, 75, 80]) == [0, 1, 2]
    assert ch08.pareto_front([10, 20, 30], [80, 75, 70]) == [0]
    assert ch08.pareto_front([30, 10, 20], [80, 70, 60]) == [1, 0]
    assert ch08.pareto_front([10, 10, 15], [70, 72, 72]) == [1]  # same cost: the more accurate
    assert ch08.pareto_front([7, 7, 3], [75, 75, 60]) == [2, 0, 1]  # duplicates both stay
    assert ch08.pareto_front([], []) == []
    with pytest.raises(ValueError, match="length"):
        ch08.pareto_front([1, 2], [1])


def test_pareto_front_equals_brute_force_on_random_tables():
    rng = random.Random(0)
    for trial in range(300):
        n = rng.randint(1, 12)
        # Small integer grids make ties and duplicates frequent.
        costs = [rng.randint(1, 6) for _ in range(n)]
        accs = [rng.randint(60, 66) for _ in range(n)]
        got = ch08.pareto_front(costs, accs)
        want = brute_force_front(costs, accs)
        assert sorted(got) == sorted(want), (costs, accs)
        assert [costs[i] for i in got] == sorted(costs[i] for i in got)


# --- capstone models -----------------------------------------------------------------------------


def test_capstone_covers_the_talk_with_cited_numbers():
    assert len(ch08.CAPSTONE) >= 12
    names = [s.name for s in ch08.CAPSTONE]
    assert len(set(names)) == len(names)
    assert set(ch08.FAST_SUBSET) <= set(names)
    assert {s.kind for s in ch08.CAPSTONE} == {"CNN", "transformer"}
    for spec in ch08.CAPSTONE:
        if spec.name in zoo:
            paper = zoo[spec.name].paper
        else:
            paper = ch08.CAPSTONE_EXTRA.get(spec.name)
        assert paper is not None and paper.top1 and paper.macs_g and paper.citation, spec.name
        assert spec.fallback.split(":")[0] in ("timm", "torchvision")
    # Re-parameterized models are measured in their deploy form.
    assert all(s.name.endswith("_deploy") for s in ch08.CAPSTONE if s.label.endswith("(deploy)"))
    # The published numbers (papers' tables, torchvision's docs): EfficientFormerV2's from the zoo,
    # ResNet-50's kept here (the zoo does not build it); one source for each model.
    assert [(p.params_m, p.macs_g, p.top1) for p in (zoo[f"efficientformerv2_s{i}"].paper for i in range(3))] == [
        (3.5, 0.40, 75.7), (6.1, 0.65, 79.0), (12.6, 1.25, 81.6)]
    extra = ch08.CAPSTONE_EXTRA
    assert (extra["resnet50"].params_m, extra["resnet50"].macs_g, extra["resnet50"].top1) == (25.6, 4.1, 76.13)
    assert not set(extra) & set(zoo)


def test_distilled_reads_the_zoo_and_the_hand_entries_of_the_others():
    """Oracle: the papers. EfficientFormerV2 (Table 2) reports its top-1 with a RegNetY-16GF teacher;
    MobileNet, ShuffleNet, MnasNet, RepVGG, MobileOne (its distilled rows are separate), PoolFormer,
    PVTv2, Swin and torchvision's ResNet-50 did not use one."""
    assert ch08.DISTILLED == {"efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2"}
    for spec in ch08.CAPSTONE:
        paper, _ = ch08.published(spec)
        assert ch08.distilled(spec) is paper.distilled is (spec.name in ch08.DISTILLED), spec.name
    assert ch08.distilled(ch08._spec("resnet50")) is False  # a hand entry: torchvision's recipe has no teacher
    unknown = ch08.CapstoneModel("not in the zoo", "not_in_zoo", "timm:resnet18", "CNN")
    assert ch08.distilled(unknown) is None


@pytest.mark.slow
def test_extra_models_published_size_matches_the_built_twin():
    # Oracle: the papers' parameter counts vs the timm / torchvision builds (random weights).
    for name in ("efficientformerv2_s0", "resnet50"):
        model, paper, source, note = ch08.build_capstone_model(ch08._spec(name))
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        assert params_m == pytest.approx(paper.params_m, abs=0.15), (name, params_m)
        assert source in ("timm", "torchvision", "course zoo") and note == ""  # EfficientFormerV2: in the zoo since issue 14


def test_missing_zoo_entry_falls_back_to_the_twin_with_a_note():
    spec = ch08.CapstoneModel("ShuffleNet V2 0.5x (twin)", "not_in_zoo_shufflenet", "torchvision:shufflenet_v2_x0_5", "CNN")
    model, paper, source, note = ch08.build_capstone_model(spec)
    assert source == "torchvision" and paper is None and "torchvision:shufflenet_v2_x0_5" in note
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in zoo["shufflenet_v2_x0_5"].builder().parameters()
    )


@pytest.mark.slow
def test_capstone_table_small_run():
    torch.set_num_threads(2)
    rows = ch08.capstone_table(names=["mobileone_s0_deploy", "shufflenet_v2_x1_0"], threads=1, budget_s=0.05)
    assert [r.name for r in rows] == ["shufflenet_v2_x1_0", "mobileone_s0_deploy"]  # CAPSTONE order
    assert torch.get_num_threads() == 2
    from course.cost import count

    for r in rows:
        entry = zoo[r.name]
        assert (r.top1, r.macs_g_paper) == (entry.paper.top1, entry.paper.macs_g)
        assert r.macs_g * 1e9 == count(entry.builder().eval(), torch.randn(1, 3, 224, 224)).macs
        assert r.eager.threads == r.onnxruntime.threads == r.threads == 1
        assert r.outputs_match and r.max_abs_diff <= 1e-4 * max(1.0, r.max_abs_output)
        assert r.environment["threads"] == 1 and "onnxruntime" in r.environment
        assert r.latency_ms("onnxruntime") == r.ort_ms and r.latency_ms("eager") == r.eager_ms
    text = str(ch08.format_capstone(rows))
    assert "MobileOne-S0" in text and "ONNX Runtime" in text and "distilled" in text
    answer = ch08.is_cnn_enough(rows)
    assert "CNNs on the front" in answer and "a CNN is enough" in answer  # both rows are CNNs
    fig = ch08.capstone_figure(rows)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="backends"):
        ch08.capstone_table(names=["shufflenet_v2_x1_0"], backends=("tensorrt",))
    with pytest.raises(ValueError, match="unknown capstone model"):
        ch08.capstone_table(names=["nope"])


def _row(label, kind, top1, ms):
    t = ch08.Timing(ms / 1e3, 0.0, 1, "cpu", 1)
    return ch08.CapstoneRow(label=label, name=label, kind=kind, source="test", top1=top1, macs_g_paper=1.0,
                            params_m_paper=1.0, citation="", macs_g=1.0, params_m=1.0, eager=t, onnxruntime=None,
                            max_abs_diff=None, batch=1, threads=1, device="cpu")


def test_is_cnn_enough_reads_the_front():
    rows = [_row("cnn-fast", "CNN", 70.0, 5.0), _row("cnn-slow", "CNN", 72.0, 20.0), _row("vit", "transformer", 78.0, 10.0)]
    text = ch08.is_cnn_enough(rows)
    assert "CNNs on the front: 1; transformers on the front: 1" in text
    assert "best CNN at no more latency is cnn-fast (70.0%" in text and "+8.0 points" in text
    assert "no model" in ch08.is_cnn_enough([_row("x", "CNN", 70.0, 1.0)], backend="onnxruntime")
    # The verdict is per stated budget, not a tautology about the front.
    assert "  <= 5.00 ms: CNN cnn-fast 70.0% vs no transformer: a CNN is enough." in text
    assert "  <= 10.0 ms: CNN cnn-fast 70.0% vs transformer vit 78.0%: the transformer, by 8.0 points." in text
    assert "  <= 20.0 ms: CNN cnn-slow 72.0% vs transformer vit 78.0%: the transformer, by 6.0 points." in text
    custom = ch08.is_cnn_enough(rows, budgets_ms=(3,))
    assert "  <= 3.00 ms: no CNN vs no transformer: nothing fits." in custom
    assert "holds the front where it has" not in text
    with pytest.raises(ValueError, match="backend"):
        rows[0].latency_ms("tensorrt")


def test_capstone_widget_headless():
    w = ch08.capstone_widget(budget_s=0.05)
    assert set(w.controls) == {"device", "threads", "batch", "backend", "models"}
    assert w.plot.layout.display == "none" and "measure" in w.status.value  # no broken image before a run
    calls = []
    fake = [_row("cnn", "CNN", 70.0, 5.0), _row("vit", "transformer", 75.0, 9.0)]

    def fake_table(**kwargs):
        calls.append(kwargs)
        return fake

    original = ch08.capstone_table
    ch08.capstone_table = fake_table
    try:
        rows = w.run(threads=1, backend="eager")
        assert rows is fake and calls[-1]["threads"] == 1 and calls[-1]["backends"] == ("eager",)
        assert calls[-1]["names"] == ch08.FAST_SUBSET
        w.run()  # same setting: from the cache
        assert len(calls) == 1
        assert w.plot.value[:4] == b"\x89PNG" and w.plot.layout.display is None and "Pareto front" in w.table.value
        assert "ONNX Runtime" not in w.table.value.split("<pre>")[0]  # eager only: no empty ORT columns
        with pytest.raises(ValueError, match="unknown control"):
            w.run(colour="red")
    finally:
        ch08.capstone_table = original


# --- honest measurement helpers -------------------------------------------------------------------


def test_cold_vs_warm_and_sync_effect_on_cpu():
    model = torch.nn.Conv2d(8, 8, 3)
    out = ch08.cold_vs_warm(model, torch.randn(1, 8, 16, 16), calls=4)
    assert set(out) == {"first_ms", "median_rest_ms", "mean_all_ms"} and out["first_ms"] > 0
    assert ch08.sync_effect(model, torch.randn(1, 8, 16, 16)) is None  # nothing asynchronous on CPU
    with pytest.raises(ValueError):
        ch08.cold_vs_warm(model, torch.randn(1, 8, 16, 16), calls=1)


def test_layer_and_roofline_figures():
    from course.latency import Roofline, place_layers, profile_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8))
    x = torch.randn(1, 3, 32, 32)
    roof = Roofline(peak_gmacs=40.0, bandwidth_gbs=10.0, matmul_n=0, copy_bytes=0)
    points = place_layers(model, x, roof, profile=profile_model(model, x, runs=1, budget_s=0.05))
    assert len(ch08.layer_figure(points).axes) == 2
    fig = ch08.roofline_figure(roof, points)
    line = fig.axes[0].lines[0]
    xs, ys = line.get_data()
    assert all(y == pytest.approx(min(40.0, 10.0 * x)) for x, y in zip(xs, ys))


# --- exercises -----------------------------------------------------------------------------------


def test_exercises_registered_and_reference_solutions_pass():
    from course.cost import conv2d

    assert {"8.1", "8.2", "8.3"} <= set(REGISTRY)

    def conv_intensity(H, N, M, K, stride, groups):
        # by hand: output size with padding K//2, float32 bytes
        Ho = (H + 2 * (K // 2) - K) // stride + 1
        macs = Ho * Ho * K * K * (N // groups) * M
        return macs / (4 * (H * H * N + K * K * (N // groups) * M + Ho * Ho * M))

    assert check("8.1", conv_intensity, quiet=True).passed

    def roofline_bound(peak_gmacs, bandwidth_gbs, H, N, M, K, groups):
        c = conv2d(H, H, N, M, K, groups=groups, bias=False)
        intensity = c.macs / c.bytes_moved
        return ("memory" if intensity < peak_gmacs / bandwidth_gbs else "compute", min(peak_gmacs, bandwidth_gbs * intensity))

    assert check("8.2", roofline_bound, quiet=True).passed
    assert check("8.3", brute_force_front, quiet=True).passed
    # The cases exercise both bounds and both kinds of front.
    bounds = {REGISTRY["8.2"].reference(**c)[0] for c in REGISTRY["8.2"].cases}
    assert bounds == {"memory", "compute"}


def test_exercise_messages_for_common_mistakes():
    from course.cost import conv2d

    def elements_not_bytes(H, N, M, K, stride, groups):
        c = conv2d(H, H, N, M, K, stride=stride, groups=groups, bias=False)
        return c.macs / (c.bytes_moved // 4)

    result = check("8.1", elements_not_bytes, quiet=True)
    assert not result.passed and "4 bytes per element" in result.message
    result = check("8.2", lambda p, b, H, N, M, K, g: ("compute", p), quiet=True)
    assert not result.passed and ("ridge" in result.message or "memory-bound" in result.message)
    result = check("8.3", lambda lat, acc: sorted(brute_force_front(lat, acc), reverse=True), quiet=True)
    assert not result.passed and "order" in result.message
