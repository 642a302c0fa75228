"""Networks: a small MLP and the HiCS-FL paper's CNNs. The last layer is always ``head``."""

from fedsim.models.networks import (
    Cifar10Cnn,
    FmnistCnn,
    FmnistCnnReference,
    Mlp,
    build_model,
    output_layer_names,
)

__all__ = ["Mlp", "FmnistCnn", "FmnistCnnReference", "Cifar10Cnn", "build_model", "output_layer_names"]
