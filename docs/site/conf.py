"""Sphinx configuration of the course website (built by ``python -m course.site``, see the README).

The sources are staged by :mod:`course.site.build` (an index from the README and one executed
notebook per chapter); this file only says how to render them: myst-nb with execution off,
sphinx-book-theme, MathJax served from the site itself (no CDN), warnings as errors (``-W`` on
the command line). ``-t instructor`` selects the edition with solutions.
"""

import importlib.util
import shutil
from pathlib import Path

instructor = tags.has("instructor")  # noqa: F821 (Sphinx defines `tags` when it runs this file)
edition = "instructor edition" if instructor else "student edition"

project = "Fast Architectures"
html_title = f"Fast Architectures ({edition})"

extensions = ["myst_nb"]
exclude_patterns = ["jupyter_execute", "**.ipynb_checkpoints"]

# The notebooks are already executed (and nbval-checked): show their stored outputs.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # explorers are static snapshots (course.site.widget_snapshot): no widget JS
nb_output_stderr = "show"
nb_merge_streams = True  # one block per cell for its printed lines, as JupyterLab shows them
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course-site.css"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": True,
    "use_repository_button": False,
    "use_source_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
    "announcement": "" if not instructor else "Instructor edition: the exercises show their solutions.",
}

# MathJax 3 from the `sphinx-mathjax-offline` package, copied into the site: pages never reach
# a CDN. Only what `tex-chtml.js` loads is copied (its TeX extensions, CHTML fonts, menu and
# accessibility parts); the other combined bundles of the package are left out.
mathjax_path = "mathjax/tex-chtml.js"
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml", "ui", "a11y", "sre")


def mathjax_folder() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the site needs MathJax from the 'sphinx-mathjax-offline' package: "
            "pip install -c constraints.txt -e '.[site]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def copy_mathjax(app):
    source, dest = mathjax_folder(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, dest / part, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, dest / part)


def setup(app):
    mathjax_folder()  # fail at start, not after an hour of rendering, when MathJax is missing
    app.connect("builder-inited", copy_mathjax)
