"""The ``course`` command.

::

    course release [--source solutions] [--dest notebooks] [--check]
    course grade SUBMISSION... --out DIR [--timeout S] [--cell-timeout S] [--case-timeout S]
                 [--no-fast] [--exercises 1.1,1.2]

Also ``python -m course.cli``. Exit status: 0 when the command ran (low scores included),
1 when it failed (a release error, ``--check`` finding stale notebooks), 2 for usage errors
(unknown option, missing file).
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
    gr.add_argument("--no-fast", dest="fast", action="store_false", help="do not inject FAST = True")
    gr.add_argument("--exercises", metavar="IDS", help="comma-separated ids to grade (default: by chapter)")
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
    for name, value in (("--timeout", args.timeout), ("--cell-timeout", args.cell_timeout), ("--case-timeout", args.case_timeout)):
        if value <= 0:
            print(f"course grade: {name} must be positive, got {value:g}", file=sys.stderr)
            return 2
    exercises = None
    if args.exercises:
        from course.exercises import REGISTRY

        exercises = [i.strip() for i in args.exercises.split(",") if i.strip()]
        unknown = [i for i in exercises if i not in REGISTRY]
        if unknown:
            print(f"course grade: unknown exercise id(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
    from course.grading.grader import expand_submissions, grade

    if not expand_submissions(args.submissions):
        print("course grade: no .ipynb files to grade", file=sys.stderr)
        return 2
    grade(
        args.submissions,
        args.out,
        timeout_s=args.timeout,
        cell_timeout_s=args.cell_timeout,
        fast=args.fast,
        case_timeout_s=args.case_timeout,
        exercises=exercises,
    )
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
