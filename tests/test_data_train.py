"""course.data and course.train. Oracles: scikit-learn's own arrays, torch's interpolation,
hand-made folders in torchvision's formats, a per-image loop for the shift, hand-made logits."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course import data as D
from course.train import evaluate, fit, predict, shift


@pytest.fixture(scope="module")
def digits():
    return D.digits()


def _raw(ds, x):
    return x * torch.tensor(ds.std)[:, None, None] + torch.tensor(ds.mean)[:, None, None]


# --- digits -------------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_complete(digits):
    from sklearn.datasets import load_digits

    target = torch.tensor(load_digits().target)
    assert len(digits.train_y) + len(digits.test_y) == 1797
    assert (len(digits.train_y), len(digits.test_y)) == (1352, 445)
    for c in range(10):  # every 4th image of each class is a test image
        n_c = int((target == c).sum())
        assert int((digits.test_y == c).sum()) == n_c // 4
        assert int((digits.train_y == c).sum()) == n_c - n_c // 4
    assert digits.image_shape == (3, 32, 32) and digits.classes == tuple(str(d) for d in range(10))
    assert "4th image" in digits.description


def test_digits_images_are_sklearn_images_upsampled(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    first = torch.tensor(bunch.images[0], dtype=torch.float32)[None, None] / 16  # class 0, rank 0: train
    want = F.interpolate(first, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)[0, 0]
    got = _raw(digits, digits.train_x[0])
    assert int(digits.train_y[0]) == int(bunch.target[0])
    for channel in got:
        torch.testing.assert_close(channel, want, atol=1e-5, rtol=0)
    # normalised with the training split's statistics
    torch.testing.assert_close(digits.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(digits.train_x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)


def test_subset_takes_the_first_images(digits):
    small = digits.subset(10, 5)
    assert torch.equal(small.train_x, digits.train_x[:10]) and torch.equal(small.test_y, digits.test_y[:5])
    assert torch.equal(digits.subset(n_test=3).train_x, digits.train_x)
    with pytest.raises(ValueError, match="n_train"):
        digits.subset(0)


# --- shapes -------------------------------------------------------------------------------------


def test_shapes_are_seeded_balanced_and_independent_of_the_test_size():
    a = D.shapes(n_train=200, n_test=50, seed=3)
    b = D.shapes(n_train=200, n_test=50, seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    c = D.shapes(n_train=200, n_test=80, seed=3)
    raw_a, raw_c = _raw(a, a.train_x), _raw(c, c.train_x)
    torch.testing.assert_close(raw_a, raw_c, atol=1e-5, rtol=0)  # same images (normalisation is per train split)
    assert not torch.equal(D.shapes(n_train=200, n_test=50, seed=4).train_y, a.train_y)
    assert torch.bincount(a.train_y, minlength=10).tolist() == [20] * 10
    assert a.classes == D.SHAPE_CLASSES and len(a.classes) == 10
    assert "synthetic" in a.description
    raw = _raw(a, a.train_x)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


@pytest.mark.parametrize("kwargs, match", [(dict(n_train=0), "n_train"), (dict(size=8), "size"),
                                           (dict(noise=2.0), "noise")])
def test_shapes_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.shapes(**kwargs)


# --- torchvision formats ----------------------------------------------------------------------


def _png_folder(root, classes=("cat", "dog"), per_class=4, size=40):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_imagefolder_with_and_without_train_test_folders(tmp_path):
    _png_folder(tmp_path / "flat")
    flat = D.load("imagefolder", root=tmp_path / "flat")
    assert flat.classes == ("cat", "dog") and (len(flat.train_y), len(flat.test_y)) == (6, 2)
    assert flat.image_shape == (3, 32, 32)
    _png_folder(tmp_path / "split" / "train", per_class=3)
    _png_folder(tmp_path / "split" / "test", per_class=2)
    split = D.load("imagefolder", root=tmp_path / "split", size=16, limit=5)
    assert (len(split.train_y), len(split.test_y)) == (5, 4) and split.image_shape == (3, 16, 16)


def test_cifar10_from_disk_never_downloads(tmp_path, monkeypatch):
    import torchvision

    with pytest.raises(FileNotFoundError, match="never downloads"):
        D.load("cifar10", root=tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [n for n, _ in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list]
    for name in names:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    # the fake files have other checksums than the real ones: skip torchvision's md5 checks
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    ds = D.load("cifar10", root=tmp_path, limit=6)
    assert (len(ds.train_y), len(ds.test_y)) == (6, 4) and ds.classes[:2] == ("c0", "c1")
    first = torch.from_numpy(np.frombuffer(pickle.loads((folder / names[0]).read_bytes())["data"][0].tobytes(),
                                           dtype=np.uint8).reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(_raw(ds, ds.train_x[0]), first, atol=1e-5, rtol=0)


def test_load_names_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        D.load("mnist")
    with pytest.raises(ValueError, match="root"):
        D.load("cifar10")


# --- train ----------------------------------------------------------------------------------------


def test_shift_equals_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 5, 7)
    got = shift(x, 2, g)
    offsets = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for b in range(6):
        dy, dx = int(offsets[0, b]), int(offsets[1, b])
        assert torch.equal(got[b], padded[b, :, dy:dy + 5, dx:dx + 7])
    assert shift(x, 0, g) is x


class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


def test_evaluate_and_predict_on_fixed_logits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.0, 1.0]])
    model = _Fixed(logits)
    assert evaluate(model, torch.zeros(4, 1), torch.tensor([0, 1, 1, 1])) == 75.0
    assert torch.equal(predict(model, torch.zeros(4, 1), batch_size=4), logits)
    two_heads = _Fixed(None)
    two_heads.forward = lambda x: (torch.zeros(len(x), 2), logits[: len(x)])
    assert evaluate(two_heads, torch.zeros(4, 1), torch.tensor([0, 1, 0, 1])) == 100.0  # the last head counts
    with pytest.raises(ValueError, match="same length"):
        evaluate(model, torch.zeros(3, 1), torch.zeros(2))


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def test_fit_is_seeded_learns_and_reports(digits):
    small = digits.subset(400, 200)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = _tiny()
        runs.append((fit(model, small, epochs=3, batch_size=32, lr=1e-2, threads=1), model))
    (a, ma), (b, mb) = runs
    assert a.losses == b.losses and a.accuracy == b.accuracy
    assert all(torch.equal(p, q) for p, q in zip(ma.parameters(), mb.parameters()))
    assert a.losses[-1] < a.losses[0] and a.accuracy > 20.0  # chance is 10%
    assert a.epochs == 3 and a.threads == 1 and a.images_per_s > 0 and "test accuracy" in str(a)
    assert not ma.training
    with pytest.raises(ValueError, match="epochs"):
        fit(_tiny(), small, epochs=0)
