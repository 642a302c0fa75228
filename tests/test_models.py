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
