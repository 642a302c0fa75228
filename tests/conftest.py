"""Shared test setup: Flower offline and quiet, its state in a temporary folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ.setdefault("FLWR_HOME", tempfile.mkdtemp(prefix="fedsim-test-flwr-"))
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def make_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose fedsim's Hydra config with overrides, as the CLI would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


@pytest.fixture
def small_overrides() -> list[str]:
    """A tiny, fast, learnable federation on synthetic data."""
    return [
        "dataset=synthetic",
        "num_clients=6",
        "clients_per_round=3",
        "num_rounds=3",
        "progress=false",
        "train.lr=0.05",
        "train.epochs=1",
    ]
