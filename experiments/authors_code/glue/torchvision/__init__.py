"""Minimal torchvision shim for running the HiCS-FL authors' code on CPU-only torch 2.13.0.

The matching torchvision wheel (0.28.0, from the local PyPI mirror) is a CUDA build whose
C extension needs libtorch_cuda/libc10_cuda, so `import torchvision` fails against the
CPU torch.  This shim re-implements only what the FMNIST path uses, following
torchvision 0.28's semantics:
  datasets.FashionMNIST (raw IDX files under <root>/FashionMNIST/raw, uint8 data,
  int64 targets, PIL 'L' image per item), transforms.Compose / ToTensor / Normalize.
Everything else the code imports (CIFAR10, ImageFolder, Resize, CenterCrop,
models.resnet18) exists only so the imports succeed; using it raises.
"""
__version__ = "0.28.0-shim"
from . import datasets, transforms, models  # noqa: F401
