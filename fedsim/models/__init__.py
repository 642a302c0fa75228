"""Networks: a small MLP and the HiCS-FL paper's CNNs. The last layer is always ``head``."""

from fedsim.models.networks import (
    PAPER_NETWORKS,
    Cifar10Cnn,
    FmnistCnn,
    FmnistCnnReference,
    Mlp,
    output_layer_names,
    paper_network,
)

__all__ = ["Mlp", "FmnistCnn", "FmnistCnnReference", "Cifar10Cnn", "PAPER_NETWORKS", "paper_network",
           "output_layer_names"]
