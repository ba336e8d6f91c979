"""Chapter 1 answers as a learner would write them, shared by the grading tests."""

POINTS = {"1.1": 2, "1.2": 3, "1.3": 3, "1.4": 2}
FULL = sum(POINTS.values())

OUTPUT_SIZE = '''def conv_output_size(size, K, stride, padding, dilation):
    ### BEGIN SOLUTION
    span = dilation * (K - 1) + 1
    return (size + 2 * padding - span) // stride + 1
    ### END SOLUTION
'''
CONV_COST = '''def conv_cost(H, W, N, M, K, stride, padding, groups, bias):
    ### BEGIN SOLUTION
    H_out = (H + 2 * padding - K) // stride + 1
    W_out = (W + 2 * padding - K) // stride + 1
    weight = K * K * (N // groups) * M
    return H_out * W_out * weight, weight + (M if bias else 0)
    ### END SOLUTION
'''
IM2COL = '''import torch
import torch.nn.functional as F
from torch import nn


class Im2colConv2d(nn.Module):
    def __init__(self, N, M, K, stride, padding, bias):
        super().__init__()
        ### BEGIN SOLUTION
        self.K, self.stride, self.padding = K, stride, padding
        self.weight = nn.Parameter(torch.randn(M, N, K, K))
        self.bias = nn.Parameter(torch.zeros(M)) if bias else None
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        B, _, H, W = x.shape
        M = self.weight.shape[0]
        H_out = (H + 2 * self.padding - self.K) // self.stride + 1
        W_out = (W + 2 * self.padding - self.K) // self.stride + 1
        cols = F.unfold(x, self.K, padding=self.padding, stride=self.stride)
        out = self.weight.view(M, -1) @ cols
        if self.bias is not None:
            out = out + self.bias.view(1, M, 1)
        return out.view(B, M, H_out, W_out)
        ### END SOLUTION
'''
HEAVIEST = '''heaviest_conv = None
### BEGIN SOLUTION
heaviest_conv = "conv1"
### END SOLUTION
'''


ANSWERS = {"1.1": OUTPUT_SIZE, "1.2": CONV_COST, "1.3": IM2COL, "1.4": HEAVIEST}
NAMES = {"1.1": "conv_output_size", "1.2": "conv_cost", "1.3": "Im2colConv2d", "1.4": "heaviest_conv"}


def chapter1_notebook(answers=None, checks=False, import_check=None, fast_guard=False):
    """A Chapter 1 solution notebook in the course's layout (the ``conftest`` fixture of the same name).

    Args:
        answers: exercise id -> solution cell source, replacing :data:`ANSWERS`' ones.
        checks: add a ``check(...)`` cell after each solution (they import torch in the
            kernel: slow, so only where a case needs them).
        import_check: add the ``from course.exercises import check`` cell (default: ``checks``).
        fast_guard: add a cell that raises unless the grader injected ``FAST = True``.
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    answers = {**ANSWERS, **(answers or {})}
    cells = [
        new_markdown_cell("# Chapter 1"),
        new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
    ]
    if fast_guard:
        cells.append(new_code_cell('if not FAST:\n    raise RuntimeError("the grader did not inject FAST = True")'))
    if checks if import_check is None else import_check:
        cells.append(new_code_cell("from course.exercises import check"))
    for exercise_id, source in answers.items():
        cells.append(new_markdown_cell(f"## Exercise {exercise_id}"))
        cells.append(new_code_cell(source, metadata={"course": {"exercise": exercise_id, "part": "solution"}}))
        if checks:
            cells.append(new_code_cell(f'check("{exercise_id}", {NAMES[exercise_id]})',
                                       metadata={"course": {"exercise": exercise_id, "part": "check"}}))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb
