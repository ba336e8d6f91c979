"""Every zoo model with a twin (timm or torchvision) against that twin.

Oracle: the twin itself. Its weights and batch-norm statistics are seeded random values, every
conv and linear layer scaled to unit output deviation on a seeded example (so that deep
transformers and re-parameterizable branches keep activations of order one); they are copied
into the course model by the one copier (:func:`course.models.load_twin_weights`, through the
model file's documented name mapping); then, in eval mode on a seeded input, both must have
the same number of parameters and outputs within 1e-5.
"""

import pytest
import torch

from course.models import create_model, list_models, load_twin_weights, zoo
from course.models.twins import copy_state_by_name, create_twin

#: Small enough for ``make test-fast``; every other twin is marked slow.
FAST = {"squeezenet1_1", "mobilenetv3_small_100", "shufflenet_v2_x0_5", "mobilenetv4_conv_small", "efficientvit_m0"}
TWINNED = [name for name in list_models() if zoo[name].twin]


def test_every_twin_has_a_mapping_and_the_fast_ones_exist():
    assert FAST <= set(TWINNED)
    for name in list_models():
        assert (zoo[name].twin_mapping is not None) == (zoo[name].twin is not None), name


def random_twin(name, randomize, example):
    """``name``'s twin with seeded random weights, scaled to unit output deviation of every conv
    and linear layer on ``example`` (:func:`course.equivalence.randomize_weights`). A deploy-time
    twin is a random train-time twin re-parameterized by timm: random numbers in its one conv per
    block would be weights no training gives (MobileOne-S4's output then hardly depends on its
    input)."""
    entry = zoo[name]
    if not entry.deploy:
        return randomize(create_twin(entry), seed=1, example=example)
    from timm.utils import reparameterize_model

    train_twin = create_twin(zoo[name.removesuffix("_deploy")])
    return reparameterize_model(randomize(train_twin, seed=1, example=example))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in TWINNED]
)
def test_same_parameters_and_outputs_as_the_twin(name, seeded, n_params, randomize):
    size = zoo[name].input_size
    model, twin = create_model(name).eval(), random_twin(name, randomize, seeded(2, 3, size, size, seed=3))
    assert n_params(model) == n_params(twin)
    load_twin_weights(model, twin, name)
    x = seeded(2, 3, size, size, seed=2)
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


def test_the_randomizer_keeps_every_layer_at_unit_deviation_on_the_example(seeded):
    """Oracle: each layer's output measured by hooks. A plain stack of 24 linear layers doubles
    its variance at every layer under He's rule (no ReLU halves it here); with ``example`` every
    layer's output has standard deviation 1 on it, and the weights stay seeded random values."""
    from course.equivalence import randomize_weights

    def stack():
        return torch.nn.Sequential(*(torch.nn.Linear(64, 64) for _ in range(24)))

    def output_stds(model, x):
        stds = []
        hooks = [m.register_forward_hook(lambda m, i, out: stds.append((out - m.bias).std().item())) for m in model]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        return stds

    x = seeded(256, 64, seed=4)
    assert output_stds(randomize_weights(stack(), seed=0), x)[-1] > 1e3  # exploded
    model = randomize_weights(stack(), seed=0, example=x)
    assert output_stds(model, x) == pytest.approx([1.0] * 24, rel=1e-4)
    again = randomize_weights(stack(), seed=0, example=x)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other = randomize_weights(stack(), seed=1, example=x)
    assert not torch.equal(model[0].weight, other[0].weight)
    assert output_stds(model, seeded(256, 64, seed=5)) == pytest.approx([1.0] * 24, rel=0.1)  # a new input too
