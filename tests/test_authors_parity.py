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


def test_fedsim_against_the_code_is_an_unpaired_welch_interval(parity) -> None:
    """Differences of means with Welch's interval: x = 1, 2, 3 against y = 2, 3, 4 gives -1 with
    t(0.975, 4 df) * sqrt(1/3 + 1/3) = 2.267 either side, p = 0.29 (t = -1.22); a never-reached run
    counts as R + 1."""
    import pandas as pd

    rows = []
    for study, sampler, values in (("authors_parity", "random_proportional", [1, 2, 3]),
                                   ("authors_code", "random (authors' code)", [2, 3, 4]),
                                   ("authors_parity", "hics_reference", [10, float("nan"), 12]),
                                   ("authors_code", "hics (authors' code)", [11, 13]),
                                   ("authors_parity_fedsim_defaults", "random_proportional", [0, 0])):
        for seed, value in enumerate(values):
            rows.append({"study": study, "sampler": sampler, "seed": seed, "accuracy as": "accuracy_batch_mean",
                         "first round >= 70%": value, "best": value / 10, "mean": value / 10, "last 10": value / 10})
    rows.append({**rows[0], "accuracy as": "accuracy", "best": 9.0})  # per example: not the code's count
    lines = {(r[0], r[1], r[3]): r[4:] for r in parity.against_code(pd.DataFrame(rows))}
    assert lines[("authors_parity", "random_proportional", "first round >= 70%")] == [
        3, 3, "2.0", "3.0", "-1.0 [-3.3, +1.3]", "0.29"]
    assert lines[("authors_parity", "random_proportional", "best")][4] == "-0.100 [-0.327, +0.127]"
    hics = lines[("authors_parity", "hics_reference", "first round >= 70%")]
    assert hics[2] == f"{(10 + 61 + 12) / 3:.1f}"  # never reached: 61
    # unequal variances: Welch's df = 279.1^2 / (278.1^2 / 2 + 1) = 2.01, t = 4.27, se 16.71 (pooled: -52.9, +84.2)
    assert hics[4] == "+15.7 [-55.7, +87.1]"
    assert len(lines) == 8  # two samplers x four measures; the fedsim-defaults study is not compared


def test_the_codes_picks_are_read_from_its_printout_and_set_against_the_lowest_seed(parity, tmp_path: Path) -> None:
    folder = tmp_path / "authors_code"
    folder.mkdir()
    for seed, rounds in ((0, ["[ 0 11 42]", "[ 5 25 49]"]), (1, ["[ 1 12 43]", "[ 6  7 49]"])):
        (folder / f"random_seed{seed}.csv.log").write_text("".join(
            f"random sampling\nselection in epoch:  {epoch}\n{clients}\naccuracy of global test: 0.5\n"
            for epoch, clients in enumerate(rounds)))
    (folder / "hics_seed0.csv.log").write_text("selection in epoch:  0\n[30 31 32]\n")  # not a random baseline
    picks = parity.code_selections(folder)
    assert sorted(picks[picks["seed"].eq(0) & picks["round"].eq(2)]["group"]) == [0, 2, 4]
    text = parity.write_group_picks(tmp_path, picks).read_text()
    rows = {line.split(" | ")[2]: line for line in text.splitlines() if line.startswith("| authors_code")}
    assert set(rows) == {"0", "1"}
    # seed 1: round 1 groups 0, 1, 4 as seed 0's; round 2 groups 0, 0, 4 against seed 0's 0, 2, 4
    assert rows["1"].endswith("| 0 / 0 / 0 / 0 / 0 | 3 / 1 / 0 / 0 / 2 | 1 of 2 |")
    assert rows["0"].endswith("| 2 / 1 / 1 / 0 / 2 | 2 of 2 |")
