"""The library's layering rules that a refactoring could silently undo (source scans, no runs)."""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"


def _imports(path: Path):
    """Every module name an ``import`` or ``from ... import`` in ``path`` names (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _defines(path: Path, name: str) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == name for node in ast.walk(ast.parse(path.read_text())))


def test_exercises_never_import_chapter_modules():
    offenders = {p.name: m for p in (COURSE / "exercises").glob("*.py") for m in _imports(p)
                 if m.startswith("course.chapters")}
    assert not offenders, offenders


def test_one_device_chooser_one_stderr_silencer_one_bn_randomizer():
    files = [p for p in COURSE.rglob("*.py")]
    assert [p.relative_to(ROOT).as_posix() for p in files if _defines(p, "default_device")] == [
        "course/latency/devices.py"]
    silencers = [p.relative_to(ROOT).as_posix() for p in files
                 if "os.dup2(" in p.read_text() and "devnull" in p.read_text()]
    assert silencers == ["course/latency/quiet.py"]
    for name in ("randomize_bn", "randomize_weights"):  # one seeded randomizer (its options cover the cases)
        assert [p.relative_to(ROOT).as_posix() for p in files if _defines(p, name)] == ["course/equivalence.py"]
    assert [p.relative_to(ROOT).as_posix() for p in files if _defines(p, "randomize")] == []
    for name in ("peak_memory_bytes", "peak_activation_bytes", "max_relative_diff", "pareto_front"):
        where = [p.relative_to(ROOT).as_posix() for p in files if _defines(p, name)]
        assert len(where) == 1 and not where[0].startswith("course/chapters/"), (name, where)


def test_nothing_points_outside_the_repository():
    outside = "/".join(("..", "shared"))  # the notes folder beside a checkout, which users do not have
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = [name for name in tracked
                 if not name.endswith((".png", ".ipynb"))
                 and (ROOT / name).is_file() and outside in (ROOT / name).read_text(errors="ignore")]
    assert not offenders, offenders
