"""The course as a website: a static HTML book of the executed chapter notebooks.

``python -m course.site`` (``make site``) builds the student edition into ``build/site/``;
``--instructor`` (``make site-instructor``) builds the edition with solutions. One page per
``solutions/NN_*.ipynb`` in order, a front page from the README's chapter table, math by a
MathJax served from the site, figures and tables as stored, each explorer as a snapshot of its
last state. Sphinx, myst-nb and sphinx-book-theme come with the ``site`` extra and load only
here. Modules: :mod:`~course.site.build` (stage and run Sphinx), :mod:`~course.site.notebooks`
(student/instructor pages), :mod:`~course.site.index` (front page),
:mod:`~course.site.widget_snapshot` (explorers as static HTML).
"""

from course.site.build import build_site, chapter_notebooks, stage
from course.site.notebooks import VARIANTS, site_notebook

__all__ = ["VARIANTS", "build_site", "chapter_notebooks", "site_notebook", "stage"]
