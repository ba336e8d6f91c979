"""The ``course`` command.

::

    course release [--source solutions] [--dest notebooks] [--check]
    course grade SUBMISSION... --out DIR [--jobs N] [--force] [--timeout S] [--cell-timeout S]
                 [--case-timeout S] [--memory MB] [--no-fast] [--no-hidden]
                 [--sandbox[=auto|require|off] | --no-sandbox] [--exercises 1.1,1.2]
                 [--require 1.1,1.2 | --require all]

Also ``python -m course.cli``. Exit status: 0 when the command ran (low scores included),
1 when it failed (a release error, ``--check`` finding stale notebooks, an exercise named by
``--require`` not passed, the grader's code changed on disk during grading, ``--sandbox=require``
where the sandbox cannot run), 2 for usage errors (unknown option, missing file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Fast Architectures course tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    rel = sub.add_parser("release", help="write student notebooks from the solution notebooks")
    rel.add_argument("--source", default="solutions", help="folder of solution notebooks (default: solutions)")
    rel.add_argument("--dest", default="notebooks", help="folder for student notebooks (default: notebooks)")
    rel.add_argument("--check", action="store_true", help="write nothing; exit 1 if DEST is not up to date")

    gr = sub.add_parser("grade", help="execute submissions and grade their exercises")
    gr.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks (or folders of notebooks)")
    gr.add_argument("--out", required=True, metavar="DIR", help="reports go to DIR/<submission name>/")
    gr.add_argument("--timeout", type=float, default=600, metavar="S", help="wall-clock limit per notebook (600)")
    gr.add_argument("--cell-timeout", type=float, default=120, metavar="S", help="limit per cell (120)")
    gr.add_argument("--case-timeout", type=float, default=10, metavar="S", help="limit per call of an answer (10)")
    gr.add_argument("--memory", type=float, default=4096, metavar="MB",
                    help="memory limit of each kernel and answer process, 0 for none (4096)")
    gr.add_argument("--jobs", type=int, default=1, metavar="N", help="submissions graded in parallel (1)")
    gr.add_argument("--force", action="store_true",
                    help="re-grade submissions that already have a complete report (default: skip them)")
    gr.add_argument("--no-fast", dest="fast", action="store_false", help="do not inject FAST = True")
    gr.add_argument("--no-hidden", dest="hidden", action="store_false",
                    help="run only the cases `check` shows, not the exercises' hidden cases")
    gr.add_argument("--sandbox", nargs="?", const="auto", default="auto", choices=("auto", "require", "off"),
                    metavar="MODE", help="run submissions under bubblewrap: auto (default: where it runs, else a "
                                         "warning), require (fail where it cannot run), off")
    gr.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="off", help="same as --sandbox=off")
    gr.add_argument("--exercises", metavar="IDS", help="comma-separated ids to grade (default: by chapter)")
    gr.add_argument("--require", metavar="IDS",
                    help="exit 1 unless every submission passed these exercises ('all': every exercise); "
                         "for CI and GitHub Classroom tests")
    return parser


def _release(args) -> int:
    from course.grading.release import ReleaseError, check_release, release

    if not Path(args.source).is_dir():
        print(f"course release: no such folder: {args.source}", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = check_release(args.source, args.dest)
            for problem in problems:
                print(problem, file=sys.stderr)
            if not problems:
                print(f"{args.dest} is up to date with {args.source}")
            return 1 if problems else 0
        written = release(args.source, args.dest)
    except ReleaseError as exc:
        print(f"course release: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"no notebooks in {args.source}")
    return 0


def _grade(args) -> int:
    missing = [s for s in args.submissions if not Path(s).exists()]
    if missing:
        for item in missing:
            print(f"course grade: no such file: {item}", file=sys.stderr)
        return 2
    from course.grading.limits import Limits

    if args.jobs <= 0:
        print(f"course grade: --jobs must be positive, got {args.jobs:g}", file=sys.stderr)
        return 2
    options = {"notebook_s": "--timeout", "cell_s": "--cell-timeout", "case_s": "--case-timeout", "memory_mb": "--memory"}
    if args.memory < 0:
        print(f"course grade: --memory must be 0 (no limit) or positive, got {args.memory:g}", file=sys.stderr)
        return 2
    try:
        limits = Limits(notebook_s=args.timeout, cell_s=args.cell_timeout, case_s=args.case_timeout,
                        memory_mb=args.memory or None)
    except ValueError as exc:  # "notebook_s must be positive, got 0"
        name, _, rest = str(exc).partition(" ")
        print(f"course grade: {options.get(name, name)} {rest}", file=sys.stderr)
        return 2
    from course.exercises import REGISTRY

    def ids(text: str) -> List[str]:
        return [i.strip() for i in text.split(",") if i.strip()]

    exercises = ids(args.exercises) if args.exercises else None
    required = [] if not args.require or args.require == "all" else ids(args.require)
    unknown = [i for i in (exercises or []) + required if i not in REGISTRY]
    if unknown:
        print(f"course grade: unknown exercise id(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    from course.grading.batch import expand_submissions, grade
    from course.grading.results import GraderTampered
    from course.grading.sandbox import SandboxUnavailable

    if not expand_submissions(args.submissions):
        print("course grade: no files to grade", file=sys.stderr)
        return 2
    try:
        results = grade(args.submissions, args.out, limits, fast=args.fast, hidden=args.hidden,
                        sandbox=args.sandbox, exercises=exercises, jobs=args.jobs, force=args.force)
    except (GraderTampered, SandboxUnavailable) as exc:
        print(f"course grade: {exc}", file=sys.stderr)
        return 1
    if args.require:
        failed = [
            f"{r.name}: exercise {e.id}"
            for r in results
            for e in r.exercises
            if (args.require == "all" or e.id in required) and not e.passed
        ]
        failed += [f"{r.name}: exercise {i} not graded" for r in results for i in required
                   if i not in {e.id for e in r.exercises}]
        if args.require == "all":
            failed += [f"{r.name}: nothing graded" for r in results if not r.exercises]
        for line in failed:
            print(f"not passed: {line}", file=sys.stderr)
        return 1 if failed else 0
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``course`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "release":
        return _release(args)
    if args.command == "grade":
        return _grade(args)
    return 2  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
