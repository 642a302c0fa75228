"""Compose fedsim's Hydra configuration from Python (tests, scripts, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import fedsim.config_schema  # noqa: F401  (registers the typed schema with Hydra)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The config the ``fedsim`` command would run with these overrides.

    >>> cfg = compose_config(["sampler=hics", "num_rounds=5"])
    """
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])
