"""What the bubblewrap sandbox costs ``course grade``: one table, sandbox off vs on, interleaved.

    .venv/bin/python benchmarks/grading.py                 # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/grading.py --rounds 5 --notebook solutions/03_channel_shuffle.ipynb

Rows:
* one answer process (``python -c "import course"`` under the grader's limits), without and with
  the sandbox: the fixed cost per replayed answer;
* grading one solution notebook (its function answers replayed with hidden cases, the notebook
  run with ``FAST=True``, the reports written), without and with the sandbox.

Rounds alternate off/on so that a load spike hits both; medians and IQR/median are shown.
Times are wall-clock on this machine, at the moment of the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def summary(times):
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return median, (q3 - q1) / median if median else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="graded notebooks per mode (3)")
    parser.add_argument("--processes", type=int, default=10, help="answer processes per mode (10)")
    parser.add_argument("--notebook", default=str(ROOT / "solutions" / "01_convolution_cost.ipynb"))
    args = parser.parse_args()

    from course.grading import Limits, grade
    from course.grading.isolation import run_limited
    from course.grading.sandbox import probe

    sandbox, why = probe()
    if sandbox is None:
        print(f"bubblewrap cannot run here: {why}")
        return 1
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.processes):
            for mode, box in (("off", None), ("on", sandbox)):
                start = time.perf_counter()
                rc, _, err, _ = run_limited([sys.executable, "-c", "import course"], b"", timeout_s=120, memory_mb=4096,
                                            cwd=scratch, env=env, sandbox=box)
                process[mode].append(time.perf_counter() - start)
                assert rc == 0, err.decode()
    notebook = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            for mode in ("off", "require"):
                start = time.perf_counter()
                (result,) = grade([args.notebook], Path(out) / f"{mode}-{round_}", Limits(), sandbox=mode, quiet=True)
                notebook["on" if mode == "require" else "off"].append(time.perf_counter() - start)
                assert result.total == result.max_points, [e.message for e in result.exercises if not e.passed]
    print(f"threads: torch default; load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'what':<46} {'off (s)':>12} {'on (s)':>12} {'on / off':>9}")
    for label, times, n in (("answer process (python -c 'import course')", process, args.processes),
                            (f"grade {Path(args.notebook).name}", notebook, args.rounds)):
        (off, off_noise), (on, on_noise) = summary(times["off"]), summary(times["on"])
        print(f"{label:<46} {off:7.3f} ±{off_noise:4.0%} {on:7.3f} ±{on_noise:4.0%} {on / off:8.2f}x   ({n} each, IQR/median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
