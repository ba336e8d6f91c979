"""Small image datasets that load without any download, as tensors in memory.

Every dataset is returned as an :class:`ImageData`: ``(n, 3, 32, 32)`` float32 images,
normalised per channel with the *training* split's mean and standard deviation, and int64
labels. Three sources:

* :func:`digits` -- scikit-learn's handwritten digits (real data shipped inside scikit-learn:
  1,797 grey 8x8 images of 10 classes), upsampled to 32x32 and repeated on 3 channels. The split
  is fixed and documented: within each class, in the order scikit-learn stores the images,
  every 4th image (index 3, 7, 11, ... within its class) is a test image: 1,352 train / 445 test.
* :func:`shapes` -- a **synthetic** dataset the course generates from a seed: 10 classes of
  shapes and textures at 32x32, with colour, position, scale, rotation, texture frequency and
  noise drawn at random (see :data:`SHAPE_CLASSES`). The same seed gives the same images.
* :func:`torchvision_folder` -- a dataset already on disk in torchvision's formats
  (``CIFAR10(root, download=False)`` or an ``ImageFolder``), for a learner who has one.

:func:`load` picks one by name: ``load("digits")``, ``load("shapes")``,
``load("cifar10", root="~/data")``, ``load("imagefolder", root="~/data/pets")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DATASETS",
    "SHAPE_CLASSES",
    "ImageData",
    "digits",
    "load",
    "shapes",
    "torchvision_folder",
]

#: Names :func:`load` accepts.
DATASETS = ("digits", "shapes", "cifar10", "imagefolder")

#: The classes of :func:`shapes`, in label order.
SHAPE_CLASSES = (
    "disk", "square", "triangle", "ring", "cross",  # plain shapes, one colour on a background
    "stripes", "checkerboard", "dots", "bullseye", "plaid",  # textures inside a disk or a square
)


@dataclass(frozen=True)
class ImageData:
    """A train/test pair of image tensors in memory.

    Attributes:
        name: e.g. ``"digits"``.
        train_x, test_x: ``(n, 3, H, W)`` float32, normalised with the training split's
            per-channel mean and std (``mean``, ``std``).
        train_y, test_y: ``(n,)`` int64 labels in ``[0, len(classes))``.
        classes: class names, in label order.
        mean, std: the per-channel statistics used to normalise (of the raw [0, 1] images).
        description: where the data comes from and how it was split (printed by notebooks).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: Tuple[str, ...]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    description: str

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """``(3, H, W)`` of one image."""
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n_train: Optional[int] = None, n_test: Optional[int] = None) -> "ImageData":
        """The first ``n_train`` training and ``n_test`` test images (``None``: all of them).

        The images are already in a fixed order, so a subset is reproducible.
        """
        for name, n in (("n_train", n_train), ("n_test", n_test)):
            if n is not None and (not isinstance(n, int) or n < 1):
                raise ValueError(f"{name} must be a positive int or None, got {n!r}")
        train = slice(None, n_train)
        test = slice(None, n_test)
        return replace(self, train_x=self.train_x[train], train_y=self.train_y[train],
                       test_x=self.test_x[test], test_y=self.test_y[test])

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}: {len(self.train_y)} train / {len(self.test_y)} test images of "
                f"{'x'.join(map(str, self.image_shape))}, {self.num_classes} classes)")


def _normalised(name, train_x, train_y, test_x, test_y, classes, description) -> ImageData:
    """Normalise both splits with the training split's per-channel mean and std."""
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    scale = lambda x: ((x - mean[:, None, None]) / std[:, None, None]).contiguous()  # noqa: E731
    return ImageData(name, scale(train_x), train_y.long(), scale(test_x), test_y.long(), tuple(classes),
                     tuple(float(v) for v in mean), tuple(float(v) for v in std), description)


# --- scikit-learn's digits ---------------------------------------------------------------------


def digits(size: int = 32) -> ImageData:
    """scikit-learn's handwritten digits, upsampled from 8x8 to ``size`` x ``size`` (bilinear).

    Real data shipped inside scikit-learn (no download): 1,797 images, values 0..16 scaled to
    [0, 1], grey repeated on 3 channels so that every course model takes every dataset.
    Split: within each class, in scikit-learn's order, every 4th image (index 3, 7, ... within
    the class) is a test image: 1,352 train / 445 test images.
    """
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    images = images.expand(-1, 3, -1, -1)
    rank = torch.zeros_like(labels)  # index of each image within its class
    for c in range(10):
        where = (labels == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    test = rank % 4 == 3
    return _normalised(
        "digits", images[~test], labels[~test], images[test], labels[test], [str(d) for d in range(10)],
        f"scikit-learn's handwritten digits (UCI optdigits test set: 1,797 images, 8x8, 0..16), bilinear "
        f"upsampling to {size}x{size}, grey on 3 channels; test = every 4th image of each class "
        f"({int((~test).sum())} train / {int(test.sum())} test)",
    )


# --- the course's synthetic shapes and textures -------------------------------------------------


def _grid(size: int) -> Tuple[Tensor, Tensor]:
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def _shape_masks(label: int, u: Tensor, v: Tensor, r: Tensor, freq: Tensor, region: Tensor) -> Tensor:
    """Foreground mask ``(n, S, S)`` of class ``label``; ``u, v`` are rotated coordinates around
    the centre, ``r`` the radius, ``freq`` a texture period in pixels, ``region`` 0 (disk) / 1 (square)."""
    d = torch.sqrt(u * u + v * v)
    if label == 0:  # disk
        return d < r
    if label == 1:  # square
        return torch.maximum(u.abs(), v.abs()) < r * 0.85
    if label == 2:  # equilateral triangle: three half-planes at 120 degrees
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):
            a = 2 * math.pi * k / 3
            inside &= (u * math.cos(a) + v * math.sin(a)) < r * 0.5
        return inside
    if label == 3:  # ring
        return (d < r) & (d > r * 0.55)
    if label == 4:  # cross
        arm = r * 0.33
        return ((u.abs() < arm) & (v.abs() < r)) | ((v.abs() < arm) & (u.abs() < r))
    # textures inside a disk or a square region
    inside = torch.where(region.bool(), torch.maximum(u.abs(), v.abs()) < r * 0.85, d < r)
    phase = 2 * math.pi / freq
    if label == 5:  # stripes
        pattern = torch.sin(u * phase) > 0
    elif label == 6:  # checkerboard
        pattern = (torch.sin(u * phase) > 0) ^ (torch.sin(v * phase) > 0)
    elif label == 7:  # dots on a grid
        pattern = (torch.cos(u * phase) + torch.cos(v * phase)) > 1.0
    elif label == 8:  # bullseye: concentric rings
        pattern = torch.sin(d * phase) > 0
    elif label == 9:  # plaid: thin lines in both directions
        pattern = (torch.cos(u * phase) > 0.7) | (torch.cos(v * phase) > 0.7)
    else:
        raise ValueError(f"label must be in 0..9, got {label}")
    return inside & pattern


def _render(n: int, size: int, generator: torch.Generator, noise: float) -> Tuple[Tensor, Tensor]:
    """``n`` images ``(n, 3, size, size)`` in [0, 1] and their labels (classes in turn)."""
    labels = torch.arange(n) % len(SHAPE_CLASSES)
    labels = labels[torch.randperm(n, generator=generator)]

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    r = uniform(0.17, 0.40) * size  # radius: 5..13 px at 32x32
    cx = r + uniform(0, 1) * (size - 2 * r)  # centre: the shape stays (mostly) inside the image
    cy = r + uniform(0, 1) * (size - 2 * r)
    angle = uniform(0, 2 * math.pi)
    freq = uniform(3.0, 6.0)  # texture period, px
    region = (torch.rand(n, generator=generator) < 0.5).float()
    background = uniform(0, 1, 3)
    foreground = uniform(0, 1, 3)
    # at least some contrast between the two colours (else the image is blank)
    close = (foreground - background).abs().sum(dim=1) < 0.6
    foreground[close] = 1.0 - background[close]
    x, y = _grid(size)
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for label in range(len(SHAPE_CLASSES)):
        pick = labels == label
        if pick.any():
            mask[pick] = _shape_masks(label, u[pick], v[pick], r[pick, None, None], freq[pick, None, None],
                                      region[pick, None, None])
    images = torch.where(mask[:, None], foreground[:, :, None, None], background[:, :, None, None])
    # an illumination gradient and pixel noise
    tilt = uniform(-0.25, 0.25, 2)
    images = images + (tilt[:, 0, None, None] * (x / size - 0.5) + tilt[:, 1, None, None] * (y / size - 0.5))[:, None]
    images = images + noise * torch.randn(images.shape, generator=generator)
    return images.clamp(0, 1), labels


def shapes(n_train: int = 6000, n_test: int = 2000, size: int = 32, noise: float = 0.15, seed: int = 0) -> ImageData:
    """The course's synthetic dataset: 10 classes of shapes and textures (:data:`SHAPE_CLASSES`).

    Each image draws at random: the class (balanced), a background and a foreground colour (so
    colour says nothing about the class), the centre, the radius (17%..40% of the image), the
    rotation, a texture period (3..6 px), a disk or square region for textures, a linear
    illumination gradient, and Gaussian pixel noise of std ``noise``. Synthetic data, made to be
    hard enough that small models differ in accuracy; not a benchmark of anything else.

    The training and test images come from two generators seeded with ``seed`` and ``seed + 1``,
    so ``n_test`` does not change the training images (and vice versa).
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be in [0, 1], got {noise!r}")
    train_x, train_y = _render(n_train, size, torch.Generator().manual_seed(seed), noise)
    test_x, test_y = _render(n_test, size, torch.Generator().manual_seed(seed + 1), noise)
    return _normalised(
        "shapes", train_x, train_y, test_x, test_y, SHAPE_CLASSES,
        f"synthetic (generated by course.data.shapes, seed {seed}): 10 classes of shapes and textures, "
        f"{size}x{size}, random colours, position, scale, rotation, texture period, illumination gradient, "
        f"noise std {noise}; {n_train} train / {n_test} test",
    )


# --- datasets on disk in torchvision's formats ------------------------------------------------


def _resized_uint8(images: Sequence, size: int) -> Tensor:
    """PIL images -> ``(n, 3, size, size)`` uint8 (RGB, bilinear resize)."""
    import numpy as np
    from PIL import Image

    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for i, image in enumerate(images):
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        out[i] = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def _first(n: int, limit: Optional[int]) -> int:
    return n if limit is None else min(n, limit)


def torchvision_folder(kind: str, root, size: int = 32, limit: Optional[int] = None) -> ImageData:
    """A dataset already on disk, in torchvision's format; nothing is downloaded.

    Args:
        kind: ``"cifar10"``: ``torchvision.datasets.CIFAR10(root, train=..., download=False)``
            (the ``cifar-10-batches-py`` folder inside ``root``); ``"imagefolder"``:
            ``root/train/<class>/*`` and ``root/test/<class>/*`` read with
            ``torchvision.datasets.ImageFolder`` (without those two sub-folders, ``root/<class>/*``
            is split like :func:`digits`: every 4th image of each class is a test image).
        root: the folder.
        size: images are resized to ``size`` x ``size`` (bilinear).
        limit: at most this many images per split (the first ones, in the dataset's order),
            to keep the tensors small; ``None`` keeps all.

    Raises:
        ValueError: an unknown ``kind``; FileNotFoundError: nothing usable under ``root``.
    """
    import torchvision

    root = Path(root).expanduser()
    if kind == "cifar10":
        splits = []
        for train in (True, False):
            try:
                ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
            except RuntimeError as error:  # "Dataset not found or corrupted"
                raise FileNotFoundError(
                    f"no CIFAR-10 under {root} ({error}); put the extracted cifar-10-batches-py folder there "
                    "(this course never downloads)") from None
            n = _first(len(ds.targets), limit)
            x = torch.from_numpy(ds.data[:n]).permute(0, 3, 1, 2).contiguous()
            if size != x.shape[-1]:
                x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False).round().to(torch.uint8)
            splits.append((x, torch.tensor(ds.targets[:n])))
        classes = ds.classes
        description = f"CIFAR-10 from {root} (torchvision format, download=False)"
    elif kind == "imagefolder":
        if not root.is_dir():
            raise FileNotFoundError(f"no folder {root}")
        if (root / "train").is_dir() and (root / "test").is_dir():
            parts = [torchvision.datasets.ImageFolder(str(root / s)) for s in ("train", "test")]
            if parts[0].classes != parts[1].classes:
                raise ValueError(f"{root}/train and {root}/test have different classes")
            splits = []
            for ds in parts:
                n = _first(len(ds), limit)
                splits.append((_resized_uint8([ds[i][0] for i in range(n)], size), torch.tensor(ds.targets[:n])))
            classes = parts[0].classes
            description = f"ImageFolder {root}/train and {root}/test"
        else:
            ds = torchvision.datasets.ImageFolder(str(root))
            targets = torch.tensor(ds.targets)
            rank = torch.zeros_like(targets)
            for c in range(len(ds.classes)):
                where = (targets == c).nonzero().flatten()
                rank[where] = torch.arange(len(where))
            test = rank % 4 == 3
            splits = []
            for keep in (~test, test):
                index = keep.nonzero().flatten()[: _first(int(keep.sum()), limit)]
                splits.append((_resized_uint8([ds[int(i)][0] for i in index], size), targets[index]))
            classes = ds.classes
            description = f"ImageFolder {root} (test = every 4th image of each class)"
    else:
        raise ValueError(f"kind must be 'cifar10' or 'imagefolder', got {kind!r}")
    (train_x, train_y), (test_x, test_y) = splits
    return _normalised(kind, train_x.float() / 255, train_y, test_x.float() / 255, test_y, classes,
                       f"{description}, resized to {size}x{size}; {len(train_y)} train / {len(test_y)} test")


def load(name: str, root=None, **kwargs) -> ImageData:
    """One of :data:`DATASETS` by name: ``load("digits")``, ``load("shapes", n_train=2000)``,
    ``load("cifar10", root="~/data")``, ``load("imagefolder", root="~/data/pets")``.

    Keyword arguments go to :func:`digits`, :func:`shapes` or :func:`torchvision_folder`.
    """
    if name == "digits":
        return digits(**kwargs)
    if name == "shapes":
        return shapes(**kwargs)
    if name in ("cifar10", "imagefolder"):
        if root is None:
            raise ValueError(f"dataset {name!r} needs root=, the folder that holds it")
        return torchvision_folder(name, root, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")
