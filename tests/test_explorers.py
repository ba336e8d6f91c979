"""Every chapter's explorer: its formula never builds or runs a model, it agrees with the counter
on every field it defines (no "≠" row) at its defaults and across its controls, and it measures
by the course's policy."""

import importlib

import pytest
import torch
from torch import nn

import course.latency
from course.latency import Timing

#: Every chapter explorer, and whether it has a closed-form formula (Chapter 7 shows the
#: counter only: train vs deploy forms have no single closed form in the explorer).
FACTORIES = [
    ("course.chapters.ch01:conv_explorer", True),
    ("course.chapters.ch02:separable_explorer", True),
    ("course.chapters.ch03:unit_explorer", True),
    ("course.chapters.ch04:block_explorer", True),
    ("course.chapters.ch04:uib_explorer", True),
    ("course.chapters.ch05:attention_explorer", True),
    ("course.chapters.ch06:metaformer_explorer", True),
    ("course.chapters.ch07:reparam_explorer", False),
]
IDS = [path.rpartition(":")[2] for path, _ in FACTORIES]


def _factory(path):
    """The explorer factory (an import error or a renamed explorer fails the test, never skips)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def test_every_chapter_module_with_an_explorer_is_listed():
    listed = {path.partition(":")[0] for path, _ in FACTORIES}
    for n in range(1, 9):
        module = importlib.import_module(f"course.chapters.ch0{n}")
        has_explorer = any(name.endswith("_explorer") for name in getattr(module, "__all__", ()))
        assert has_explorer == (module.__name__ in listed), module.__name__


@pytest.mark.parametrize("path, has_formula", FACTORIES, ids=IDS)
def test_explorer_formula_never_builds_or_runs_a_model(path, has_formula, monkeypatch):
    explorer = _factory(path)(measure=False)
    assert (explorer.formula is not None) == has_formula
    if not has_formula:
        return
    config = dict(explorer.config)
    expected = explorer.formula(config)

    def forbidden(*args, **kwargs):
        raise AssertionError("a formula built or ran a model")

    monkeypatch.setattr(nn.Module, "__init__", forbidden)
    monkeypatch.setattr(nn.Module, "__call__", forbidden)
    assert explorer.formula(config) == expected


@pytest.mark.parametrize("path, has_formula", FACTORIES, ids=IDS)
def test_defaults_agree_with_the_counter_no_mismatch_shown(path, has_formula):
    explorer = _factory(path)(measure=False)
    result = explorer.result
    assert result.error is None, result.error
    assert result.counted is not None and result.counted.macs > 0
    assert "≠" not in explorer._table.value
    if has_formula:
        assert explorer.matches is True
        for field in explorer.compare:  # the fields the formula defines
            assert getattr(result.formula, field) == getattr(result.counted.total, field), field
        assert "macs" in explorer.compare and "params" in explorer.compare
    else:
        assert result.formula is None and explorer.matches is None


def _variations(explorer):
    """One control at a time away from the defaults: every dropdown option, each slider's ends."""
    defaults = dict(explorer.config)
    for name, control in explorer.controls.items():
        values = list(control.options) if hasattr(control, "options") else [control.min, control.max]
        for value in values:
            if value != defaults[name]:
                yield {**defaults, name: value}


@pytest.mark.slow
@pytest.mark.parametrize("path, has_formula", [f for f in FACTORIES if f[1]], ids=[i for i, f in zip(IDS, FACTORIES) if f[1]])
def test_no_mismatch_anywhere_across_the_controls(path, has_formula):
    explorer = _factory(path)(measure=False)
    checked = 0
    for config in _variations(explorer):
        result = explorer.set(**config)
        if result.error is not None:  # a configuration the block rejects: shown in red, nothing to compare
            assert "Invalid configuration" in explorer._table.value
            continue
        assert "≠" not in explorer._table.value, config
        assert explorer.matches is True, config
        checked += 1
    assert checked >= 3


def test_explorers_measure_by_the_policy(monkeypatch):
    """The explorer asks for the policy's threads (None) unless given some; a steady cached
    timing is reused, a noisy one is measured again on a revisit, keeping the steadier."""
    from course.chapters.ch01 import conv_explorer

    calls = []
    spreads = iter([0.5, 0.05, 0.8, 0.02])  # relative IQR of each new measurement

    def fake(module, *inputs, threads=None, budget_s=None):
        calls.append(threads)
        return Timing(1e-3, next(spreads) * 1e-3, 20, "cpu", 1)

    monkeypatch.setattr(course.latency, "measure", fake)
    explorer = conv_explorer(budget_s=0.1)
    assert explorer.result.timing.noisy and "noisy" in explorer._latency.value
    assert not explorer.set(H=32).timing.noisy
    again = explorer.set(H=56).timing  # noisy: measured again, the new one (0.8) is worse: kept 0.5
    assert again.relative_spread == pytest.approx(0.5) and len(calls) == 3
    explorer.set(H=32)  # steady: from the cache
    assert len(calls) == 3
    assert explorer.set(H=56).timing.relative_spread == pytest.approx(0.02)  # finally steady
    assert calls == [None] * 4
    assert "noisy" not in explorer._latency.value
    monkeypatch.setattr(course.latency, "measure", lambda m, *i, threads=None, budget_s=None: calls.append(threads)
                        or Timing(1e-3, 1e-5, 20, "cpu", threads or 1))
    pinned = conv_explorer(measure=True, budget_s=0.1)
    pinned.threads = 2  # a chapter that studies threads sets them
    pinned.set(H=64)
    assert calls[-1] == 2 and "2 threads" in pinned._latency.value
