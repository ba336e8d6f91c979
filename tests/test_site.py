"""The course website (``make site``): pages from the executed notebooks, offline, student or instructor.

Fast tests check the pieces on small inputs: the README's chapter table, the explorer snapshot
of a stored widget state, the student page of a solution notebook. The slow tests build both
editions once (``sphinx-build -W``, with the proxies pointed at a closed port so that a fetch
would fail) and read the HTML with :mod:`html.parser`: one page per chapter notebook, every
chapter title, every referenced file present, every internal link and anchor resolving, no
asset from another host, no traceback, explorers as snapshots with their note, figures as
stored, no solution code in the student edition and all of it in the instructor edition. One
more opens a chapter in Debian's Chromium and checks that MathJax typeset the math from the
site's own files, with no request leaving the folder. No link is ever checked on the internet.
"""

import base64
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course.grading.release import BEGIN, END
from course.site.build import chapter_notebooks, notebook_title
from course.site.index import chapter_rows, index_markdown, introduction
from course.site.notebooks import LIVE_NOTE, site_notebook
from course.site.widget_snapshot import WIDGET_STATE_MIME, WIDGET_VIEW_MIME, render_widget

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = chapter_notebooks(SOLUTIONS)
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and Path(p).exists()), None)


def _have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


needs_sphinx = pytest.mark.skipif(
    not all(_have(m) for m in ("sphinx", "myst_nb", "sphinx_book_theme")),
    reason="the site extra is not installed (pip install -c constraints.txt -e '.[site]')",
)


# ---------------------------------------------------------------- README -> front page


def test_readme_table_names_existing_chapter_notebooks():
    # A notebook the table does not describe yet still gets its page (see index.py); a row
    # naming a notebook that does not exist would be a dead link, so the build refuses it.
    rows = chapter_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert NOTEBOOKS, "no solutions/NN_*.ipynb"
    assert rows and set(rows) <= {p.stem for p in NOTEBOOKS}
    assert rows["01_convolution_cost"]["number"] == "1"
    assert rows["01_convolution_cost"]["description"].startswith("Shapes, parameters, MACs vs FLOPs")


def test_chapter_rows_and_index_from_a_readme():
    readme = (
        "# Course\n\nIntro line.\n\n## Chapters\n\n| # | Notebook | What it teaches |\n|---|---|---|\n"
        "| 1 | `01_a` | A things |\n| 2 | `02_b.ipynb` | B things |\n\n## Start\n\n| x | y |\n|---|---|\n| 9 | z |\n"
    )
    rows = chapter_rows(readme)
    assert rows == {"01_a": {"number": "1", "description": "A things"}, "02_b": {"number": "2", "description": "B things"}}
    assert introduction(readme) == "# Course\n\nIntro line."
    from course.site.index import Chapter

    page = index_markdown(readme, [Chapter("01_a", "1", "Alpha", "A things"), Chapter("03_c", "3", "Gamma")], "student")
    assert "| 1 | [Alpha](01_a.ipynb) | A things |" in page
    assert "| 3 | [Gamma](03_c.ipynb) |  |" in page  # a chapter the README does not describe yet
    assert page.index("01_a\n03_c") > page.index("{toctree}")
    with pytest.raises(ValueError, match="no table under '## Chapters'"):
        chapter_rows("# Course\n\n## Chapters\n\nnone yet\n")


# ---------------------------------------------------------------- explorer snapshots


def _model(name, state, buffers=None):
    model = {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}
    if buffers:
        model["buffers"] = buffers
    return model


def _state():
    png = base64.b64encode(b"\x89PNG fake").decode()
    return {
        "root": _model("VBoxModel", {"children": ["IPY_MODEL_title", "IPY_MODEL_row", "IPY_MODEL_gone"]}),
        "title": _model("HTMLModel", {"value": "<h4>Explorer</h4><table><tr><td>MACs</td><td>42</td></tr></table>"}),
        "row": _model("HBoxModel", {"children": ["IPY_MODEL_k", "IPY_MODEL_h", "IPY_MODEL_img", "IPY_MODEL_odd"]}),
        "k": _model("DropdownModel", {"description": "K", "_options_labels": ["1", "3", "5"], "index": 2}),
        "h": _model("IntSliderModel", {"description": "H", "value": 64, "min": 8, "max": 224, "step": 8}),
        "img": _model("ImageModel", {"format": "png"}, [{"path": ["value"], "encoding": "base64", "data": png}]),
        "odd": _model("ColorPickerModel", {"value": "#ff0000"}),
        "gone": _model("LabelModel", {"value": "hidden", "layout": "IPY_MODEL_hidden_layout"}),
        "hidden_layout": _model("LayoutModel", {"display": "none"}),
    }


def test_snapshot_shows_the_last_state_of_each_control():
    snapshot = render_widget(_state(), "root")
    assert "<h4>Explorer</h4><table><tr><td>MACs</td><td>42</td></tr></table>" in snapshot
    assert re.search(r'<option selected>5</option>', snapshot) and "<option>3</option>" in snapshot
    assert re.search(r'type="range" min="8" max="224" step="8" value="64" disabled>.*>64<', snapshot)
    assert 'src="data:image/png;base64,' + base64.b64encode(b"\x89PNG fake").decode() in snapshot
    assert "[ColorPickerModel]" in snapshot  # named, not silently dropped
    assert ">hidden<" not in snapshot  # a widget with display: none stays hidden
    assert snapshot.index("Explorer") < snapshot.index("<select")  # children in order


def _explorer_notebook(with_state=True):
    view = new_output("display_data", data={WIDGET_VIEW_MIME: {"model_id": "root", "version_major": 2, "version_minor": 0},
                                            "text/plain": "VBox(...)"})
    cells = [
        new_markdown_cell("# Chapter 0 — Test"),
        new_code_cell("explorer", outputs=[view]),
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x  # the secret\n    ### END SOLUTION",
                      metadata={"course": {"exercise": "0.1", "part": "solution"}}),
        new_code_cell('check("0.1", f)', metadata={"course": {"exercise": "0.1", "part": "check"}},
                      outputs=[new_output("stream", name="stdout", text="Exercise 0.1 passed (1 point)\n")]),
        new_code_cell("print(1 + 1)", outputs=[new_output("stream", name="stdout", text="2\n")]),
    ]
    nb = new_notebook(cells=cells)
    if with_state:
        nb.metadata["widgets"] = {WIDGET_STATE_MIME: {"state": _state(), "version_major": 2, "version_minor": 0}}
    return nb


def test_student_page_has_the_stub_and_keeps_other_outputs():
    nb = _explorer_notebook()
    page = site_notebook(nb, "student")
    solution, check, plain = page.cells[2], page.cells[3], page.cells[4]
    assert "the secret" not in solution.source and BEGIN not in solution.source
    assert 'raise NotImplementedError("Exercise 0.1: replace this line with your solution")' in solution.source
    assert check.outputs == [] and solution.outputs == []  # "passed" came from the solution
    assert plain.outputs[0]["text"] == "2\n"
    assert "the secret" in nb.cells[2].source  # the input notebook is not changed
    instructor = site_notebook(nb, "instructor")
    assert "the secret" in instructor.cells[2].source and instructor.cells[3].outputs


def test_student_page_hides_model_answers_instructor_page_shows_them():
    nb = _explorer_notebook()
    nb.cells.append(new_markdown_cell("1. Why?\n<!-- BEGIN ANSWER -->\nBecause of the bytes.\n<!-- END ANSWER -->\n"))
    student = site_notebook(nb, "student").cells[-1].source
    assert "Because of the bytes." not in student and "Model answer: in the solution notebook" in student
    assert "Because of the bytes." in site_notebook(nb, "instructor").cells[-1].source


@pytest.mark.parametrize("variant", ["student", "instructor"])
def test_explorer_becomes_snapshot_with_live_note(variant):
    page = site_notebook(_explorer_notebook(), variant)
    data = page.cells[1].outputs[0]["data"]
    assert WIDGET_VIEW_MIME not in data and "widgets" not in page.metadata
    assert LIVE_NOTE in data["text/html"] and '<option selected>5</option>' in data["text/html"]
    missing = site_notebook(_explorer_notebook(with_state=False), variant).cells[1].outputs[0]["data"]["text/html"]
    assert "did not store the explorer's state" in missing


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        site_notebook(_explorer_notebook(), "teacher")


def test_every_chapter_has_a_title():
    for path in NOTEBOOKS:
        assert notebook_title(nbformat.read(str(path), as_version=4), str(path)).startswith("Chapter ")


# ---------------------------------------------------------------- the built site


class Page(HTMLParser):
    """What the tests need from one HTML page: links, asset references, ids, text, <pre> text."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path, self.links, self.assets, self.ids = path, [], [], set()
        self.text, self.pre, self.title, self.h1 = [], [], "", []
        self._pre_depth, self._in = 0, []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for key in ("src", "href") if tag != "a" else ():
            if attrs.get(key):
                self.assets.append((tag, attrs.get("rel", ""), attrs[key]))
        if tag == "pre":
            self._pre_depth += 1
            self.pre.append("")
        self._in.append(tag)

    def handle_endtag(self, tag):
        if tag == "pre":
            self._pre_depth -= 1
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)
        if self._pre_depth:
            self.pre[-1] += data
        if self._in and self._in[-1] == "title":
            self.title += data
        if "h1" in self._in:
            self.h1.append(data)


def _build(tmp_path_factory, variant):
    from course.site.build import build_site

    out = tmp_path_factory.mktemp(f"site-{variant}") / "site"
    env = dict(os.environ)
    closed = "http://127.0.0.1:9"  # the discard port: any fetch would fail, not hang
    env.update(http_proxy=closed, https_proxy=closed, HTTP_PROXY=closed, HTTPS_PROXY=closed, no_proxy="", NO_PROXY="")
    chapters = build_site(ROOT, out, variant, env=env)
    return out, chapters


@pytest.fixture(scope="module")
def student_site(tmp_path_factory):
    return _build(tmp_path_factory, "student")


@pytest.fixture(scope="module")
def instructor_site(tmp_path_factory):
    return _build(tmp_path_factory, "instructor")


def _pages(site: Path):
    return {p.name: Page(p) for p in sorted(site.glob("*.html"))}


def _solution_only_lines():
    """{notebook stem: lines inside solution regions that appear nowhere in its student copy nor in
    the course package's own source (which the notebooks show on purpose with ``show_source``,
    e.g. Chapter 3's ShuffleV2Unit after its exercise: the library is public, the answer cells are not)}."""
    from course.grading.release import release_notebook

    library = {line.strip() for source in (ROOT / "course").rglob("*.py")
               for line in source.read_text(encoding="utf-8").splitlines()}
    found = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        student_text = "\n".join(cell.source for cell in release_notebook(nb).cells)
        lines, inside = set(), False
        for cell in nb.cells:
            for line in cell.source.splitlines():
                if line.strip() in (BEGIN, END):
                    inside = line.strip() == BEGIN
                elif inside and line.strip() and line.strip() not in student_text and line.strip() not in library:
                    lines.add(line.strip())
        found[path.stem] = lines
    return found


def site_problems(site: Path, pages) -> list:
    """Each broken internal reference, missing anchor, outside asset or traceback of a built site."""
    problems, ids = [], {name: page.ids for name, page in pages.items()}
    for name, page in pages.items():
        if "Traceback" in "".join(page.text):
            problems.append(f"{name}: shows a traceback")
        for tag, rel, ref in page.assets:
            if urlsplit(ref).scheme not in ("", "data") or ref.startswith("//"):
                problems.append(f"{name}: <{tag}> loads {ref} from another host")
        for ref in page.links + [ref for _, _, ref in page.assets]:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//"):
                continue  # an outside link (never fetched here) or a data: URI
            target = (page.path.parent / unquote(parts.path)).resolve() if parts.path else page.path.resolve()
            if not target.exists():
                problems.append(f"{name}: broken reference {ref}")
            elif parts.fragment and target.suffix == ".html" and target.parent == site.resolve():
                if parts.fragment not in ids.get(target.name, ()):
                    problems.append(f"{name}: no anchor #{parts.fragment} in {target.name}")
    return problems


def test_site_problems_finds_each_kind_of_fault(tmp_path):
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "fig.png").write_bytes(b"png")
    (tmp_path / "a.html").write_text(
        '<html><head><title>A</title><script src="https://cdn.example/x.js"></script></head><body>'
        '<h1 id="top">A</h1><a href="b.html#there">ok</a><a href="b.html#nowhere">no anchor</a>'
        '<a href="c.html">missing page</a><a href="#top">self</a><a href="https://example.org">outside link</a>'
        '<img src="_images/fig.png"><img src="_images/gone.png"><img src="data:image/png;base64,AA==">'
        "<pre>Traceback (most recent call last):</pre></body></html>"
    )
    (tmp_path / "b.html").write_text('<html><body><p id="there">B</p></body></html>')
    problems = site_problems(tmp_path, _pages(tmp_path))
    assert sorted(problems) == sorted([
        "a.html: <script> loads https://cdn.example/x.js from another host",
        "a.html: no anchor #nowhere in b.html",
        "a.html: broken reference c.html",
        "a.html: broken reference _images/gone.png",
        "a.html: shows a traceback",
    ])


@pytest.mark.slow
@needs_sphinx
@pytest.mark.parametrize("edition", ["student_site", "instructor_site"])
def test_site_pages_titles_links_and_assets(edition, request):
    site, chapters = request.getfixturevalue(edition)
    pages = _pages(site)
    stems = [p.stem for p in NOTEBOOKS]
    assert [c.stem for c in chapters] == stems
    assert sorted(name for name in pages if re.match(r"\d\d_", name)) == [f"{s}.html" for s in stems]
    assert "index.html" in pages

    index = pages["index.html"]
    for path in NOTEBOOKS:
        title = notebook_title(nbformat.read(str(path), as_version=4))
        page = pages[f"{path.stem}.html"]
        assert title in "".join(page.h1), f"{path.stem}: page heading is not {title!r}"
        assert title in page.title
        assert f"{path.stem}.html" in index.links, f"the front page does not link {path.stem}"

    assert site_problems(site, pages) == []

    mathjax = site / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").is_file() and any((mathjax / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert any(urlsplit(ref).path == "_static/mathjax/tex-chtml.js" for _, _, ref in pages["01_convolution_cost.html"].assets)


@pytest.mark.slow
@needs_sphinx
@pytest.mark.parametrize("edition", ["student_site", "instructor_site"])
def test_site_figures_and_explorers_as_stored(edition, request):
    site, _ = request.getfixturevalue(edition)
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        page_nb = site_notebook(nb, "student" if edition == "student_site" else "instructor")
        figures = sum("image/png" in o.get("data", {}) for c in page_nb.cells for o in c.get("outputs", []))
        explorers = sum(WIDGET_VIEW_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
        source = (site / f"{path.stem}.html").read_text(encoding="utf-8")
        assert len(re.findall(r'<img [^>]*src="_images/[^"]+\.png"', source)) == figures, path.stem
        assert source.count('class="course-explorer"') == explorers, path.stem
        assert source.count("Live in JupyterLab.") == explorers
        assert "application/vnd.jupyter.widget" not in source  # no widget JS, nothing to fetch


@pytest.mark.slow
@needs_sphinx
def test_student_site_hides_solutions_instructor_site_shows_them(student_site, instructor_site):
    hidden = _solution_only_lines()
    assert sum(map(len, hidden.values())) >= len(NOTEBOOKS), "too few solution lines to test against"
    for stem, lines in hidden.items():
        student_code = "\n".join(Page(student_site[0] / f"{stem}.html").pre)
        instructor_code = "\n".join(Page(instructor_site[0] / f"{stem}.html").pre)
        student_lines = {line.strip() for line in student_code.splitlines()}
        instructor_lines = {line.strip() for line in instructor_code.splitlines()}
        assert not lines & student_lines, f"{stem}: solution code on the student page: {sorted(lines & student_lines)[:3]}"
        assert lines <= instructor_lines, f"{stem}: solution lines missing: {sorted(lines - instructor_lines)[:3]}"
        assert "replace this line with your solution" in student_code
        assert "replace this line with your solution" not in instructor_code


@pytest.mark.slow
@needs_sphinx
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium; .ci/run does it)")
@pytest.mark.skipif(not _have("playwright"), reason="the Python package playwright is not installed (the test extra)")
def test_chromium_typesets_math_offline(student_site):
    from playwright.sync_api import sync_playwright

    page_path = student_site[0] / "01_convolution_cost.html"
    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2000})
            page.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).scheme not in ("file", "data") else None)
            page.goto(page_path.as_uri())
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
            page.evaluate("MathJax.startup.promise")
            typeset = page.locator("mjx-container").count()
            errors = page.locator("mjx-merror").count()
            note = page.locator(".course-explorer-note").first.inner_text()
        finally:
            browser.close()
    assert typeset > 10 and errors == 0
    assert outside == []
    assert "Live in JupyterLab." in note
