"""course.tables: one table helper, formatted the course's way (text, HTML, Markdown)."""

from dataclasses import dataclass

import pytest

from course.latency import Timing, speedup
from course.tables import NOISY_NOTE, Column, format_value, show, table

STEADY = Timing(12.3e-3, 0.4e-3, 25, "cpu", 1)
NOISY = Timing(1.6, 0.3, 5, "cpu", 1)


@pytest.mark.parametrize("value, fmt, text", [
    (None, None, "—"), (float("nan"), None, "—"), (True, None, "yes"), (1234567, None, "1,234,567"),
    (1000.0, None, "1,000"), (1234.5, None, "1,234"), (0.012345, None, "0.0123"), (3.14159, None, "3.14"),
    (2.5e-5, None, "2.50e-05"), ((1, 64, 56, 56), None, "(1, 64, 56, 56)"),
    (1.5, "ms", "1.50 ms"), (1500.0, "ms", "1.50 s"), (2e-6, "time", "2.00 µs"), (3.14159, "x", "3.14x"),
    (0.1234, "%", "12.3%"), (12.34, "pct", "12.3%"), (4_231_976, "M", "4.23 M"), (5.687e8, "G", "0.569 G"),
    (3.14159, ".1f", "3.1"), (7, lambda v: f"<{v}>", "<7>"),
    (STEADY, None, "12.3 ms ± 0.4 ms"), (NOISY, None, "1.60 s ± 0.30 s (noisy)"), (NOISY, "median", "1.60 s (noisy)"),
])
def test_format_value(value, fmt, text):
    assert format_value(value, fmt) == text


def test_text_table_is_aligned_with_numbers_right():
    rows = [{"model": "MobileNetV2", "macs": 300_774_272, "eager": STEADY},
            {"model": "ResNet-50", "macs": 4_111_514_624, "eager": NOISY}]
    t = table(rows, ["model", ("macs", "MACs"), ("eager", "eager latency")], title="On this device")
    lines = str(t).splitlines()
    assert lines[0] == "On this device"
    assert lines[1].split() == ["model", "MACs", "eager", "latency"]
    assert lines[3] == "MobileNetV2    300,774,272         12.3 ms ± 0.4 ms"
    assert lines[4] == "ResNet-50    4,111,514,624  1.60 s ± 0.30 s (noisy)"
    assert lines[-1] == NOISY_NOTE and t.noisy_rows == [1]
    assert t.right == [False, True, True]
    assert repr(t) == str(t)  # Jupyter's text/plain: what nbval compares


def test_html_marks_noisy_rows_and_escapes():
    t = table([{"name": "<b>", "t": STEADY}, {"name": "x", "t": NOISY}])
    page = t._repr_html_()
    assert "<td" in page and "&lt;b&gt;" in page and "<b>" not in page  # cells are escaped
    assert page.count('title="noisy: rerun on a quieter machine"') == 1
    assert NOISY_NOTE in page and "&lt;b&gt;" in page


def test_rows_as_sequences_dataclasses_and_speedups():
    assert str(table([("a", 1), ("b", 22)], ["name", "n"])).splitlines()[2:] == ["a      1", "b     22"]

    @dataclass
    class Row:
        label: str
        ms: float

    assert "label" in str(table([Row("x", 1.5)])) and "1.50" in str(table([Row("x", 1.5)]))
    fast = Timing(1e-3, 0.1e-3, 20, "cpu", 1)
    slow = Timing(3e-3, 0.2e-3, 20, "cpu", 1)
    assert "3.00x (IQR 2.76-3.26x)" in str(table([{"speed-up": speedup(fast, slow)}]))
    assert table([{"a": 1}], [Column("a", "A", ".1f", "left")]).cells == [["1.0"]]


def test_markdown_and_errors():
    md = table([{"k": "conv", "v": 3}], title="T", notes=["n1"]).markdown()
    assert md.splitlines()[:4] == ["**T**", "", "| k | v |", "|---|---:|"] and md.endswith("n1")
    with pytest.raises(ValueError, match="column"):
        table([{"a": 1}], [("a", "A", None, "left", "extra")])
    with pytest.raises(ValueError, match="columns"):
        table([(1, 2)])


def test_show_prints_text_outside_jupyter(capsys):
    show([{"x": 1}], title="plain")
    assert capsys.readouterr().out == "plain\nx\n-\n1\n"


def test_tables_and_diagrams_import_lazily():
    import subprocess
    import sys

    code = ("import sys, course.tables, course.diagrams, course.plots; "
            "assert not {'matplotlib', 'IPython', 'adjustText'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
