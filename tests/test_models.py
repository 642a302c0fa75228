"""Model output shapes and the named output layer HiCS-FL reads."""

from __future__ import annotations

import pytest
import torch

from fedsim.errors import ConfigError
from fedsim.models import build_model, output_layer_names


@pytest.mark.parametrize(
    "name,dataset,shape",
    [
        ("auto", "digits", (64,)),
        ("mlp", "synthetic", (20,)),
        ("auto", "fmnist", (1, 28, 28)),
        ("fmnist_cnn_reference", "fmnist", (1, 28, 28)),
        ("auto", "cifar10", (3, 32, 32)),
    ],
)
def test_output_shape_and_output_layer(name, dataset, shape):
    model = build_model(name, dataset, shape, 10)
    assert model(torch.zeros(3, *shape)).shape == (3, 10)
    weight, bias = output_layer_names()
    state = model.state_dict()
    assert state[bias].shape == (10,)
    assert state[weight].shape[0] == 10


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="model.name"):
        build_model("resnet9000", "digits", (64,), 10)
