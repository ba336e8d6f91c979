"""Every zoo model with a twin (timm or torchvision) against that twin.

Oracle: the twin itself. Its weights and batch-norm statistics are seeded random values; they
are copied into the course model by the one copier (:func:`course.models.load_twin_weights`,
through the model file's documented name mapping); then, in eval mode on a seeded input,
both must have the same number of parameters and outputs within 1e-5.
"""

import pytest
import torch

from course.models import create_model, list_models, load_twin_weights, zoo
from course.models.twins import copy_state_by_name, create_twin

#: Small enough for ``make test-fast``; every other twin is marked slow.
FAST = {"squeezenet1_1", "mobilenetv3_small_100", "shufflenet_v2_x0_5"}
TWINNED = [name for name in list_models() if zoo[name].twin]


def test_every_twin_has_a_mapping_and_the_fast_ones_exist():
    assert FAST <= set(TWINNED)
    for name in list_models():
        assert (zoo[name].twin_mapping is not None) == (zoo[name].twin is not None), name


def random_twin(name, randomize):
    """``name``'s twin with seeded random weights. A deploy-time twin is a random train-time twin
    re-parameterized by timm: random numbers in its one conv per block would be weights no
    training gives (MobileOne-S4's output then hardly depends on its input)."""
    entry = zoo[name]
    if not entry.deploy:
        return randomize(create_twin(entry), seed=1)
    from timm.utils import reparameterize_model

    return reparameterize_model(randomize(create_twin(zoo[name.removesuffix("_deploy")]), seed=1))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in TWINNED]
)
def test_same_parameters_and_outputs_as_the_twin(name, seeded, n_params, randomize):
    entry = zoo[name]
    model, twin = create_model(name).eval(), random_twin(name, randomize)
    assert n_params(model) == n_params(twin)
    load_twin_weights(model, twin, name)
    x = seeded(2, 3, entry.input_size, entry.input_size, seed=2)
    with torch.no_grad():
        ours, theirs = model(x), twin(x)
    assert ours.shape == theirs.shape == (2, 1000)
    assert (theirs[0] - theirs[1]).abs().max() > 1e-3  # the output depends on the input
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_the_copier_names_what_does_not_fit(randomize):
    """Strict both ways: a tensor left out, a tensor too many and a wrong shape each raise,
    naming the tensor; two swapped tensors of one shape change the outputs."""
    model, twin = create_model("squeezenet1_1").eval(), randomize(create_twin(zoo["squeezenet1_1"]))
    mapping = zoo["squeezenet1_1"].twin_mapping(model, twin)
    with pytest.raises(ValueError, match="features.0.bias"):
        copy_state_by_name(model, twin, {k: v for k, v in mapping.items() if v != "features.0.bias"})
    with pytest.raises(ValueError, match=r"shape mismatch: course features.fire2.squeeze.weight \(16, 64, 1, 1\)"):
        copy_state_by_name(model, twin, {**mapping, "features.fire2.squeeze.weight": "features.4.squeeze.weight",
                                         "features.fire3.squeeze.weight": "features.3.squeeze.weight"})
    with pytest.raises(ValueError, match="no tensor 'features.99.weight'"):
        copy_state_by_name(model, twin, {**mapping, "features.conv1.weight": "features.99.weight"})
    swapped = {**mapping, "features.fire4.expand1x1.bias": "features.7.expand1x1.bias",
               "features.fire5.expand1x1.bias": "features.6.expand1x1.bias"}
    copy_state_by_name(model, twin, swapped)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x) - twin(x)).abs().max() > 1e-4


def test_a_model_without_twin_is_refused():
    with pytest.raises(ValueError, match="has no twin"):
        load_twin_weights(create_model("pvt_tiny"), create_model("pvt_tiny"), "pvt_tiny")
