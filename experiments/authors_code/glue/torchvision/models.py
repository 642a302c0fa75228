def resnet18(*args, **kwargs):
    raise RuntimeError("resnet18 (Mini-ImageNet path) is not provided by the torchvision shim")
