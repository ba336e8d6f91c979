"""Reports of a grading run: ``report.json``, Gradescope ``results.json``, ``junit.xml``, a summary.

Every file is written atomically (a temporary file in the same folder, then a rename), so a
reader never sees half a report.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, List

from course.grading.release import write_atomic

if TYPE_CHECKING:  # pragma: no cover
    from course.grading.grader import SubmissionResult

# Characters XML 1.0 cannot carry (a learner's exception message may contain anything).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", str(text))


def report_json(result: "SubmissionResult") -> str:
    """The text of ``report.json``: submission, total, max, per exercise, errors and timeouts."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n"


def gradescope_json(result: "SubmissionResult") -> str:
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
    lines += [f"Error in cell {e['cell']}: {e['type']}: {e['message']}" for e in result.errors]
    lines += [t["message"] for t in result.timeouts]
    lines += result.notes
    payload = {
        "score": result.total,
        "output": "\n".join(lines),
        "visibility": "visible",
        "execution_time": int(round(result.duration_s)),
        "tests": tests,
    }
    return json.dumps(payload, indent=2) + "\n"


def junit_xml(result: "SubmissionResult") -> str:
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
    extra = [f"cell {x['cell']}: {x['type']}: {x['message']}" for x in result.errors]
    extra += [t["message"] for t in result.timeouts] + list(result.notes)
    if extra:
        ET.SubElement(suite, "system-err").text = _xml_text("\n".join(extra))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_reports(result: "SubmissionResult", out_dir, executed=None) -> List[Path]:
    """Write ``report.json``, ``results.json`` and ``junit.xml`` (and ``executed.ipynb`` when
    given the executed notebook) into ``out_dir``, each atomically. Returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": report_json(result),
        "results.json": gradescope_json(result),
        "junit.xml": junit_xml(result),
    }
    if executed is not None:
        import nbformat

        try:
            files["executed.ipynb"] = nbformat.writes(executed) + "\n"
        except Exception:  # a notebook too broken to serialise is not worth failing the report
            pass
    written = []
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written


def summary_table(results: List["SubmissionResult"]) -> str:
    """A plain-text table: submission (its report folder's name), score/max, points per
    exercise, and a short note."""
    from course.exercises.core import id_sort_key

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
        if any(e.get("type") == "UnreadableNotebook" for e in r.errors):
            note_bits = ["unreadable"]
        rows.append([r.name, f"{r.total}/{r.max_points}"] + [by_id.get(i, "-") for i in ids]
                    + [", ".join(note_bits)])
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in rows]
    return "\n".join(lines)
