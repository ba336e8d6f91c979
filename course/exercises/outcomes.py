"""Run a learner's answer on cases and describe what happened: the *outcomes*.

An outcome is a JSON-able dict, one per case:

* ``{"status": "ok", "value": ..., "type": "tuple", "repr": "(3, 4)"}``
* ``{"status": "error", "error_type": "ZeroDivisionError", "error_message": "..."}``
* ``{"status": "timeout", "seconds": 10}`` and ``{"status": "skipped"}`` (after a timeout)
* a single ``{"status": "missing", "detail": ...}`` or ``{"status": "not_callable", ...}``
  when there is no answer to call at all.

:func:`collect_outcomes` runs wherever the answer lives: in the learner's kernel for ``check``,
in the grader's answer process (:mod:`course.grading.replay`), and, pasted as source, in the
probe that reads value answers from a submission's kernel. So it is self-contained: no module
globals, imports inside.
"""

from __future__ import annotations


def collect_outcomes(answer, kind, cases, case_timeout_s=None, call=None):
    """Run ``answer`` on every case (``kind`` "function", "module", "design") or read it ("value").

    ``cases``: positional argument lists for functions (``answer(*case)``), case dicts for the
    other kinds, which ``call(answer, case)`` runs (:meth:`course.exercises.Exercise.run_case`).
    Returns a list of JSON-able outcome dicts (see the module docstring). Never raises for
    anything the answer does.
    """
    import numbers
    import signal
    import threading

    def short(obj, limit=300, as_repr=False):
        try:
            text = repr(obj) if as_repr else str(obj)
        except Exception as exc:  # a broken __repr__ or __str__
            text = f"<{type(obj).__name__} (printing it failed: {type(exc).__name__})>"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def jsonable(obj, depth=0):
        if obj is None or isinstance(obj, (bool, str, int, float)):
            if isinstance(obj, str):
                return obj[:10000]
            if isinstance(obj, int) and not isinstance(obj, bool):
                return int(obj)
            if isinstance(obj, float):
                return float(obj)
            return obj
        if depth < 4 and isinstance(obj, (list, tuple)):
            return [jsonable(item, depth + 1) for item in list(obj)[:10000]]
        if depth < 4 and isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
            return {k: jsonable(v, depth + 1) for k, v in list(obj.items())[:100]}
        if isinstance(obj, numbers.Integral):
            return int(obj)
        if isinstance(obj, numbers.Real):
            return float(obj)
        try:  # numpy / torch scalars and small arrays
            if getattr(obj, "ndim", None) == 0 and callable(getattr(obj, "item", None)):
                return jsonable(obj.item(), depth + 1)
            if getattr(obj, "ndim", None) == 1 and callable(getattr(obj, "tolist", None)) and depth < 4:
                return jsonable(obj.tolist(), depth + 1)
            if getattr(obj, "ndim", None) in (2, 3) and callable(getattr(obj, "tolist", None)) and depth == 0:
                return jsonable(obj.tolist(), depth + 1)  # a small matrix or mask (lists of at most 10,000 items)
        except Exception:
            pass
        return {"__unsupported__": type(obj).__name__}

    def describe(value):
        try:
            value_json = jsonable(value)
        except Exception:
            value_json = {"__unsupported__": type(value).__name__}
        out = {"status": "ok", "type": type(value).__name__, "repr": short(value, as_repr=True), "value": value_json}
        if isinstance(value, (list, tuple)):
            out["len"] = len(value)
        return out

    class CaseTimeout(BaseException):
        pass

    if kind == "value":
        return [describe(answer)]
    if answer is None:
        return [{"status": "missing", "detail": "it is None"}]
    if not callable(answer):
        return [{"status": "not_callable", "type": type(answer).__name__, "repr": short(answer, 80, as_repr=True)}]

    use_alarm = bool(case_timeout_s) and hasattr(signal, "setitimer") and (
        threading.current_thread() is threading.main_thread()
    )
    outcomes = []
    timed_out = False
    for case in cases:
        if timed_out:
            outcomes.append({"status": "skipped"})
            continue
        previous = None
        try:
            if use_alarm:
                def on_alarm(signum, frame):
                    raise CaseTimeout()

                previous = signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, float(case_timeout_s))
            try:
                outcome = describe(answer(*case) if call is None else call(answer, case))
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
            outcomes.append(outcome)
        except CaseTimeout:
            timed_out = True
            outcomes.append({"status": "timeout", "seconds": case_timeout_s})
        except KeyboardInterrupt:  # the learner (or the grader) stopped the kernel: stop too
            raise
        except BaseException as exc:  # the learner's code may raise anything, even SystemExit
            outcomes.append(
                {"status": "error", "error_type": type(exc).__name__, "error_message": short(exc, 500)}
            )
    return outcomes
