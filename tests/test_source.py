"""course.source.show_source: the notebooks show exactly the library's tested code."""

import inspect

import pytest

from course.blocks.shuffle import ShuffleV2Unit, channel_shuffle
from course.source import show_source


def test_a_function_is_shown_exactly_as_in_its_file():
    shown = show_source(channel_shuffle)
    lines, first = inspect.getsourcelines(channel_shuffle)
    assert shown.source == "".join(lines)
    assert shown.name == "course.blocks.shuffle.channel_shuffle"
    assert shown.where == f"course/blocks/shuffle.py, lines {first}-{first + len(lines) - 1}"
    assert str(shown).splitlines()[1:] == shown.source.splitlines()


def test_only_the_named_methods_of_a_class_dedented_in_order():
    shown = show_source(ShuffleV2Unit, members=["forward", "__init__"])
    assert shown.source.startswith("def forward(")
    assert "\ndef __init__(" in shown.source
    assert "class ShuffleV2Unit" not in shown.source
    assert shown.where.count("-") == 2  # two spans of lines


def test_html_is_syntax_highlighted_and_escaped():
    html = show_source(ShuffleV2Unit)._repr_html_()
    assert "<span" in html and "class ShuffleV2Unit" not in html  # keywords and names are wrapped
    assert "ShuffleV2Unit" in html and "course/blocks/shuffle.py" in html


def test_clear_errors():
    with pytest.raises(ValueError, match="defines no method 'nope'"):
        show_source(ShuffleV2Unit, members=["nope"])
    with pytest.raises(ValueError, match="needs a class"):
        show_source(channel_shuffle, members=["forward"])
    with pytest.raises(TypeError, match="no source to show"):
        show_source(len)
