"""The MetaFormer token mixers by name: the one list the blocks, the formulas and Chapter 6 use.

:data:`course.blocks.metaformer.MIXERS` builds each of them, :func:`course.cost.attention.mixer`
prices each of them and :data:`course.chapters.ch06.MIXER_TABLE` names one for every model it
lists; all three take their names from :data:`MIXER_NAMES` and check names with
:func:`check_mixer_name`. Like :mod:`course.checks`, this module imports nothing.
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["MIXER_NAMES", "SEES", "check_mixer_name"]

#: Mixer name -> what each token sees (Yu et al., "MetaFormer Is Actually What You Need for
#: Vision", CVPR 2022, and the papers of each mixer; see :mod:`course.blocks.metaformer`).
SEES: Dict[str, str] = {
    "attention": "every token (ViT)",
    "window": "the M x M window (Swin)",
    "sra": "all tokens, K and V pooled R x R (PVT)",
    "pool": "its 3 x 3 neighbourhood (PoolFormer)",
    "spatial_mlp": "every token, fixed weights (ResMLP / MLP-Mixer)",
    "shift": "four neighbours, by moving channels (ShiftViT)",
    "dwconv": "its K x K neighbourhood (ConvNeXt)",
    "identity": "itself (the MetaFormer paper's baseline)",
}

#: The names, in the order the chapter's tables list them.
MIXER_NAMES: Tuple[str, ...] = tuple(SEES)


def check_mixer_name(name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless it is one of :data:`MIXER_NAMES`."""
    if name not in SEES:
        raise ValueError(f"mixer name={name!r} is not one of {list(MIXER_NAMES)}")
