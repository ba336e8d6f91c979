"""Fast Architectures: the course library.

Sub-packages, one job each (see the README): ``course.cost`` (what an operation costs),
``course.latency`` (honest timing), ``course.widgets`` and ``course.plots`` (explorers and
figures), ``course.exercises`` (checks for the graded exercises) and ``course.grading``
(release and grading). ``import course`` stays light: heavy libraries load on first use.
"""

__version__ = "0.1.0"
