"""Chapter-specific helpers, one module per chapter (``ch02``, ``ch03``, ...).

A notebook's logic lives here, not in the notebook: the chapter's explorer configurations
(built on :class:`course.widgets.Explorer`), its sweeps and measurements, and its figures.
Each module is unit-tested in ``tests/``.
"""
