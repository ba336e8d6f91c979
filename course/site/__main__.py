"""``python -m course.site [--instructor] [--out DIR]``: build the course website (see the README)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from course.site.build import build_site


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.site", description=__doc__)
    parser.add_argument("--instructor", action="store_true", help="the edition with solutions (default: student)")
    parser.add_argument("--out", help="output folder (default: build/site, or build/site-instructor)")
    parser.add_argument("--root", default=".", help="the course repository (default: .)")
    args = parser.parse_args(argv)
    variant = "instructor" if args.instructor else "student"
    out = Path(args.out or ("build/site-instructor" if args.instructor else "build/site"))
    start = time.perf_counter()
    try:
        chapters = build_site(args.root, out, variant)
    except subprocess.CalledProcessError as exc:
        print(f"site: sphinx-build failed (exit {exc.returncode}); its messages are above.", file=sys.stderr)
        return 1
    print(
        f"site: {variant} edition, {len(chapters)} chapter pages, built in {time.perf_counter() - start:.0f} s: "
        f"open {out / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
