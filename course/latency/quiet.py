"""Keep native libraries' messages out of notebooks: the course's one stderr silencer.

``torch.profiler``'s C++ backend (Kineto) writes ``profiler_start`` / ``profiler_stop`` lines to
file descriptor 2, below Python's ``sys.stderr``, so ``contextlib.redirect_stderr`` cannot catch
them; :func:`native_stderr_silenced` points descriptor 2 at ``/dev/null`` for a moment.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["native_stderr_silenced"]


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send the process's file descriptor 2 to ``/dev/null`` inside the block (restored after,
    also on an exception). Where there is no real descriptor 2 (some embedded interpreters),
    nothing is silenced."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
