"""What every zoo entry states about its paper (the per-chapter tests check the numbers)."""

from course.models import zoo

#: Oracle: the papers. EfficientFormerV2 (ICCV 2023, Table 2) and RepViT (CVPR 2024; the authors'
#: checkpoints are the ``*_distill_300e`` ones) report top-1 trained with a RegNetY-16GF teacher,
#: DeiT's recipe. None of the others used a teacher for the row the zoo cites: the CNN papers
#: (SqueezeNet, MobileNet V1-V4, ShuffleNet V1/V2, MnasNet, RepVGG), MobileOne and FastViT (their
#: distilled rows are separate), PoolFormer, PVT v1/v2, Swin, the two EfficientViTs, and DeiT's
#: ViT-S/B without the distillation token.
DISTILLED = {
    "efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2",
    "repvit_m0_9", "repvit_m0_9_deploy", "repvit_m1_0", "repvit_m1_0_deploy",
}


def test_every_paper_says_whether_its_top1_was_distilled():
    papers = {name: zoo[name].paper for name in zoo if zoo[name].paper is not None}
    assert set(papers) == set(zoo)  # every zoo model cites a paper
    assert {name: p.distilled for name, p in papers.items() if not isinstance(p.distilled, bool)} == {}
    assert {name for name, p in papers.items() if p.distilled} == DISTILLED
    for name in DISTILLED:
        assert "distillation" in papers[name].citation, name  # the citation says so too
