"""Execute solution notebooks top to bottom and store their outputs in place.

    python scripts/execute_solutions.py solutions/03_channel_shuffle.ipynb [more.ipynb ...]
    python scripts/execute_solutions.py --all
    python scripts/execute_solutions.py --attempts 3 solutions/05_window_attention.ipynb

The stored outputs are what a learner reads before running anything, and what nbval compares
(cells marked ``# NBVAL_CHECK_OUTPUT``): execute on a quiet machine, then read every output
against the text beside it. Each notebook runs in a fresh kernel, in ``solutions/`` (as
JupyterLab and nbval run it), with the parameters cell as written (``FAST = False``). A
notebook that fails is not written (its file stays as it was) and the command exits 1 after
trying the others. After executing, run ``course release`` to regenerate ``notebooks/``.

Even a quiet shared machine sometimes leaves a timing noisy after the policy's re-measurement
(IQR over 10% of the median). ``--attempts N`` executes a notebook again, up to N times in all,
while its outputs hold a noisy timing (:func:`course.latency.stored.stored_timing_problems`,
which ``tests/test_stored_timings.py`` applies), and keeps the attempt with the fewest; what is
left is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, cell_timeout_s: int, attempts: int = 1) -> float:
    """Run ``path`` in a fresh kernel (up to ``attempts`` times while its stored timings are
    noisy) and write back the steadiest run's outputs; returns the seconds the last run took."""
    import nbformat

    from course.latency.stored import stored_timing_problems

    best = None
    for attempt in range(1, attempts + 1):
        nb, elapsed = _run(path, cell_timeout_s)
        problems = stored_timing_problems(nb)
        if best is None or len(problems) < len(best[1]):
            best = (nb, problems)
        if not problems:
            break
        print(f"{path}: attempt {attempt}: {len(problems)} noisy timing(s)", flush=True)
        for problem in problems:
            print(f"    {problem}", flush=True)
    nb, problems = best
    for problem in problems:
        print(f"{path}: still noisy: {problem}", flush=True)
    nbformat.write(nb, str(path))
    return elapsed


def _run(path: Path, cell_timeout_s: int):
    """The notebook at ``path`` executed in a fresh kernel (not written), and the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=cell_timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    elapsed = time.perf_counter() - start
    for cell in nb.cells:  # timestamps change on every run and say nothing to a reader
        cell.metadata.pop("execution", None)
    return nb, elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks to execute")
    parser.add_argument("--all", action="store_true", help="every notebook in solutions/, in order")
    parser.add_argument("--cell-timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    parser.add_argument("--attempts", type=int, default=1,
                        help="executions at most while stored timings are noisy (default 1)")
    args = parser.parse_args(argv)
    paths = sorted((ROOT / "solutions").glob("*.ipynb")) if args.all else args.notebooks
    if not paths:
        parser.error("name notebooks or pass --all")
    failed = []
    for path in paths:
        print(f"{path}: executing ...", flush=True)
        try:
            elapsed = execute(Path(path), args.cell_timeout, args.attempts)
        except Exception as exc:  # report and go on with the others; the file is left as it was
            failed.append(path)
            print(f"{path}: FAILED, not written ({type(exc).__name__}: {str(exc)[-2000:]})", flush=True)
        else:
            print(f"{path}: done in {elapsed:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
