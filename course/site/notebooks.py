"""The notebook a site page is built from: an executed solution notebook, made fit for the web.

* ``student`` pages: every solution region is replaced by the stub that ``course release``
  writes (:func:`course.grading.release.release_notebook` decides, so the site and
  ``notebooks/`` never disagree on what a solution is); the cells of each exercise (its
  solution and its check) lose their outputs, which came from the solution. Every other cell
  keeps its stored outputs: the site shows what the solution notebook computed.
* ``instructor`` pages: the solution notebook as executed.
* In both, each explorer (an ipywidgets output) becomes a static snapshot of its last stored
  state (:mod:`course.site.widget_snapshot`) under a note that it is live in JupyterLab, and
  the widget state is dropped from the metadata, so no page needs the ipywidgets JavaScript.
"""

from __future__ import annotations

import copy
from typing import Mapping

from course.site.widget_snapshot import WIDGET_VIEW_MIME, render_widget, widget_state

VARIANTS = ("student", "instructor")

LIVE_NOTE = (
    "<p class=\"course-explorer-note\"><strong>Live in JupyterLab.</strong> "
    "This explorer is shown as it was when the notebook was last run; on this page its controls "
    "do nothing. Open the notebook in JupyterLab (<code>make lab</code>) and every change "
    "recomputes the numbers and re-measures the latency on your own device.</p>"
)
MISSING_STATE_NOTE = (
    "<p class=\"course-explorer-note\"><strong>Live in JupyterLab.</strong> "
    "This notebook did not store the explorer's state, so there is nothing to show here: "
    "open the notebook in JupyterLab (<code>make lab</code>) to use it.</p>"
)


def explorer_html(state: Mapping, model_id: str) -> str:
    """The HTML that stands for one widget output on a page: the note and the last state."""
    if model_id not in state:
        return f'<div class="course-explorer">{MISSING_STATE_NOTE}</div>'
    return f'<div class="course-explorer">{LIVE_NOTE}{render_widget(state, model_id)}</div>'


def _exercise_id(cell) -> str:
    course = cell.get("metadata", {}).get("course")
    return str(course.get("exercise") or "") if isinstance(course, dict) else ""


def site_notebook(nb, variant: str = "student", name: str = "notebook"):
    """The notebook to publish for ``variant`` (``"student"`` or ``"instructor"``); ``nb`` is not changed.

    Raises:
        ValueError: for an unknown ``variant``.
        course.grading.ReleaseError: (student) when the solution notebook cannot be released.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    page = copy.deepcopy(nb)
    if variant == "student":
        from course.grading.release import release_notebook

        released = release_notebook(nb, name=name)
        if len(released.cells) != len(page.cells):  # release keeps every cell in place
            raise RuntimeError(f"{name}: release changed the number of cells")
        for cell, student_cell in zip(page.cells, released.cells):
            if cell.cell_type == "markdown":  # model answers hidden as in the student notebook
                cell.source = student_cell.source
                continue
            if cell.cell_type != "code":
                continue
            if student_cell.source != cell.source or _exercise_id(cell):
                cell.source = student_cell.source
                cell.outputs = []
                cell.execution_count = None

    state = widget_state(page.metadata)
    for cell in page.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW_MIME)
            if view is None:
                continue
            output["data"] = {
                "text/html": explorer_html(state, view.get("model_id", "")),
                "text/plain": "(explorer: live in JupyterLab)",
            }
    page.metadata.pop("widgets", None)
    return page
