"""Import stub: sampling.py imports ImageFolderLMDB at module level (Mini-ImageNet only);
the module is not part of the stored repository."""


class ImageFolderLMDB:
    def __init__(self, *a, **k):
        raise RuntimeError("ImageFolderLMDB (Mini-ImageNet) is not available in this copy")
