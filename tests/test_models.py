"""Model output shapes, the named output layer HiCS-FL reads, and models built from the model group."""

from __future__ import annotations

import pytest
import torch

from conftest import make_config
from fedsim.errors import ConfigError
from fedsim.experiment import model_factory_for
from fedsim.models import FmnistCnnReference, Mlp, output_layer_names, paper_network


@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda s: paper_network(s, 10, "digits"), (64,)),
        (lambda s: Mlp(s, 10, hidden=[32, 16]), (20,)),
        (lambda s: paper_network(s, 10, "fmnist"), (1, 28, 28)),
        (lambda s: FmnistCnnReference(s, 10), (1, 28, 28)),
        (lambda s: paper_network(s, 10, "cifar10"), (3, 32, 32)),
    ],
)
def test_output_shape_and_output_layer(build, shape):
    model = build(shape)
    assert model(torch.zeros(3, *shape)).shape == (3, 10)
    weight, bias = output_layer_names()
    state = model.state_dict()
    assert state[bias].shape == (10,)
    assert state[weight].shape[0] == 10


class _Data:
    name, input_shape, num_classes = "digits", (64,), 10


@pytest.mark.parametrize("model", ["auto", "mlp"])
def test_model_group_builds_by_target(model):
    factory = model_factory_for(make_config([f"model={model}"]), _Data())
    assert isinstance(factory(), Mlp)


def test_model_that_does_not_fit_the_input_is_one_config_error():
    with pytest.raises(ConfigError, match="FmnistCnn does not fit dataset digits"):
        model_factory_for(make_config(["model=fmnist_cnn"]), _Data())


class NoHead(torch.nn.Module):
    """A user's network whose logits layer is not named ``head``."""

    def __init__(self, input_shape, num_classes) -> None:
        super().__init__()
        self.flat = torch.nn.Flatten()
        self.out = torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)

    def forward(self, x):
        return self.out(self.flat(x))


def test_a_model_without_the_output_layer_is_refused_at_start_naming_the_layer():
    with pytest.raises(ConfigError, match=r"model: NoHead has no output layer 'head' \(head.weight, head.bias "
                                          r"missing\); name its last Linear layer head"):
        model_factory_for(make_config([f"model._target_={__name__}.NoHead"]), _Data())


def test_the_reference_cnn_takes_the_authors_initialisation_gain_when_asked():
    torch.manual_seed(0)
    default = FmnistCnnReference()
    torch.manual_seed(0)
    authors = FmnistCnnReference(init_gain="relu")
    for (name, a), (_, b) in zip(default.state_dict().items(), authors.state_dict().items()):
        if name.endswith("weight") and a.dim() > 1:  # conv and linear weights: sqrt(2) larger, same draws
            assert torch.allclose(b, a * 2 ** 0.5, rtol=1e-5), name
    with pytest.raises(ValueError, match="init_gain"):
        FmnistCnnReference(init_gain="tanh")
