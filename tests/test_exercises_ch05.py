"""Chapter 5's build exercises: the shifted-window mask (5.1) and SRA's forward (5.2).

The right answers pass; each typical mistake gets its own message. Oracles: the course's
``shifted_window_mask`` (tested against timm in test_ch05.py) and ``SpatialReductionMixer``.
"""

import pytest
import torch
from torch import nn

from course.blocks.attention import window_partition
from course.exercises import check
from course.exercises.ch05 import _sra_variant


def _labels_mask(labels, window):
    win = window_partition(labels.view(1, *labels.shape, 1), window).flatten(1)
    return win[:, :, None] != win[:, None, :]


def _image_regions(h, w, window, shift):
    """Regions of the original image (the first `shift` rows/columns wrap around)."""
    ry = torch.bucketize(torch.arange(h), torch.tensor([shift, h - window + shift]), right=True)
    rx = torch.bucketize(torch.arange(w), torch.tensor([shift, w - window + shift]), right=True)
    return ry[:, None] * 3 + rx[None, :]


def window_attention_mask(h, w, window, shift):
    """A learner's answer, written independently of the course's (labels on the rolled map)."""
    return _labels_mask(torch.roll(_image_regions(h, w, window, shift), (-shift, -shift), (0, 1)), window)


def test_mask_answer_passes_and_additive_masks_are_accepted():
    assert check("5.1", window_attention_mask, quiet=True).passed
    additive = check("5.1", lambda *a: window_attention_mask(*a).float() * -100.0, quiet=True)
    assert additive.passed, additive.message


@pytest.mark.parametrize("wrong, words", [
    (lambda h, w, M, s: _labels_mask(torch.roll(_image_regions(h, w, M, s), (s, s), (0, 1)), M), "wrong sign"),
    (lambda h, w, M, s: _labels_mask(_image_regions(h, w, M, s), M), "without the cyclic roll"),
    (lambda h, w, M, s: torch.roll(window_attention_mask(h, w, M, s), 1, 0), "off by one window"),
    (lambda h, w, M, s: ~window_attention_mask(h, w, M, s), "inverted"),
    (lambda h, w, M, s: torch.zeros((h // M) * (w // M), M * M, M * M, dtype=torch.bool), "nothing is masked"),
    (lambda h, w, M, s: window_attention_mask(h, w, M, s)[:, 0], "one mask per window"),
])
def test_mask_mistakes_get_their_message(wrong, words):
    result = check("5.1", wrong, quiet=True)
    assert not result.passed and words in result.message, result.message


class SRA(nn.Module):
    def __init__(self, dim, heads, sr_ratio):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        B, C, h, w = x.shape
        d = C // self.heads
        tokens = x.flatten(2).transpose(1, 2)
        reduced = self.norm(self.sr(x).flatten(2).transpose(1, 2)) if self.sr_ratio > 1 else tokens
        q = self.q(tokens).reshape(B, h * w, self.heads, d).transpose(1, 2)
        k, v = self.kv(reduced).reshape(B, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, h * w, C)).transpose(1, 2).reshape(B, C, h, w)


def test_sra_answer_passes():
    result = check("5.2", SRA, quiet=True)
    assert result.passed, result.message


@pytest.mark.parametrize("kind, words", [
    ("reduce_all", "queries keep all h·w tokens"),
    ("one_head", "split q, k and v into `heads` heads"),
    ("scale_C", "1/sqrt(d)"),
])
def test_sra_mistakes_get_their_message(kind, words):
    result = check("5.2", _sra_variant(kind), quiet=True)
    assert not result.passed and words in result.message, result.message


def test_sra_with_other_layer_names_is_told_to_rename():
    class Renamed(SRA):
        def __init__(self, dim, heads, sr_ratio):
            super().__init__(dim, heads, sr_ratio)
            self.query = self.q
            del self.q

    result = check("5.2", Renamed, quiet=True)
    assert not result.passed and "cannot be copied by name" in result.message
