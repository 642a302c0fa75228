import numpy as np
import torch
from PIL import Image

# torchvision 0.28 semantics for the three transforms the FMNIST path uses.


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class ToTensor:
    """PIL image (H x W, mode L/RGB) or uint8 ndarray -> float tensor C x H x W in [0, 1]."""

    def __call__(self, pic):
        if isinstance(pic, np.ndarray):
            if pic.ndim == 2:
                pic = pic[:, :, None]
            img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
            if isinstance(img, torch.ByteTensor):
                return img.to(dtype=torch.get_default_dtype()).div(255)
            return img
        mode_to_nptype = {"I": np.int32, "I;16": np.int16, "F": np.float32}
        img = torch.from_numpy(np.array(pic, mode_to_nptype.get(pic.mode, np.uint8), copy=True))
        if pic.mode == "1":
            img = 255 * img
        nch = len(pic.getbands())
        img = img.view(pic.size[1], pic.size[0], nch)
        img = img.permute((2, 0, 1)).contiguous()
        if isinstance(img, torch.ByteTensor):
            return img.to(dtype=torch.get_default_dtype()).div(255)
        return img


class Normalize:
    def __init__(self, mean, std, inplace=False):
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor):
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if not self.inplace:
            tensor = tensor.clone()
        dtype = tensor.dtype
        mean = torch.as_tensor(self.mean, dtype=dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=dtype, device=tensor.device)
        if (std == 0).any():
            raise ValueError("std evaluated to zero, leading to division by zero.")
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)


class _Unavailable:
    def __init__(self, *a, **k):
        raise RuntimeError(type(self).__name__ + " is not provided by the torchvision shim")


class Resize(_Unavailable):
    pass


class CenterCrop(_Unavailable):
    pass
