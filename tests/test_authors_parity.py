"""experiments/authors_parity.py reads the authors' own code's runs next to fedsim's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from fedsim.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def parity():
    sys.path.insert(0, str(EXPERIMENTS))  # the script imports experiments/sweep.py, as when run directly
    spec = importlib.util.spec_from_file_location("authors_parity", EXPERIMENTS / "authors_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_codes_runs_count_with_its_own_accuracy_only(parity, tmp_path: Path) -> None:
    folder = tmp_path / "authors_code"
    folder.mkdir()
    (folder / "random_seed3.csv").write_text("round,accuracy\n1,0.5\n2,0.71\n3,0.69\n")
    table = parity.code_curves(folder)
    assert set(table["sampler"]) == {"random (authors' code)"} and set(table["seed"]) == {3}
    runs = parity.per_run(table)
    assert list(runs["accuracy as"]) == ["accuracy_batch_mean"]  # no per-example accuracy from the code
    row = runs.iloc[0]
    assert row["first round >= 70%"] == 2 and row["best"] == pytest.approx(0.71)
    assert row["mean"] == pytest.approx((0.5 + 0.71 + 0.69) / 3)
    assert parity.code_curves(tmp_path / "none").empty


@pytest.mark.parametrize("content", [b"epoch,acc\n1,0.5\n", b"round,accuracy\n1,high\n", b"\xff\xfe\x00bin", b""])
def test_a_file_that_is_not_a_run_of_the_code_is_refused_in_one_line(parity, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "random_seed0.csv").write_bytes(content)
    with pytest.raises(ConfigError, match="not a run of the authors' code"):
        parity.code_curves(tmp_path)
