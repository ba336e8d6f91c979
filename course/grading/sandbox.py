"""Run a submission's code under bubblewrap (``bwrap``): no network, no view of your files.

``course grade`` runs each submission's kernel and each replayed answer inside a sandbox made
with bubblewrap (Debian's and Ubuntu's ``bubblewrap`` package; no Docker, no root). Inside:

* a new user, PID, IPC, UTS and network namespace: no network at all (not even the grader's
  loopback), no other process of the machine to see or signal;
* a read-only view of the system (``/usr`` and a few files of ``/etc``), of the Python
  environment (its prefixes) and of the ``course`` package folder alone (not the repository
  around it: no ``solutions/``);
* one writable folder, the submission's private scratch folder (its working folder, ``HOME``
  and ``TMPDIR``), a private ``/tmp`` and ``/dev/shm`` (tmpfs, capped at the memory limit);
* a clean environment: only the locale, thread-count and course variables pass (no tokens);
* not visible: your home, the solutions, the output folder, other submissions.

The memory and time limits of :mod:`course.grading.isolation` still apply (they are set on and
measured from outside). Kernels talk to the grader over Unix sockets in a private folder bound
into the sandbox, and are interrupted by a message (a signal would stop ``bwrap`` itself).

:func:`choose` probes once whether ``bwrap`` runs here: where user namespaces are blocked
(Ubuntu 23.10+ and GitHub's ubuntu-24.04 runners block them by default) grading falls back to
the process isolation alone, with a one-line warning saying why and how to enable it;
``--sandbox=require`` makes that an error instead. ``COURSE_BWRAP`` names another ``bwrap``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

MODES = ("auto", "require", "off")

#: Environment variables passed into the sandbox (everything else is cleared).
PASSED_ENV = ("LANG", "LANGUAGE", "TZ", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
              "PYDEVD_DISABLE_FILE_VALIDATION", "MPLBACKEND", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_NUM_THREADS", "TORCH_NUM_THREADS")
PASSED_PREFIXES = ("LC_", "COURSE_")

#: Files and folders of ``/etc`` the sandbox sees (read-only), when they exist: the dynamic
#: linker's cache, time zones, fonts and MIME types. Not ``passwd``, ``shadow``, keys, ...
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives", "fonts",
       "mime.types", "nsswitch.conf")

#: Top-level system folders: bound read-only, or re-created as the same symlinks (merged /usr).
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")

ENABLE_HINT = ("enable user namespaces: `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` "
               "(Ubuntu 23.10+, GitHub's ubuntu-24.04 runners) or `sudo sysctl -w kernel.unprivileged_userns_clone=1` "
               "(older Debian)")


class SandboxUnavailable(RuntimeError):
    """``--sandbox=require`` and bubblewrap cannot run here (the message says why)."""


def course_root() -> Path:
    """The folder holding the ``course`` package in use (what ``PYTHONPATH`` names inside)."""
    import course

    return Path(course.__file__).resolve().parent.parent


def _python_paths() -> List[str]:
    """Folders of the Python environment a kernel needs, read-only: the prefixes (and where
    their symlinks lead), the user's site-packages when Python uses it, the course package."""
    import site

    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  str(Path(sys.executable).resolve().parent.parent)}
    try:
        user_site = site.getusersitepackages()
        if user_site in sys.path and os.path.isdir(user_site):
            candidates.add(user_site)
    except Exception:  # pragma: no cover (site without user site support)
        pass
    candidates |= {os.path.realpath(p) for p in candidates}
    candidates.add(str(course_root() / "course"))
    paths = sorted(p for p in candidates if os.path.isdir(p) and not _under(p, "/usr"))
    return [p for p in paths if not any(q != p and _under(p, q) for q in paths)]  # drop nested ones


def _under(path: str, folder: str) -> bool:
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) == os.path.abspath(folder)


def _system_args() -> List[str]:
    args: List[str] = []
    for name in SYSTEM:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    for name in ETC:
        host = Path("/etc") / name
        if host.exists():
            args += ["--ro-bind", str(host), str(host)]
    return args


@dataclass(frozen=True)
class Sandbox:
    """How to run a command under bubblewrap (picklable: it travels to the grading workers).

    Attributes:
        bwrap: the ``bwrap`` executable.
        read_only: host folders visible read-only at the same path (Python, the course package).
        course_root: the folder holding the ``course`` package (``PYTHONPATH`` inside).
    """

    bwrap: str
    read_only: Tuple[str, ...]
    course_root: str

    def env(self, env: Mapping[str, str], scratch: str) -> Dict[str, str]:
        """The environment inside: the variables of :data:`PASSED_ENV` / :data:`PASSED_PREFIXES`
        from ``env``, and every home, cache and temporary folder pointing into ``scratch``."""
        inside = {k: v for k, v in env.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
        bin_dir = str(Path(sys.executable).parent)
        inside.update({
            "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
            "PYTHONPATH": self.course_root,
            "HOME": scratch, "TMPDIR": scratch, "USER": "learner", "LOGNAME": "learner",
            "IPYTHONDIR": f"{scratch}/.ipython", "MPLCONFIGDIR": f"{scratch}/.config/matplotlib",
            "XDG_CACHE_HOME": f"{scratch}/.cache", "XDG_CONFIG_HOME": f"{scratch}/.config",
            "XDG_DATA_HOME": f"{scratch}/.local/share", "JUPYTER_RUNTIME_DIR": f"{scratch}/.jupyter/runtime",
            "TORCH_HOME": f"{scratch}/.cache/torch", "MPLBACKEND": env.get("MPLBACKEND", "Agg"),
            # ipykernel watches its parent unless this is 1; inside a PID namespace the parent it sees is
            # bwrap's init, and --die-with-parent already ends the kernel with the grader.
            "JPY_PARENT_PID": "1",
        })
        return inside

    def wrap(self, argv: Sequence[str], *, scratch: str, env: Mapping[str, str], writable: Sequence[str] = (),
             memory_mb: Optional[float] = None) -> List[str]:
        """``argv`` run inside the sandbox, in ``scratch`` (its only writable folder with
        ``writable``), with the environment :meth:`env` makes from ``env``. ``/tmp`` and
        ``/dev/shm`` are private tmpfs of at most ``memory_mb`` (1024 MB when None)."""
        size = str(int((memory_mb or 1024) * 1024 * 1024))
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--hostname", "sandbox", "--clearenv"]
        args += _system_args()
        args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
                 "--size", size, "--tmpfs", "/tmp"]
        for path in self.read_only:
            args += ["--ro-bind", path, path]
        for path in [scratch, *writable]:
            args += ["--bind", path, path]
        for key, value in sorted(self.env(env, scratch).items()):
            args += ["--setenv", key, value]
        args += ["--chdir", scratch, "--"]
        return args + list(argv)


def _bwrap_path() -> Optional[str]:
    path = os.environ.get("COURSE_BWRAP") or shutil.which("bwrap")
    return path if path and os.access(path, os.X_OK) else None


@lru_cache(maxsize=None)
def _probe(bwrap: Optional[str]) -> Tuple[Optional[Sandbox], str]:
    if not bwrap:
        return None, "bubblewrap is not installed (Debian/Ubuntu: `sudo apt-get install bubblewrap`)"
    sandbox = Sandbox(bwrap=bwrap, read_only=tuple(_python_paths()), course_root=str(course_root()))
    with tempfile.TemporaryDirectory(prefix="course-sandbox-probe-") as scratch:
        argv = sandbox.wrap([sys.executable, "-c", "import course, socket; print('sandbox ok')"],
                            scratch=scratch, env=os.environ)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"bubblewrap ({bwrap}) could not run: {type(exc).__name__}: {exc}"
    if done.returncode == 0 and "sandbox ok" in done.stdout:
        return sandbox, ""
    error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:200]
    if any(word in error.lower() for word in ("permission denied", "operation not permitted", "no permissions",
                                               "creating new namespace", "uid map")):
        return None, f"bubblewrap cannot create a user namespace here ({error}); {ENABLE_HINT}"
    return None, f"bubblewrap ({bwrap}) failed: {error}"


def probe() -> Tuple[Optional[Sandbox], str]:
    """``(sandbox, "")`` when bubblewrap runs Python with the course here, else ``(None, why)``
    (why not, and how to enable it). Probed once per process and ``bwrap`` path."""
    return _probe(_bwrap_path())


def choose(mode: str = "auto", warn: Optional[Callable[[str], None]] = None) -> Optional[Sandbox]:
    """The sandbox to grade with for ``mode``: ``"off"`` -> None; ``"auto"`` -> the sandbox, or
    None with a one-line warning (``warn``, default: stderr) when it cannot run here;
    ``"require"`` -> the sandbox, or :class:`SandboxUnavailable`."""
    if mode not in MODES:
        raise ValueError(f"sandbox must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return None
    sandbox, why = probe()
    if sandbox is not None:
        return sandbox
    if mode == "require":
        raise SandboxUnavailable(f"the sandbox is required but unavailable: {why}")
    (warn or (lambda line: print(line, file=sys.stderr)))(
        f"course grade: WARNING: grading without the sandbox: {why} (--sandbox=require makes this an error)")
    return None
