"""Datasets (arrays in memory) and partitioners that split them across clients."""

from fedsim.data.datasets import DatasetArrays
from fedsim.data.partitioners import Partitioning

__all__ = ["DatasetArrays", "Partitioning"]
