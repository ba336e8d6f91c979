"""Reports of a grading run.

Per submission (``out/<name>/``): ``report.json`` (the grader's full record), Gradescope
``results.json``, ``junit.xml``, ``feedback.md`` and ``feedback.html`` (for the student: the
same content, :mod:`course.grading.feedback`) and ``executed.ipynb``. Per batch (``out/``):
``gradebook.csv`` (for an LMS: one row per student, one column per exercise, a total),
``summary.md`` and ``summary.json``.

Every file is written atomically (a temporary file in the same folder, then a rename), so a
reader never sees half a report; ``report.json`` is written last and carries
``"complete": true``, which is what a resumed batch looks for.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

from course.exercises import id_sort_key
from course.grading.feedback import feedback_html, feedback_markdown, md_escape, problems
from course.grading.files import write_atomic
from course.grading.results import SubmissionResult

# Characters XML 1.0 cannot carry (a learner's exception message may contain anything).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Error types that mean the file could not be graded at all, and their short name in tables.
_UNGRADABLE = {"UnreadableNotebook": "unreadable", "NotANotebook": "not a notebook", "WrongKernel": "wrong kernel"}


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", str(text))


def report_json(result: SubmissionResult, complete: bool = True) -> str:
    """The text of ``report.json``: submission, total, max, per exercise, errors and timeouts.

    ``complete``: all of the submission's files were written (a resumed batch skips it).
    """
    return json.dumps({**result.to_dict(), "complete": complete}, indent=2, sort_keys=False) + "\n"


def gradescope_json(result: SubmissionResult) -> str:
    """The text of a Gradescope autograder ``results.json`` (one test per exercise)."""
    tests = [
        {
            "name": f"Exercise {e.id}: {e.title}",
            "number": e.id,
            "score": e.points,
            "max_score": e.max_points,
            "status": "passed" if e.passed else "failed",
            "output": e.message,
            "visibility": "visible",
        }
        for e in result.exercises
    ]
    lines = [f"Score: {result.total}/{result.max_points}"]
    lines += problems(result)
    payload = {
        "score": result.total,
        "output": "\n".join(lines),
        "visibility": "visible",
        "execution_time": int(round(result.duration_s)),
        "tests": tests,
    }
    return json.dumps(payload, indent=2) + "\n"


def junit_xml(result: SubmissionResult) -> str:
    """The text of a JUnit XML report: one testcase per exercise, a failure for each not passed."""
    failures = sum(1 for e in result.exercises if not e.passed)
    suites = ET.Element("testsuites", name="course grade", tests=str(len(result.exercises)),
                        failures=str(failures), errors="0", time=f"{result.duration_s:.2f}")
    suite = ET.SubElement(suites, "testsuite", name=_xml_text(result.name), tests=str(len(result.exercises)),
                          failures=str(failures), errors="0", skipped="0", time=f"{result.duration_s:.2f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="submission", value=_xml_text(result.submission))
    ET.SubElement(props, "property", name="score", value=str(result.total))
    ET.SubElement(props, "property", name="max_score", value=str(result.max_points))
    for e in result.exercises:
        case = ET.SubElement(suite, "testcase", classname=_xml_text(result.name),
                             name=_xml_text(f"exercise {e.id}: {e.title} ({e.max_points} points)"), time="0")
        if not e.passed:
            failure = ET.SubElement(case, "failure", message=_xml_text(e.message.splitlines()[0] if e.message else ""),
                                    type="ExerciseFailed")
            failure.text = _xml_text(e.message)
        out = ET.SubElement(case, "system-out")
        out.text = _xml_text(e.message)
    extra = problems(result)
    if extra:
        ET.SubElement(suite, "system-err").text = _xml_text("\n".join(extra))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def report_files(result: SubmissionResult, complete: bool = True) -> Dict[str, str]:
    """The text of every report file of a submission, by file name (``report.json`` last)."""
    return {
        "results.json": gradescope_json(result),
        "junit.xml": junit_xml(result),
        "feedback.md": feedback_markdown(result),
        "feedback.html": feedback_html(result),
        "report.json": report_json(result, complete),
    }


def write_reports(result: SubmissionResult, out_dir, executed=None, complete: bool = True) -> List[Path]:
    """Write the files of :func:`report_files` (and ``executed.ipynb`` when given the executed
    notebook) into ``out_dir``, each atomically, ``report.json`` last (it marks the submission
    as done). Returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = report_files(result, complete)
    if executed is not None:
        import nbformat

        try:
            files = {"executed.ipynb": nbformat.writes(executed) + "\n", **files}
        except Exception:  # a notebook too broken to serialise is not worth failing the report
            pass
    written = []
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written


def gradebook_csv(results: List[SubmissionResult]) -> str:
    """The text of ``gradebook.csv``, for an LMS's grade import (Canvas, Moodle, ...): a header
    ``student,1.1,1.2,...,total``, then one row per student (the submission folder's name, or
    the file's; best points per exercise over their submissions) and nothing else, so every
    column but ``student`` is a grade. Maxima and report folders are in ``summary.json``."""
    import csv
    import io

    ids = sorted({e.id for r in results for e in r.exercises}, key=id_sort_key)
    students: dict = {}
    for r in results:
        row = students.setdefault(r.student or r.name, {})
        for e in r.exercises:
            row[e.id] = max(row.get(e.id, 0), e.points)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student"] + ids + ["total"])
    for student in sorted(students):
        points = [students[student].get(i, 0) for i in ids]
        writer.writerow([student] + points + [sum(points)])
    return buffer.getvalue()


def summary_markdown(results: List[SubmissionResult]) -> str:
    """The text of ``summary.md``: counts, the summary table and the submissions with problems."""
    lines = ["# Grading summary", "", f"{len(results)} submission(s)."]
    if results:
        mean = sum(r.total for r in results) / len(results)
        full = sum(1 for r in results if r.max_points and r.total == r.max_points)
        lines.append(f"Mean score {mean:.2f}; {full} with full marks.")
    lines += ["", "~~~~text", summary_table(results), "~~~~"]
    flagged = [r for r in results if r.errors or r.timeouts or r.tampered]
    if flagged:
        lines += ["", "## Problems", ""]
        lines += [f"* {r.name}: {md_escape((problems(r) or ['see its report'])[0])[:300]}" for r in flagged]
    return "\n".join(lines) + "\n"


def summary_json(results: List[SubmissionResult]) -> str:
    """The text of ``summary.json``: per submission its student, total, maximum, points per
    exercise and report folder; the maximum of each exercise."""
    summary = {
        "submissions": len(results),
        "max_points": {e.id: e.max_points for r in results for e in r.exercises},
        "results": [{"name": r.name, "student": r.student or r.name, "submission": r.submission,
                     "total": r.total, "max": r.max_points, "resumed": r.resumed, "sandboxed": r.sandboxed,
                     "exercises": {e.id: e.points for e in r.exercises}} for r in results],
    }
    return json.dumps(summary, indent=2) + "\n"


def write_batch(results: List[SubmissionResult], out_dir) -> List[Path]:
    """Write ``gradebook.csv``, ``summary.md`` and ``summary.json`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    files = {"gradebook.csv": gradebook_csv(results), "summary.md": summary_markdown(results),
             "summary.json": summary_json(results)}
    for name, text in files.items():
        write_atomic(out_dir / name, text)
    return [out_dir / name for name in files]


def summary_table(results: List[SubmissionResult]) -> str:
    """A plain-text table: submission (its report folder's name), score/max, points per
    exercise, and a short note."""
    ids = sorted({e.id for r in results for e in r.exercises}, key=id_sort_key)
    header = ["submission", "score"] + ids + ["notes"]
    rows = []
    for r in results:
        by_id = {e.id: f"{e.points}/{e.max_points}" for e in r.exercises}
        note_bits = []
        if r.errors:
            note_bits.append(f"{len(r.errors)} error(s)")
        if r.timeouts:
            note_bits.append(f"{len(r.timeouts)} timeout(s)")
        kinds = {e.kind for e in r.errors} & set(_UNGRADABLE)
        if kinds:
            note_bits = [_UNGRADABLE[sorted(kinds)[0]]]
        if any(e.kind == "MemoryLimit" for e in r.errors):
            note_bits.append("memory limit")
        if r.resumed:
            note_bits.append("resumed")
        if r.tampered:
            note_bits = ["GRADER CODE CHANGED"]
        rows.append([r.name, f"{r.total}/{r.max_points}"] + [by_id.get(i, "-") for i in ids]
                    + [", ".join(note_bits)])
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in rows]
    return "\n".join(lines)
