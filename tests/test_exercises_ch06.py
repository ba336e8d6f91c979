"""Chapter 6's build exercise 6.1: a MetaFormer block with a pluggable mixer.

The right answer passes with the pooling, identity and attention mixers (weights copied by
name from the course's ``MetaFormerBlock``); each typical mistake gets its own message.
"""

import pytest
from torch import nn

from course.blocks.metaformer import ConvMlp
from course.exercises import check
from course.exercises.ch06 import metaformer_block_variant


class Pool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


class Block(nn.Module):
    def __init__(self, dim, mixer=None, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = mixer if mixer is not None else Pool()
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.token_mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def test_metaformer_block_answer_passes():
    result = check("6.1", Block, quiet=True)
    assert result.passed, result.message


@pytest.mark.parametrize("kind, words", [
    ("no_mixer_residual", "x = x + token_mixer(norm1(x))"),
    ("no_mlp_residual", "return x + mlp(norm2(x))"),
    ("pool_no_subtract", "returns pool(x) - x, not pool(x)"),
    ("mixer_before_norm", "pre-norm"),
])
def test_metaformer_block_mistakes_get_their_message(kind, words):
    result = check("6.1", metaformer_block_variant(kind), quiet=True)
    assert not result.passed and words in result.message, result.message


def test_pool_mistake_fails_only_the_pooling_cases():
    result = check("6.1", metaformer_block_variant("pool_no_subtract"), quiet=True)
    assert "fails every case with mixer='pool'" in result.message
