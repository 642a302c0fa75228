"""Which torch device fedsim computes on: the ``device`` setting.

``auto`` picks CUDA when a GPU is visible (the first one, or the one Ray assigned to a
client actor: Ray sets ``CUDA_VISIBLE_DEVICES`` so it is ``cuda:0`` there), else the CPU.
``cpu``, ``cuda`` and ``cuda:N`` ask for one explicitly; asking for a GPU that is not
there is a :class:`~fedsim.errors.ConfigError` naming the setting and the fix.
"""

from __future__ import annotations

import os
import re

import torch

from fedsim.errors import ConfigError

_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device of a ``device`` setting: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    match = _SPEC.match(text)
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise ConfigError(f"device={spec}: unknown; use auto, cpu, cuda or cuda:N")
    kind, index = match.group(1), match.group(2)
    available = torch.cuda.is_available()
    if kind == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not available:
        raise ConfigError(f"device={spec}: no CUDA GPU is available here; use device=cpu (or device=auto)")
    count = torch.cuda.device_count()
    number = int(index) if index is not None else 0
    if number >= count:
        raise ConfigError(
            f"device={spec}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1}); "
            f"use device=cuda:0 (or device=auto)"
        )
    return torch.device("cuda", number)



def physical_memory_bytes() -> int | None:
    """This machine's physical memory (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(needed_bytes: float, setting: str, fix: str) -> None:
    """Refuse (one line) a size-like setting whose arrays would need more than half of physical memory.

    Checked before allocating, so a typo such as ``num_train=10000000000`` is a ConfigError,
    not a process killed by the OS after minutes of swapping.
    """
    total = physical_memory_bytes()
    if total is not None and needed_bytes > total / 2:
        raise ConfigError(f"{setting}: needs about {needed_bytes / 2**30:.1f} GiB of memory, more than half of this "
                          f"machine's {total / 2**30:.1f} GiB; {fix}")
