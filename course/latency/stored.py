"""Timings stored in executed notebooks: find the ones a learner should not trust.

The course prints every timing with its spread and sample count, and marks a result that is
still noisy after the policy's re-measurement ("(noisy)", "NOISY: ..."; see
:mod:`course.latency.policy`). A solution notebook is executed once and read by every learner
(and published on the site) before they run anything, so its stored outputs should hold no
noisy timing and none from fewer than the policy's minimum of samples.
``tests/test_stored_timings.py`` checks the solution notebooks with
:func:`stored_timing_problems`; ``scripts/execute_solutions.py --attempts N`` re-executes a
notebook whose stored timings are noisy.
"""

from __future__ import annotations

import re
from typing import Iterator, List, Optional, Tuple

__all__ = ["stored_timing_problems"]

#: The markers the course prints for a noisy result: "(noisy)", "(noisy: rerun ...)", "NOISY:",
#: "noisy: the IQR" (course.latency, course.tables, describe_speedup, the widgets), "(noisy timing)"
#: (Chapter 9's int8 verdict), "NOISY probe(s)" (the roofline), "Some timings are noisy"
#: (Chapters 2 and 7) and a count of noisy timings above zero, "(3 of 12 timings noisy"
#: (Chapters 1 and 9); "0 of 60 block timings noisy" is steady.
NOISY = re.compile(r"\(noisy\)|\(noisy:|NOISY:|NOISY probe|noisy</b>: the IQR|noisy: the IQR|\(noisy timing\)"
                   r"|timings are noisy|\b[1-9]\d* of \d+ [\w ]*?timings? noisy")
#: "(IQR, 3 samples" / "(1 run" ("runs": the format before the policy).
SAMPLES = re.compile(r"\((?:IQR, )?(\d+) (?:samples?|runs?)\b")


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _output_texts(nb) -> Iterator[Tuple[str, str]]:
    """(where, text) of every text output of every code cell of ``nb`` (where: JupyterLab's
    "Cell 12"), then of every string value in its saved widget state (where: "widget state"),
    which JupyterLab and the site render as the explorers' last view."""
    for number, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if "text" in output:
                yield f"Cell {number}", output["text"]
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in output.get("data", {}):
                    yield f"Cell {number}", output["data"][mime]
    models = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for model in models.values():
        for value in model.get("state", {}).values():
            if isinstance(value, str):
                yield "widget state", value


def stored_timing_problems(nb, minimum: Optional[int] = None) -> List[str]:
    """One line per stored output of ``nb`` (an nbformat notebook) that shows a noisy timing or
    one from fewer than ``minimum`` samples (default: the policy's ``min_samples``), e.g.
    ``"Cell 24: noisy: 3x3 conv  2.06 ms ± 0.22 ms (noisy)"``; empty when every timing is steady."""
    if minimum is None:
        from course.latency.policy import Policy

        minimum = Policy().min_samples
    problems = []
    for where, text in _output_texts(nb):
        if NOISY.search(text):
            line = next(line for line in text.splitlines() if NOISY.search(line))
            problems.append(f"{where}: noisy: {line.strip()[:160]}")
        for match in SAMPLES.finditer(text):
            if int(match.group(1)) < minimum:
                problems.append(f"{where}: {match.group(0)} (< {minimum})")
    return problems
