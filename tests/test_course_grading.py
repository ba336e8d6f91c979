"""Grading round trips on the real course, one batch per chapter (``--jobs 2``).

For each chapter: the solution notebook runs top to bottom headless with ``FAST = True`` (the
grader injects it after the ``parameters`` cell) without a cell error or a time limit hit, and
gets full marks (hidden cases included); the released
student notebook gets zero with a "not attempted" message per exercise, and no cell error; and
a copy of the solution with its first exercise answered wrongly loses exactly that exercise's
points.

One batch per chapter (graded by the first test that needs it), so that no single test's time
grows with the number of chapters (pytest-timeout is per test; on a busy 2-core machine the
whole course took over 15 minutes in one batch), and one class per chapter, so that the
chapters run in parallel under pytest-xdist.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
MARKERS = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*$", re.S | re.M)


def _first_exercise_answered_wrongly(source: Path, dest: Path) -> str:
    """Copy ``source`` with the first solution region replaced by a wrong answer; return its id."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("course", {})
        if meta.get("part") == "solution":
            # Inside a function: return None. At top level: leave the value at its None default.
            cell.source = MARKERS.sub(lambda m: m.group(1) + ("return None" if m.group(1) else "pass"), cell.source, count=1)
            nbformat.write(nb, dest)
            return meta["exercise"]
    raise AssertionError(f"{source.name} has no exercise")


@pytest.fixture(scope="class")
def graded(request, tmp_path_factory):
    """``(by_path, wrong_id, work)`` for the chapter of the requesting class (``solution``): the
    solution, its student copy and a copy with its first exercise answered wrongly, graded in one
    batch."""
    from course.grading import Limits, grade

    solution = request.cls.solution
    work = tmp_path_factory.mktemp(f"grading_{solution.stem}")
    (work / "wrong").mkdir()
    wrong = work / "wrong" / solution.name
    wrong_id = _first_exercise_answered_wrongly(solution, wrong)
    submissions = [solution, ROOT / "notebooks" / solution.name, wrong]
    results = grade(submissions, work / "grades", Limits(notebook_s=900, cell_s=300), jobs=2, quiet=True)
    return {Path(r.submission).resolve(): r for r in results}, wrong_id, work


class ChapterRoundTrips:
    """The round trips of one chapter (``solution``, set by the ``TestChapterNN`` classes below).

    One class per chapter, so that each chapter is its own scope: pytest-xdist (``make test``
    runs ``--dist loadscope``) spreads the chapters over its workers, and a chapter's batch is
    graded once, by the first of its tests.
    """

    solution: Path

    @pytest.mark.slow
    def test_solution_gets_full_marks(self, graded):
        by_path, _, _ = graded
        result = by_path[self.solution.resolve()]
        assert result.errors == [] and result.timeouts == [], [p.message for p in result.errors + result.timeouts]
        assert result.max_points > 0
        assert result.total == result.max_points, "\n".join(e.message for e in result.exercises if not e.passed)
        assert len(result.exercises) >= 3

    @pytest.mark.slow
    def test_student_copy_gets_zero_with_a_message_per_exercise(self, graded):
        by_path, _, _ = graded
        result = by_path[(ROOT / "notebooks" / self.solution.name).resolve()]
        assert result.total == 0 and result.max_points == by_path[self.solution.resolve()].max_points
        for exercise in result.exercises:
            assert exercise.points == 0 and "not attempted" in exercise.message, exercise.message
        assert result.errors == [], result.errors  # stubs are "not attempted", never errors

    @pytest.mark.slow
    def test_one_wrong_answer_loses_exactly_its_points(self, graded):
        by_path, wrong_id, work = graded
        full = by_path[self.solution.resolve()]
        result = by_path[(work / "wrong" / self.solution.name).resolve()]
        lost = {e.id: e.max_points for e in full.exercises}[wrong_id]
        assert result.total == full.max_points - lost
        (exercise,) = [e for e in result.exercises if e.id == wrong_id]
        assert exercise.points == 0 and "not attempted" not in exercise.message


for _solution in SOLUTIONS:  # TestChapter01 ... TestChapter09
    _name = "TestChapter" + _solution.stem.split("_")[0]
    globals()[_name] = type(_name, (ChapterRoundTrips,), {"solution": _solution, "__doc__": f"{_solution.name}'s round trips."})


def test_every_chapter_has_its_round_trips():
    assert len(SOLUTIONS) >= 9
    assert {name for name in globals() if name.startswith("TestChapter")} == {
        "TestChapter" + p.stem.split("_")[0] for p in SOLUTIONS}
