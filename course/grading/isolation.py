"""Process limits for the code of a submission: memory, time, and a way to stop it for good.

Two layers, neither of which needs root, cgroups or a container:

* a hard ceiling set in the child before it runs anything: ``RLIMIT_DATA`` (heap and anonymous
  private mappings; unlike ``RLIMIT_AS`` it leaves PyTorch's large *reserved* virtual address
  space alone, so ``import torch`` still works under a 2 GiB limit) and no core dumps;
  an allocation over the ceiling raises ``MemoryError`` (or PyTorch's ``RuntimeError``) inside
  the submission instead of taking the machine down;
* :class:`MemoryWatch`, a thread of the grader that polls the resident memory (RSS) of the
  child *and its descendants* (psutil) and kills the whole tree when it goes over the limit,
  so memory held by sub-processes or by mappings ``RLIMIT_DATA`` does not count is bounded too.

:func:`run_limited` runs a command with both, a wall-clock limit and a clean kill of its
process group (inside the bubblewrap sandbox of :mod:`course.grading.sandbox` when given one);
it is what the grader's answer processes use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from course.grading.sandbox import Sandbox

MB = 1024 * 1024

#: Prefix that applies the limits, then replaces itself with the real command (``os.execv``).
_LIMIT_SHIM = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def limited_argv(argv: Sequence[str], memory_mb: Optional[float]) -> List[str]:
    """``argv`` wrapped so that it starts under the memory ceiling (``memory_mb``; None or 0: none).

    The first item of ``argv`` must be an executable path (``sys.executable`` for kernels).
    """
    limit = int(memory_mb * MB) if memory_mb else 0
    return [sys.executable, "-c", _LIMIT_SHIM, str(limit), *argv]


def _tree(pid: int):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of process ``pid`` and all its descendants (0 when gone)."""
    import psutil

    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_tree(pid: int) -> None:
    """SIGKILL process ``pid`` and all its descendants (those still alive)."""
    import psutil

    for proc in reversed(_tree(pid)):
        try:
            proc.kill()
        except psutil.Error:
            pass


class MemoryWatch:
    """Polls the RSS of a process tree every ``interval_s``; kills the tree above ``limit_mb``.

    Use as a context manager around the child's life. After it fired, ``exceeded`` is True and
    ``peak_mb`` the largest RSS seen; :attr:`reason` says it in words.
    """

    def __init__(self, pid: int, limit_mb: Optional[float], interval_s: float = 0.1):
        self.pid = pid
        self.limit = int(limit_mb * MB) if limit_mb else 0
        self.limit_mb = limit_mb
        self.interval_s = interval_s
        self.exceeded = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def peak_mb(self) -> float:
        return self.peak / MB

    @property
    def reason(self) -> str:
        return f"memory limit exceeded ({self.peak_mb:.0f} MB resident > {self.limit_mb:g} MB); the process was killed"

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = tree_rss(self.pid)
            self.peak = max(self.peak, rss)
            if self.limit and rss > self.limit:
                self.exceeded = True
                kill_tree(self.pid)
                return
            if rss == 0 and not _tree(self.pid):
                return

    def __enter__(self) -> "MemoryWatch":
        if self.limit:
            self._thread = threading.Thread(target=self._run, name=f"memory-watch-{self.pid}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


def run_limited(
    argv: Sequence[str],
    stdin: bytes,
    *,
    timeout_s: float,
    memory_mb: Optional[float],
    cwd: str,
    env: Optional[Dict[str, str]] = None,
    sandbox: Optional["Sandbox"] = None,
) -> Tuple[Optional[int], bytes, bytes, Optional[str]]:
    """Run ``argv`` with ``stdin`` in ``cwd``, under the memory ceiling and watch, for at most
    ``timeout_s``; inside ``sandbox`` when given (then ``cwd`` is its only writable folder).

    Returns ``(returncode, stdout, stderr, problem)``: ``problem`` is ``None`` or why the run was
    cut (time or memory limit). The process runs in its own session; on any limit its whole
    process group and tree are killed, so nothing it started survives.
    """
    command = limited_argv(argv, memory_mb)
    if sandbox is not None:
        command = sandbox.wrap(command, scratch=cwd, env=env if env is not None else os.environ, memory_mb=memory_mb)
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    problem = None
    with MemoryWatch(proc.pid, memory_mb) as watch:
        try:
            out, err = proc.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            problem = f"time limit ({timeout_s:g} s) reached; the process was killed"
            _kill_group(proc)
            out, err = proc.communicate()
    if watch.exceeded:
        problem = watch.reason
    _kill_group(proc)  # anything it left behind in its session
    return proc.returncode, out, err, problem


def _kill_group(proc: subprocess.Popen) -> None:
    kill_tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Whether process ``pid`` is gone within ``timeout_s`` (polls)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        time.sleep(0.05)
    return False
