"""Fast Architectures: the course library.

Sub-packages, one job each (see docs/design.md): ``course.cost`` (what an operation costs),
``course.latency`` (honest timing by one measurement policy), ``course.blocks`` and
``course.models``, ``course.chapters`` (each chapter's explorers, tables and figures),
``course.widgets``, ``course.plots``, ``course.diagrams`` and ``course.tables`` (explorers,
figures, block diagrams, tables), ``course.exercises`` (checks for the graded exercises) and
``course.grading`` (release and grading). ``import course`` stays light: heavy libraries load
on first use.
"""

__version__ = "0.1.0"
