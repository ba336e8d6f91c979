"""Grade a batch of submissions: :func:`grade`.

Each submission is graded by :func:`course.grading.submission.grade_submission` (in worker
processes with ``jobs > 1``) and its reports are written into ``out_dir/<name>/`` as soon as it
is done. A batch that stops resumes where it stopped: a submission whose complete
``report.json`` records the sha256 of the same file is not graded again (``force`` re-grades).
The grader's own code is fingerprinted before the batch and checked after every submission:
if a submission rewrote it, the batch stops (:class:`~course.grading.results.GraderTampered`).
At the end every report written in the run is compared with what the grader holds and
rewritten if a submission changed it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from course.exercises import get_exercise, id_sort_key, list_exercises
from course.grading import reports
from course.grading.files import sha256_of
from course.grading.kernel import clean
from course.grading.limits import Limits
from course.grading.results import GraderTampered, Problem, SubmissionResult
from course.grading.sandbox import Sandbox, choose
from course.grading.submission import chapter_from_name, expected_exercises, find_exercise_cells, grade_submission, read_notebook

PathLike = Union[str, os.PathLike]

#: The files of ``course`` that decide a grade and are watched during a batch: the grader and
#: the comparison of answers. (The chapters' exercise definitions and ``course.cost`` are not
#: watched: they change while the course is written; see docs/grading.md.)
TRUSTED_FILES = ("grading/*.py", "exercises/core.py", "exercises/judge.py", "exercises/outcomes.py",
                 "exercises/runners.py", "exercises/__init__.py", "__init__.py")


def expand_submissions(submissions: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """The files to grade: each path as given; a folder stands for the files in it and in its
    sub-folders (one level: ``subs/alice/01_x.ipynb``), hidden files and folders excepted,
    sorted. Files that are not notebooks are kept (they are reported and score zero)."""
    paths: List[Path] = []
    for item in [submissions] if isinstance(submissions, (str, os.PathLike)) else submissions:
        item = Path(item)
        if not item.is_dir():
            paths.append(item)
            continue
        for child in sorted(item.iterdir()):
            if child.name.startswith((".", "_")) and child.is_dir() or child.name.startswith("."):
                continue
            if child.is_dir():
                paths.extend(p for p in sorted(child.iterdir()) if p.is_file() and not p.name.startswith("."))
            elif child.is_file():
                paths.append(child)
    return paths


def _student_of(path: Path, roots: Sequence[Path]) -> Optional[str]:
    """The sub-folder name when ``path`` sits one level inside a given folder (``subs/alice/x``)."""
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if len(rel.parts) == 2:
            return rel.parts[0]
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"


def _unique_names(paths: List[Path], roots: Sequence[Path] = ()) -> List[str]:
    """One report folder name per path: the stem (``alice__01_x`` for ``subs/alice/01_x.ipynb``),
    with ``-2``, ``-3``... for repeats."""
    names: List[str] = []
    for path in paths:
        student = _student_of(path, roots)
        base = _safe(f"{student}__{path.stem}" if student else path.stem)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def _grade_and_write(job: dict) -> SubmissionResult:
    """Grade one submission and write its reports (runs in a worker process with ``jobs > 1``)."""
    default = [get_exercise(i) for i in job.pop("default_ids")]
    target = Path(job.pop("target"))
    result, executed = grade_submission(default_exercises=default, **job)
    result.out_dir = str(target)
    reports.write_reports(result, target, executed=executed)
    return result


def _already_graded(target: Path, path: Path, exercises) -> Optional[SubmissionResult]:
    """The stored result when ``target`` holds a complete report of this very file, else None."""
    try:
        data = json.loads((target / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("complete") or data.get("sha256") != sha256_of(path):
        return None
    if exercises is not None and [e.get("id") for e in data.get("exercises", [])] != list(exercises):
        return None
    try:
        result = SubmissionResult.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
    result.out_dir = str(target)
    result.resumed = True
    return result


def course_fingerprint() -> Dict[str, str]:
    """sha256 of the files in :data:`TRUSTED_FILES`, to detect a submission that rewrites the
    grader's code on disk while a batch runs."""
    import course

    root = Path(course.__file__).resolve().parent
    files = [p for pattern in TRUSTED_FILES for p in sorted(root.glob(pattern))]
    out = {}
    for path in files:
        try:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[str(path.relative_to(root))] = "unreadable"
    return out


def changed_files(before: Dict[str, str]) -> List[str]:
    """Trusted files changed or removed since ``before`` (new files are not the grader's)."""
    now = course_fingerprint()
    return sorted(name for name, digest in before.items() if now.get(name) != digest)


def _default_ids(paths: List[Path]) -> List[str]:
    """What a corrupt notebook is graded against: the chapters the rest of the batch covers."""
    batch_ids = set()
    for path in paths:
        nb, _ = read_notebook(path)
        if nb is not None:
            batch_ids.update(find_exercise_cells(nb))
    chapters = {c for c in (chapter_from_name(p) for p in paths) if c is not None}
    ids = {e.id for e in expected_exercises(batch_ids)} | {e.id for c in chapters for e in list_exercises(c)}
    return sorted(ids, key=id_sort_key)


def grade(
    submissions: Union[PathLike, Iterable[PathLike]],
    out_dir: PathLike,
    limits: Limits = Limits(),
    *,
    fast: bool = True,
    hidden: bool = True,
    sandbox: Union[str, Sandbox, None] = "auto",
    exercises: Optional[Sequence[str]] = None,
    jobs: int = 1,
    force: bool = False,
    quiet: bool = False,
) -> List[SubmissionResult]:
    """Grade a batch of notebooks and write the reports; returns one result per submission.

    Args:
        submissions: notebook paths (a folder stands for its files, see :func:`expand_submissions`).
        out_dir: per submission ``out_dir/<name>/``: ``report.json``, Gradescope
            ``results.json``, ``junit.xml``, ``feedback.md``, ``feedback.html`` and the executed
            copy ``executed.ipynb``; per batch ``gradebook.csv``, ``summary.md`` and ``summary.json``.
        limits: time and memory limits (:class:`~course.grading.limits.Limits`).
        fast: inject ``FAST = True`` after the ``parameters`` cell.
        hidden: also run the exercises' hidden cases (the ones ``check`` never shows).
        sandbox: ``"auto"`` (bubblewrap where it runs, else a warning and the process limits
            alone), ``"require"`` (:class:`~course.grading.sandbox.SandboxUnavailable` where it
            cannot run), ``"off"``, or a :class:`~course.grading.sandbox.Sandbox`.
        exercises: ids to grade in every submission (default: the chapters found in each).
        jobs: submissions graded at the same time (worker processes).
        force: re-grade submissions that already have a complete report of the same file
            (by default they are skipped, so an interrupted batch resumes where it stopped).
        quiet: do not print progress and the summary table.

    A corrupt file, a crash, a timeout or a missing answer scores 0 for what it affects, with
    the reason in the report; the batch always goes on.
    """
    box = sandbox if isinstance(sandbox, Sandbox) or sandbox is None else choose(sandbox)
    given = [submissions] if isinstance(submissions, (str, os.PathLike)) else list(submissions)
    roots = [Path(p) for p in given if Path(p).is_dir()]
    paths = expand_submissions(given)
    out_dir = Path(out_dir)
    default_ids = _default_ids(paths)
    fingerprint = course_fingerprint()
    names = _unique_names(paths, roots)
    results: Dict[int, SubmissionResult] = {}
    todo = []
    for index, (path, name) in enumerate(zip(paths, names)):
        target = out_dir / name
        done = None if force else _already_graded(target, path, exercises)
        if done is not None:
            results[index] = done
            if not quiet:
                print(f"already graded {path}: {done.total}/{done.max_points} (use --force to re-grade)", file=sys.stderr)
            continue
        todo.append((index, {
            "path": str(path), "limits": limits, "fast": fast, "hidden": hidden, "sandbox": box,
            "exercises": exercises, "default_ids": default_ids, "name": name,
            "student": _student_of(path, roots) or name, "target": str(target),
        }))

    def finished(index: int, result: SubmissionResult) -> None:
        results[index] = result
        if not quiet:
            print(f"graded {result.submission}: {result.total}/{result.max_points} ({result.duration_s:.1f} s)",
                  file=sys.stderr)

    tampered = _run_jobs(todo, jobs, fingerprint, finished, quiet)
    ordered = [results[i] for i in sorted(results)]
    for result in ordered:  # a submission may have written over reports already written
        if not result.resumed and result.out_dir and not result.tampered:
            _restore_reports(result)
    reports.write_batch(ordered, out_dir)
    if tampered:
        raise GraderTampered(
            f"the grader's code changed on disk during grading ({', '.join(tampered)}; a submission wrote into "
            "it?); the batch was stopped: restore the course code and re-run with --force"
        )
    if not quiet:
        print(reports.summary_table(ordered))
    return ordered


def _run_jobs(todo, jobs: int, fingerprint: Dict[str, str], finished, quiet: bool) -> List[str]:
    """Grade every job (in a pool of ``jobs`` spawned workers when > 1); returns the trusted
    files that changed (empty unless a submission tampered with the grader: then it stops)."""
    if jobs <= 1 or len(todo) <= 1:
        for index, job in todo:
            result = _grade_and_write(dict(job))
            finished(index, result)
            tampered = changed_files(fingerprint)
            if tampered:
                _stop_tampered(result, quiet)
                return tampered
        return []

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    jobs_by_index = dict(todo)
    retry = []  # jobs lost with a broken pool (a worker killed from outside): graded again here
    tampered: List[str] = []
    context = multiprocessing.get_context("spawn")  # no fork of a process that ran torch
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_grade_and_write, dict(job)): index for index, job in todo}
        for future in as_completed(futures):
            index = futures[future]
            if future.cancelled():
                continue
            try:
                result = future.result()
            except BrokenProcessPool:
                retry.append(index)
                continue
            except Exception as exc:  # the grader failed on this submission: the batch goes on
                job = jobs_by_index[index]
                result = SubmissionResult(submission=job["path"], name=job["name"], student=job["student"])
                result.errors.append(Problem("GraderError", f"the grader failed ({type(exc).__name__}: {clean(exc)})"))
                result.out_dir = job["target"]
                reports.write_reports(result, Path(job["target"]))
            finished(index, result)
            if not tampered:
                tampered = changed_files(fingerprint)
                if tampered:
                    _stop_tampered(result, quiet)
                    for other in futures:
                        other.cancel()
    for index in sorted(retry) if not tampered else []:
        if not quiet:
            print(f"the worker pool broke; grading {jobs_by_index[index]['path']} in the main process", file=sys.stderr)
        result = _grade_and_write(dict(jobs_by_index[index]))
        finished(index, result)
        tampered = changed_files(fingerprint)
        if tampered:
            _stop_tampered(result, quiet)
            break
    return tampered


def _restore_reports(result: SubmissionResult) -> None:
    """Rewrite a submission's report files if they no longer hold what the grader wrote."""
    target = Path(result.out_dir)
    for name, text in reports.report_files(result).items():
        try:
            same = (target / name).read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            note = "report files of this submission were changed during the batch (by a submission?) and rewritten"
            if note not in result.notes:
                result.notes.append(note)
            reports.write_reports(result, target)
            return


def _stop_tampered(result: SubmissionResult, quiet: bool) -> None:
    result.notes.append("the course package changed on disk while this submission was graded; "
                        "its grade is not trusted")
    result.total = 0
    result.tampered = True
    reports.write_reports(result, Path(result.out_dir), complete=False)
    if not quiet:
        print(f"STOP: the course code changed on disk while grading {result.submission}", file=sys.stderr)
