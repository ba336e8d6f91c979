"""The course's training recipe: a small, readable, seeded loop for 32x32 classifiers on the CPU.

Recipe (what "trained with the course recipe" means in Chapter 9): AdamW (learning rate
``lr``, weight decay 5e-4), a one-cycle learning-rate schedule over all steps, mini-batches of
``batch_size`` drawn in a seeded order, random shifts of up to 2 pixels as the only
augmentation, cross-entropy on the labels, or with a ``teacher`` the distillation loss of
:func:`course.compression.distillation.distillation_loss` (the teacher sees the same shifted
batch as the student: Beyer et al.'s "consistent" teaching).

>>> import torch
>>> from course.data import digits
>>> from course.train import fit
>>> torch.manual_seed(0)  # doctest: +SKIP
>>> result = fit(model, digits(), epochs=5)  # doctest: +SKIP
>>> print(result)  # doctest: +SKIP
test accuracy 97.1% | 4.2 s training, 5 epochs, 1,610 images/s, 2 threads
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TrainResult", "evaluate", "fit", "predict", "shift"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` reports.

    Attributes:
        accuracy: top-1 on the test split after training, in %.
        train_s: wall-clock seconds of the training loop (evaluation excluded).
        images_per_s: training images processed per second (forward + backward + step).
        epochs, batch_size, threads, seed: the setting.
        losses: mean training loss of each epoch.
    """

    accuracy: float
    train_s: float
    images_per_s: float
    epochs: int
    batch_size: int
    threads: int
    seed: int
    losses: Tuple[float, ...]

    def __str__(self) -> str:
        return (f"test accuracy {self.accuracy:.1f}% | {self.train_s:.1f} s training, {self.epochs} epochs, "
                f"{self.images_per_s:,.0f} images/s, {self.threads} thread{'s' if self.threads != 1 else ''}")


def shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image of ``x`` ``(B, C, H, W)`` by its own random offset in
    ``[-max_shift, max_shift]`` pixels (both axes), padding with the border values."""
    if max_shift == 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, None, :, None]  # (B, 1, H, 1): source row of each output row
    cols = (dx[:, None] + torch.arange(W))[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(B)[:, None, None, None], torch.arange(C)[None, :, None, None], rows, cols]


def _heads(output) -> Tuple[Tensor, ...]:
    """A model's logits as a tuple: one tensor, or several heads (an early-exit model)."""
    return tuple(output) if isinstance(output, (tuple, list)) else (output,)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """Logits ``(n, classes)`` of ``model`` in eval mode on ``x`` ``(n, 3, H, W)``, by batches
    (the model's training flag is restored). A model with several heads (a tuple of logits)
    is judged by its last, final head."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([_heads(model(x[i:i + batch_size]))[-1] for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in %."""
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"x and y must be non-empty and of the same length, got {len(x)} and {len(y)}")
    return 100.0 * int((predict(model, x, batch_size).argmax(1) == y).sum()) / len(y)


def fit(
    model: nn.Module,
    data,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    max_shift: int = 2,
    teacher: Optional[nn.Module] = None,
    temperature: float = 4.0,
    alpha: float = 0.9,
    threads: Optional[int] = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place on ``data`` (a :class:`course.data.ImageData`) with the course
    recipe (see the module docstring), then measure its test accuracy.

    Args:
        model: any classifier ``(B, 3, H, W) -> (B, classes)`` (or a tuple of such logits, one
            per head: the loss is the sum over the heads); initialise it seeded
            (``torch.manual_seed(s)`` before building it) for a reproducible run.
        epochs, batch_size, lr: the schedule (``lr`` is the one-cycle peak).
        seed: seeds the batch order and the shifts.
        max_shift: random shift augmentation, in pixels (0: none).
        teacher: a trained model: train with the distillation loss (soft targets at
            ``temperature``, weight ``alpha`` on them, ``1 - alpha`` on the labels).
        threads: CPU threads during training (restored afterwards); ``None`` keeps the current.
        progress: show a progress bar (tqdm) per epoch; leave it off in scripts and tests.

    Returns:
        A :class:`TrainResult` (test accuracy, training seconds, images/s, losses).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    from course.compression.distillation import distillation_loss

    x, y = data.train_x, data.train_y
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    if teacher is not None:
        teacher.eval()
    previous_threads = torch.get_num_threads()
    losses = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        model.train()
        start = time.perf_counter()
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            batches = range(steps_per_epoch)
            if progress:
                from tqdm.auto import tqdm

                batches = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
            total = 0.0
            for step in batches:
                index = order[step * batch_size:(step + 1) * batch_size]
                xb, yb = shift(x[index], max_shift, generator), y[index]
                heads = _heads(model(xb))
                if teacher is None:
                    loss = sum(F.cross_entropy(logits, yb) for logits in heads)
                else:
                    with torch.no_grad():
                        soft = _heads(teacher(xb))[-1]
                    loss = sum(distillation_loss(logits, soft, yb, temperature, alpha) for logits in heads)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(index)
            losses.append(total / len(x))
        train_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
        model.eval()
    accuracy = evaluate(model, data.test_x, data.test_y)
    return TrainResult(accuracy=accuracy, train_s=train_s, images_per_s=epochs * len(x) / train_s, epochs=epochs,
                       batch_size=batch_size, threads=used_threads, seed=seed, losses=tuple(losses))
