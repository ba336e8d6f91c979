"""Chapter 9: pruning, quantization, distillation, search and early exit, one module each.

* :mod:`~course.compression.nets` -- the chapter's small classifiers (ResNetLite, SearchNet,
  EarlyExitNet);
* :mod:`~course.compression.pruning` -- unstructured magnitude pruning and structured channel
  pruning (Torch-Pruning), sensitivity scans;
* :mod:`~course.compression.quantization` -- scale and zero point, fake quantization, integer
  arithmetic, ONNX Runtime int8 (static QDQ and dynamic), the CPU's int8 instructions;
* :mod:`~course.compression.distillation` -- Hinton's soft-target loss;
* :mod:`~course.compression.search` -- a latency lookup table and MnasNet's reward;
* :mod:`~course.compression.early_exit` -- accuracy vs average MACs as the exit threshold moves;
* :mod:`~course.compression.weights` -- the reference weights shipped with the course.

Import the submodules you need (``from course.compression import pruning``): each imports its
heavy dependencies (Torch-Pruning, ONNX Runtime) on first use.
"""
