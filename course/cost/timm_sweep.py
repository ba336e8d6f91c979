"""The counter's breadth check: timm models from families the course does not implement.

The counter is tested on the zoo (models the course builds) and, here, on a sweep of timm
models the course knows nothing about: CNNs, hybrids, MLPs, window/grid/pooled attention,
focal modulation and an LSTM mixer. Each model is built with random weights and timm's fused
attention off, so that PyTorch's ``FlopCounterMode`` (which charges the fused CPU attention
kernel nothing) sees every matrix product; its MACs (``flops / 2``) are then the oracle for
the counter's. ``tests/test_count_sweep.py`` runs the sweep; ``benchmarks/run.py`` times it.

>>> len(SWEEP) >= 40 and len({family for _, family in SWEEP}) >= 25
True
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Tuple

import torch
from torch import nn

#: (timm model name, family). Families the zoo does not implement; ``tests/test_count_sweep.py``
#: checks that against ``course.models.zoo``. Small variants, so the sweep runs in minutes.
SWEEP: Tuple[Tuple[str, str], ...] = (
    # CNNs
    ("resnet10t", "ResNet"),
    ("regnetx_002", "RegNet"),
    ("ghostnet_050", "GhostNet"),
    ("efficientnet_b0", "EfficientNet"),
    ("tinynet_e", "TinyNet"),
    ("lcnet_050", "PP-LCNet"),
    ("mixnet_s", "MixNet"),
    ("hardcorenas_a", "HardCoRe-NAS"),
    ("fbnetc_100", "FBNet"),
    ("spnasnet_100", "Single-Path NAS"),
    ("rexnet_100", "ReXNet"),
    ("hgnetv2_b0", "HGNetV2"),
    ("starnet_s1", "StarNet"),
    ("fasternet_t0", "FasterNet"),
    ("densenet121", "DenseNet"),
    ("dla34", "DLA"),
    ("hrnet_w18_small", "HRNet"),
    ("cs3darknet_focus_s", "CSPNet"),
    ("ese_vovnet19b_dw", "VoVNet"),
    ("resnest14d", "ResNeSt"),
    ("selecsls42b", "SelecSLS"),
    ("dpn48b", "DPN"),
    ("nf_resnet26", "NFNet"),
    ("gernet_s", "GENet"),
    ("convnext_atto", "ConvNeXt"),
    ("convnextv2_atto", "ConvNeXt-V2"),
    ("mambaout_femto", "MambaOut"),
    # hybrids and attention
    ("mobilevit_xxs", "MobileViT"),
    ("mobilevitv2_050", "MobileViT-V2"),
    ("edgenext_xx_small", "EdgeNeXt"),
    ("levit_128s", "LeViT"),
    ("shvit_s1", "SHViT"),
    ("tiny_vit_5m_224", "TinyViT"),
    ("coat_lite_tiny", "CoaT"),
    ("crossvit_tiny_240", "CrossViT"),
    ("pit_ti_224", "PiT"),
    ("xcit_nano_12_p16_224", "XCiT"),
    ("cait_xxs24_224", "CaiT"),
    ("convit_tiny", "ConViT"),
    ("twins_svt_small", "Twins-SVT"),
    ("visformer_tiny", "Visformer"),
    ("coatnet_nano_rw_224", "CoAtNet"),
    ("maxvit_pico_rw_256", "MaxViT"),
    ("gcvit_xxtiny", "GCViT"),
    ("davit_tiny", "DaViT"),
    ("mvitv2_tiny", "MViTv2"),
    ("halonet26t", "HaloNet"),
    ("botnet26t_256", "BoTNet"),
    ("lambda_resnet26t", "LambdaNet"),
    ("volo_d1_224", "VOLO"),
    ("focalnet_tiny_srf", "FocalNet"),
    # MLPs and RNN mixers
    ("mixer_s16_224", "MLP-Mixer"),
    ("resmlp_12_224", "ResMLP"),
    ("gmlp_ti16_224", "gMLP"),
    ("sequencer2d_s", "Sequencer"),
)


@contextmanager
def _timm_fused_attention(enabled: bool):
    from timm.layers import config

    saved = config._USE_FUSED_ATTN
    config.set_fused_attn(enabled)
    try:
        yield
    finally:
        config._USE_FUSED_ATTN = saved


def build(name: str, seed: int = 0) -> Tuple[nn.Module, torch.Tensor]:
    """timm model ``name`` (random weights, eval mode, fused attention off) and an input for it.

    timm reads its fused-attention switch (``timm.layers.set_fused_attn``) when a model is
    built; the modules that keep a ``fused_attn`` flag are also set to ``False`` afterwards.
    The input is ``(1, 3, H, W)`` at the model's own input size (224 for most).
    """
    import timm

    torch.manual_seed(seed)
    with _timm_fused_attention(False):
        model = timm.create_model(name, pretrained=False).eval()
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    channels, height, width = model.pretrained_cfg.get("input_size", (3, 224, 224))
    return model, torch.randn(1, channels, height, width)


def flop_counter_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs by PyTorch's ``FlopCounterMode`` (its FLOPs / 2) for one inference forward pass.

    Runs under ``torch.no_grad()``, or with autograd on where its module tracker refuses
    ``no_grad`` (models that pass a parameter to a submodule, e.g. PiT and CaiT).
    """
    from torch.utils.flop_counter import FlopCounterMode

    for grad in (False, True):
        try:
            with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(grad):
                model(*inputs)
            return counter.get_total_flops() // 2
        except AssertionError:  # torch.utils.module_tracker: "Expected gradient function to be set"
            if grad:
                raise
    raise AssertionError("unreachable")
