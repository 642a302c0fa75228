import os
import sys

import numpy as np
import torch
from PIL import Image

# Same parsing as torchvision.datasets.mnist.read_sn3_pascalvincent_tensor for the
# two IDX types Fashion-MNIST uses (magic 2049: uint8 labels, 2051: uint8 images).


def _read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    nd = magic % 256
    ty = magic // 256
    assert 1 <= nd <= 3 and ty == 8, (path, magic)  # 8 = uint8
    s = [int.from_bytes(data[4 * (i + 1): 4 * (i + 2)], "big") for i in range(nd)]
    parsed = torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 * (nd + 1))
    assert parsed.shape[0] == int(np.prod(s)), path
    return parsed.view(*s)


class FashionMNIST(torch.utils.data.Dataset):
    resources_train = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    resources_test = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt",
               "Sandal", "Shirt", "Bag", "Ankle boot"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        if isinstance(root, str):
            root = os.path.expanduser(root)
        self.root = root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if not self._check_exists():
            # The shim never downloads (no network); torchvision would download here.
            raise RuntimeError("Fashion-MNIST raw IDX files not found in " + self.raw_folder)
        img_file, lbl_file = self.resources_train if train else self.resources_test
        self.data = _read_idx(os.path.join(self.raw_folder, img_file))
        self.targets = _read_idx(os.path.join(self.raw_folder, lbl_file)).long()

    @property
    def raw_folder(self):
        return os.path.join(self.root, "FashionMNIST", "raw")

    def _check_exists(self):
        return all(os.path.isfile(os.path.join(self.raw_folder, f))
                   for f in self.resources_train + self.resources_test)

    def __getitem__(self, index):
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy())  # 2-D uint8 -> mode "L", as torchvision's mode="L"
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self):
        return len(self.data)


class _Unavailable:
    def __init__(self, *a, **k):
        raise RuntimeError(type(self).__name__ + " is not provided by the torchvision shim")


class CIFAR10(_Unavailable):
    pass


class ImageFolder(_Unavailable):
    pass
