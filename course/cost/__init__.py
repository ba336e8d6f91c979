"""What an operation costs: closed-form formulas and a counter that walks a real model.

>>> from course.cost import conv2d
>>> conv2d(H=56, W=56, N=64, M=64, K=3, bias=False).macs
115605504
"""

from course.cost.formulas import Cost, conv2d, conv_output_size, linear, same_padding
from course.cost.counter import count
from course.cost.layers import layer_formulas
from course.cost.report import CostReport

__all__ = ["Cost", "CostReport", "conv2d", "conv_output_size", "count", "layer_formulas", "linear", "same_padding"]
