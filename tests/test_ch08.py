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


def brute_force_lut(latency_ms, score, budget_ms):
    """An independent answer to 8.1: every combination, highest score that fits."""
    import itertools

    best = None
    for choice in itertools.product(*(range(len(s)) for s in latency_ms)):
        ms = sum(s[c] for s, c in zip(latency_ms, choice))
        total = sum(s[c] for s, c in zip(score, choice))
        if ms <= budget_ms and (best is None or total > best[0] + 1e-12):
            best = (total, list(choice))
    return None if best is None else best[1]


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
    """Oracle: the papers. EfficientFormerV2 (Table 2) and RepViT report their top-1 with a RegNetY-16GF teacher;
    MobileNet, ShuffleNet, MnasNet, RepVGG, MobileOne (its distilled rows are separate), PoolFormer,
    PVTv2, Swin, MobileNetV4, FastViT (distilled rows separate), both EfficientViTs and torchvision's
    ResNet-50 did not use one."""
    assert ch08.DISTILLED == {"efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
                              "repvit_m0_9_deploy", "repvit_m1_0_deploy"}  # RepViT (CVPR 2024, Table 3): with a teacher
    for spec in ch08.CAPSTONE:
        paper, _ = ch08.published(spec)
        assert ch08.distilled(spec) is paper.distilled is (spec.name in ch08.DISTILLED), spec.name
    assert ch08.distilled(ch08._spec("resnet50")) is False  # a hand entry: torchvision's recipe has no teacher
    unknown = ch08.CapstoneModel("not in the zoo", "not_in_zoo", "timm:resnet18", "CNN")
    assert ch08.distilled(unknown) is None


def test_capstone_has_the_models_since_2023_from_the_course_zoo():
    """Issue 14: the new models come from the course's own implementations (no timm fallback)."""
    new = {"mobilenetv4_conv_small", "mobilenetv4_hybrid_medium", "repvit_m0_9_deploy", "repvit_m1_0_deploy",
           "fastvit_t8_deploy", "fastvit_sa12_deploy", "efficientvit_b1", "efficientvit_m0",
           "efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2"}
    names = {s.name for s in ch08.CAPSTONE}
    assert new <= names and all(n in zoo for n in new)
    assert all(ch08.published(ch08._spec(n))[1] == "course zoo" for n in new)
    # the full run's subset: both kinds, new and old models, a range of sizes, all in CAPSTONE
    subset = [ch08._spec(n) for n in ch08.MEASURED_SUBSET]
    assert len(set(ch08.MEASURED_SUBSET)) == len(subset) < len(ch08.CAPSTONE)
    assert {s.kind for s in subset} == {"CNN", "transformer"}
    assert len(set(ch08.MEASURED_SUBSET) & new) >= 5 and any(n in ch08.DISTILLED for n in ch08.MEASURED_SUBSET)
    macs = sorted(ch08.published(s)[0].macs_g for s in subset)
    assert macs[0] < 0.1 and macs[-1] > 4.0


def test_published_table_lists_every_model_with_its_distillation():
    text = str(ch08.published_table(ch08.MEASURED_SUBSET))
    lines = text.splitlines()
    for spec in ch08.CAPSTONE:
        line = next(l for l in lines if l.startswith(spec.label + " "))
        paper, _ = ch08.published(spec)
        assert f"{paper.top1:.1f}" in line and ("yes" if spec.name in ch08.DISTILLED else "no") in line.split()
        assert line.rstrip().endswith("yes" if spec.name in ch08.MEASURED_SUBSET else "no")
    assert "measured below" not in str(ch08.published_table())


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


# --- batch, roofline, compilation: the sentences come from the numbers --------------------------


def _sweep_row(threads, batch, channels_last, ms, iqr_ms=0.0):
    from course.latency import SweepRow

    t = ch08.Timing(ms / 1e3, iqr_ms / 1e3, 5, "cpu", threads, times_s=(ms / 1e3,) * 5)
    return SweepRow(threads=threads, batch=batch, channels_last=channels_last, timing=t)


def test_batch_verdict_reads_the_sweep():
    # the stored sweep of issue 11: 20.8 ms/image at batch 1, 47.0 at batch 8 (376 ms per call)
    grid = [_sweep_row(1, 1, False, 20.8), _sweep_row(1, 8, False, 376.0),
            _sweep_row(1, 1, True, 20.0), _sweep_row(1, 8, True, 80.0),
            _sweep_row(2, 1, False, 12.0), _sweep_row(2, 8, False, 96.0)]
    text = ch08.batch_verdict(grid).splitlines()
    assert text[0] == ("1 thread, NCHW: 20.8 ms/image at batch 1, 47.0 ms/image at batch 8: 2.26x MORE per image "
                       "(batching did not amortise anything here).")
    assert text[1].startswith("1 thread, NHWC: 20.0 ms/image at batch 1, 10.0 ms/image at batch 8: 2.00x less per image")
    assert text[2].startswith("2 threads, NCHW") and "the same per image within 5%" in text[2]
    with pytest.raises(ValueError, match="two batch sizes"):
        ch08.batch_verdict([_sweep_row(1, 1, False, 1.0)])


def test_roof_check_no_point_above_the_roof_it_draws():
    from course.latency import LayerPoint, Roofline

    roof = Roofline(peak_gmacs=30.0, bandwidth_gbs=10.0, matmul_n=0, copy_bytes=0)

    def point(name, intensity, rate):
        return LayerPoint(name=name, op="conv", macs=1, elementwise=0, bytes=1, time_ms=1.0, work=1,
                          intensity=intensity, achieved_gmacs=rate, attainable_gmacs=0.0, bound="memory")

    # a layer beats the matmul probe (54 > 30 GMAC/s, as in issue 11): the roof rises to it
    points = [point("dw", 1.1, 5.0), point("pw", 50.0, 54.0)]
    text = ch08.roof_check(roof, points)
    assert text.startswith("No layer of 2 sits above the roof: peak 54.0 GMAC/s (layer pw (conv))")
    final = roof.including(points)
    assert all(p.achieved_gmacs <= final.attainable_gmacs(p.intensity) for p in points)
    # the label follows from intensity vs the ridge: a depthwise 3x3 at 56x56 (I ~ 1.1)
    from course.cost import conv2d

    I = conv2d(56, 56, 64, 64, 3, groups=64, bias=False).arithmetic_intensity
    assert final.bound(I) == ("memory" if I < final.ridge else "compute") == "memory"  # ridge 5.4
    assert Roofline(peak_gmacs=5.0, bandwidth_gbs=10.0, matmul_n=0, copy_bytes=0).bound(I) == "compute"  # ridge 0.5


def test_break_even_calls():
    assert ch08.break_even_calls(30.0, 20.0, 15.0) == pytest.approx(6000.0)
    assert ch08.break_even_calls(0.0, 20.0, 15.0) == 0.0
    assert ch08.break_even_calls(30.0, 15.0, 20.0) is None  # slower: never pays off
    assert ch08.break_even_calls(30.0, 15.0, 15.0) is None
    with pytest.raises(ValueError):
        ch08.break_even_calls(-1.0, 1.0, 1.0)


def _fake_compilation():
    from course.latency import Timing

    def t(ms, group=1):
        return Timing(ms / 1e3, 0.0, 10, "cpu", 1, times_s=(ms / 1e3,) * 10, group=group)

    return ch08.Compilation(label="net", timings={"eager": t(20.0), "torch.compile": t(15.0), "onnxruntime": t(25.0)},
                            prepare_s={"eager": 0.0, "torch.compile": 30.0, "onnxruntime": 5.0},
                            max_abs_diff={"torch.compile": 1e-6, "onnxruntime": 1e-3}, max_abs_output=2.0, threads=1,
                            cached=("onnxruntime",))


def test_format_and_describe_compilation_from_the_numbers():
    c = _fake_compilation()
    assert c.outputs_match("torch.compile") and not c.outputs_match("onnxruntime")
    lines = ch08.describe_compilation(c).splitlines()
    assert lines[0].startswith("On this device, net with torch.compile is 1.3x faster than eager")
    assert "Preparing it took 30.0 s; it pays off after 6,000 calls (2.0 min of eager inference)." in lines[0]
    assert "slower than eager" in lines[1] and "export came from this session's cache" in lines[1]
    assert "never pays off" in lines[1] and "WARNING: outputs differ" in lines[1]
    text = str(ch08.format_compilation([c]))
    assert "6,000 calls" in text and "5.0 s (cached)" in text and "never" in text and "- -" not in text


def test_compile_comparison_validates_and_caches_the_onnx_export():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="runtimes"):
        ch08.compile_comparison(net, x, runtimes=("onnxruntime",))
    with pytest.raises(ValueError, match="runtimes"):
        ch08.compile_comparison(net, x, runtimes=("eager", "tensorrt"))
    label = "test-net-%d" % random.randrange(10**9)
    first = ch08.compile_comparison(net, x, label, runtimes=("eager", "onnxruntime"), budget_s=0.05)
    second = ch08.compile_comparison(net, x, label, runtimes=("eager", "onnxruntime"), budget_s=0.05)
    assert first.cached == () and second.cached == ("onnxruntime",)
    assert list(first.timings) == ["eager", "onnxruntime"] and first.outputs_match("onnxruntime")
    assert first.timings["eager"].samples >= 5 and first.threads == 1


@pytest.mark.slow
def test_compile_comparison_with_torch_compile_matches_eager():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    c = ch08.compile_comparison(net, torch.randn(1, 3, 16, 16), "tiny", runtimes=("eager", "torch.compile"),
                                budget_s=0.05)
    assert c.outputs_match("torch.compile") and c.prepare_s["torch.compile"] > 0


# --- exercises -----------------------------------------------------------------------------------


def test_exercises_registered_and_reference_solutions_pass():
    from course.cost import conv2d

    assert {"8.1", "8.2", "8.3"} <= set(REGISTRY)

    assert check("8.1", brute_force_lut, quiet=True).passed

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

    def greedy(latency_ms, score, budget_ms):  # best score per stage that still lets the rest fit
        picked, spent = [], 0.0
        for i, (lat, sc) in enumerate(zip(latency_ms, score)):
            rest = sum(min(s) for s in latency_ms[i + 1:])
            fits = [c for c in range(len(lat)) if spent + lat[c] + rest <= budget_ms]
            if not fits:
                return None
            picked.append(max(fits, key=lambda c: (sc[c], -lat[c])))
            spent += lat[picked[-1]]
        return picked

    result = check("8.1", greedy, quiet=True)
    assert not result.passed and "stage-by-stage greedy pick" in result.message

    def best_per_stage(latency_ms, score, budget_ms):  # ignores the budget
        return [max(range(len(s)), key=s.__getitem__) for s in score]

    result = check("8.1", best_per_stage, quiet=True)
    assert not result.passed and "over the budget" in result.message

    def never_none(latency_ms, score, budget_ms):  # the fastest selection when nothing fits
        return brute_force_lut(latency_ms, score, budget_ms) or [min(range(len(s)), key=s.__getitem__)
                                                                 for s in latency_ms]

    result = check("8.1", never_none, quiet=True)
    assert not result.passed and "nothing fits" in result.message and "return None" in result.message

    def lists_of_floats(latency_ms, score, budget_ms):
        choice = brute_force_lut(latency_ms, score, budget_ms)
        return None if choice is None else [float(c) for c in choice]

    result = check("8.1", lists_of_floats, quiet=True)
    assert not result.passed and "ints" in result.message


def test_lut_search_reference_is_the_exhaustive_search_on_hidden_and_drawn_tables():
    import random

    from course.exercises import ch08 as ex8

    rng = random.Random(0)
    greedy_wrong = ties = 0
    for _ in range(300):
        case = ex8._draw_lut(rng)
        want = ex8._ref_lut_search(**case)
        assert want == brute_force_lut(**case)  # the independent brute force, same tie rule
        if want is not None:
            assert sum(s[c] for s, c in zip(case["latency_ms"], want)) <= case["budget_ms"]
            greedy = ex8._greedy_lut(**case)
            if greedy != want:
                message = ex8._diagnose_lut(case, want, greedy)
                greedy_wrong += "greedy pick" in message
                ties += "as good as" in message
    assert greedy_wrong > 10 and ties > 0  # the draws catch a greedy answer; a tie gets its own message
    for case in REGISTRY["8.1"].hidden_cases:
        assert ex8._ref_lut_search(**case) == brute_force_lut(**case)
