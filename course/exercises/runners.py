"""Run one case of a *module* answer (an ``nn.Module`` class the learner wrote).

For each case the course's block (the exercise's ``reference``) is built from the case's
constructor arguments with a seed made from the exercise id and the case, its batch norms are
given seeded statistics (:func:`course.equivalence.randomize_bn`: a forgotten or misplaced
BatchNorm shows), and its
weights are copied into the learner's module by name (``Exercise.weights`` maps the names that
differ). Both run in ``eval()`` mode on the same seeded inputs; what comes back is small and
JSON-able (:func:`output_summary`), and is compared in the grader's process
(:func:`course.exercises.judge.compare_module_output`).

The grader calls this in the answer's own (sandboxed) process; ``check`` calls it in the
notebook; the expected side calls it with the reference block as the "answer".
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any, Dict, List, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from course.exercises.core import Exercise

#: At most this many output values travel back (evenly spaced over the flattened output).
MAX_VALUES = 4096


def case_seed(exercise_id: str, case: Dict[str, Any]) -> int:
    """A seed that depends only on the exercise and the case (the same in every process)."""
    return zlib.crc32(json.dumps([exercise_id, case], sort_keys=True, default=str).encode()) & 0x7FFFFFFF


def input_shapes(case: Dict[str, Any]) -> List[List[int]]:
    """The case's input shapes: ``input`` is one shape or a list of shapes."""
    shapes = case["input"]
    if shapes and isinstance(shapes[0], (list, tuple)):
        return [list(s) for s in shapes]
    return [list(shapes)]


def output_summary(output) -> Dict[str, Any]:
    """A module's output as JSON-able data: shape, up to :data:`MAX_VALUES` values (evenly
    spaced over the flattened tensor), their sum in float64."""
    import torch

    if isinstance(output, (tuple, list)) and len(output) == 1:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"forward() returned {type(output).__name__}; return one tensor")
    flat = output.detach().reshape(-1).double()
    if flat.numel() > MAX_VALUES:
        flat = flat[torch.linspace(0, flat.numel() - 1, MAX_VALUES).long()]
    return {"shape": list(output.shape), "values": flat.tolist(), "sum": float(output.detach().double().sum())}


def copy_weights(reference, module, mapping: Dict[str, str]) -> None:
    """Load ``reference``'s state into ``module``: by name, except the names ``mapping`` gives
    (``{module's name: reference's name}``). Raises ``ValueError`` naming what is missing or extra."""
    state = reference.state_dict()
    theirs = {name: mapping.get(name, name) for name in module.state_dict()}
    missing = sorted(name for name, source in theirs.items() if source not in state)
    unused = sorted(set(state) - set(theirs.values()))
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"the course's block has no {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        if unused:
            parts.append(f"your module has nothing for {', '.join(unused[:5])}" + (" ..." if len(unused) > 5 else ""))
        raise ValueError("the weights cannot be copied by name: " + "; ".join(parts)
                         + " (name the layers as the exercise says)")
    mine = module.state_dict()
    for name, source in theirs.items():
        if tuple(mine[name].shape) != tuple(state[source].shape):
            raise ValueError(f"{name} has shape {tuple(mine[name].shape)}; the course's {source} has "
                             f"{tuple(state[source].shape)}")
    module.load_state_dict({name: state[source] for name, source in theirs.items()})


def run_module(exercise: "Exercise", answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """Build ``answer`` (a class) and the course's block for ``case``, copy the block's weights
    into it, and run it in ``eval()`` mode on seeded inputs: :func:`output_summary` plus its
    parameter count."""
    import torch
    from torch import nn

    from course.equivalence import randomize_bn

    kwargs = {k: v for k, v in case.items() if k != "input"}
    seed = case_seed(exercise.id, case)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = exercise.reference(**kwargs)
    randomize_bn(reference, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = [torch.randn(*shape, generator=generator) for shape in input_shapes(case)]
    module = reference if answer is exercise.reference else answer(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"{exercise.answer}(...) made {type(module).__name__}, not an nn.Module")
    if module is not reference:
        copy_weights(reference, module, dict(exercise.weights))
    module.eval()
    with torch.no_grad():
        summary = output_summary(module(*inputs))
    summary["params"] = sum(p.numel() for p in module.parameters())
    return summary
