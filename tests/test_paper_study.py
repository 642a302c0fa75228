"""The paper-study script's table (experiments/paper_fmnist_s2.py) on hand-made run records."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "paper_fmnist_s2.py"


@pytest.fixture(scope="module")
def study() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_fmnist_s2", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root: Path, name: str, accuracies: list[float], finished: bool) -> None:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    rows = [
        {"round": i + 1, "accuracy": a, "probe_seconds": 2.0, "train_seconds": 4.0} for i, a in enumerate(accuracies)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        summary = {"final_accuracy": accuracies[-1], "best_accuracy": max(accuracies)}
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_table_counts_finished_and_unfinished_runs(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "random_seed0", [0.5, 0.7, 0.76, 0.8], finished=True)  # reached at 3
    write_run(tmp_path, "random_seed1", [0.5, 0.6, 0.7, 0.7, 0.8, 0.6], finished=True)  # reached at 5
    write_run(tmp_path, "hics_seed0", [0.5, 0.6, 0.7], finished=True)  # never
    write_run(tmp_path, "hics_seed1", [0.6, 0.9], finished=False)  # reached at 2 while running
    write_run(tmp_path, "hics_seed2", [0.5, 0.6, 0.6, 0.7], finished=False)  # not yet

    table = study.summarise(tmp_path, ["random", "hics", "divfl"], [0, 1, 2], target=0.75)

    random = table["random"]
    assert (random["known"], random["reached"]) == (2, 2)
    assert random["rounds_mean"] == 4.0
    assert random["rounds_std"] == pytest.approx(math.sqrt(2.0))
    assert random["final_accuracy_mean"] == pytest.approx(0.7)
    assert random["speedup_vs_random"] == 1.0

    hics = table["hics"]
    assert (hics["known"], hics["reached"], hics["finished"]) == (2, 1, 1)
    assert hics["rounds_mean"] == 2.0 and hics["rounds_std"] is None
    assert hics["final_accuracy_mean"] == pytest.approx(0.7)  # only the finished run
    assert hics["speedup_vs_random"] == 2.0
    assert hics["paper_rounds"] == 60
    assert hics["paper_speedup_vs_random"] == pytest.approx(149 / 60)

    assert table["divfl"]["seeds"] == {} and table["divfl"]["rounds_mean"] is None

    # second halves: random seed 0 [0.76, 0.8] -> 0.78, swing 0.04; seed 1 [0.7, 0.8, 0.6] -> 0.7, swing 0.15
    assert random["second_half_accuracy_mean"] == pytest.approx(0.74)
    assert random["second_half_swing_mean"] == pytest.approx(0.095)
    assert hics["second_half_accuracy_mean"] == pytest.approx(0.65)  # seed 0 only: [0.6, 0.7]

    md = study.to_markdown(table, 0.75, "python experiments/paper_fmnist_s2.py")
    assert "| random | 0: 3, 1: 5 | 4.0 ± 1.4 (2/2) | 1.00 | 0.700 (n=2) | 0.740 | 0.095 | 149 | 1.00 |" in md
    assert (
        "| hics | 0: never, 1: 2, 2: not yet (4 rounds run) | 2.0 ± - (1/2) | 2.00 | 0.700 (n=1) | 0.650 | 0.100 "
        "| 60 | 2.48 |" in md
    )
    assert "| divfl | no runs | - | - | - | - | - | 478 | 0.31 |" in md
    assert "| random | 2.0 | 4.0 | 20 |" in md  # (2 + 4) s x 200 rounds / 60
    assert "| divfl | - | - | - |" in md


def test_smoothing_is_passed_through(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "random_seed0", [0.5, 0.8, 0.7, 0.8, 0.9], finished=True)
    assert study.summarise(tmp_path, ["random"], [0], 0.75, smooth=1)["random"]["rounds_mean"] == 2.0
    assert study.summarise(tmp_path, ["random"], [0], 0.75, smooth=3)["random"]["rounds_mean"] == 4.0


def test_participation_table(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "random_seed0", [0.5, 0.8], finished=True)
    write_run(tmp_path, "hics_seed0", [0.5], finished=False)  # unfinished: left out
    partition = {"groups": [0, 0, 1, 1]}
    (tmp_path / "random_seed0" / "partition.json").write_text(json.dumps(partition))
    rows = [{"round": 1, "accuracy": 0.5, "selected": [0, 2]}, {"round": 2, "accuracy": 0.8, "selected": [1, 0]}]
    (tmp_path / "random_seed0" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = study.participation_table(tmp_path, ["random", "hics"], [0])
    assert "| sampler | finished runs | group 0 | group 1 |" in md
    assert "| random | 1 | 75% | 25% |" in md  # selections: 0, 2, 1, 0
    assert "| hics |" not in md


def test_summary_puts_raw_and_smoothed_readings_side_by_side(study: ModuleType, tmp_path: Path) -> None:
    # raw: seed 0 crosses at round 2 (a spike), seed 1 at round 3; 3-round mean: round 4, never
    write_run(tmp_path, "random_seed0", [0.5, 0.8, 0.7, 0.8, 0.9], finished=True)
    write_run(tmp_path, "random_seed1", [0.5, 0.6, 0.8, 0.6, 0.6], finished=True)
    write_run(tmp_path, "hics_seed0", [0.5, 0.6], finished=False)  # not yet on either reading

    summary = study.write_tables(tmp_path, ["random", "hics"], [0, 1], 0.75, smooth=3, command="cmd")

    assert summary == (tmp_path / "paper_summary.md").read_text()
    assert "| sampler | raw, per seed | raw, mean ± std (reached/known) | 3-round mean, per seed |" in summary
    assert "| random | 2, 3 | 2 ± 1 (2/2) | 4, never | 4 ± - (1/2) | 149 |" in summary
    assert "| HiCS-FL | not yet (2 rounds run) | - | not yet (2 rounds run) | - | 60 |" in summary
    for name in ("paper_table.md", "paper_table.json", "paper_table_smooth3.md", "paper_table_smooth3.json"):
        assert (tmp_path / name).is_file()
    smoothed = json.loads((tmp_path / "paper_table_smooth3.json").read_text())
    assert smoothed["random"]["rounds_mean"] == 4.0 and smoothed["random"]["reached"] == 1


def test_raw_only_writes_no_summary(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "random_seed0", [0.5, 0.8], finished=True)
    text = study.write_tables(tmp_path, ["random"], [0], 0.75, smooth=1, command="cmd")
    assert "| random | 0: 2 |" in text
    assert not (tmp_path / "paper_summary.md").exists()


def test_tables_cover_the_study_and_every_recorded_variant(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "divfl_stale_seed0", [0.5], finished=False)
    write_run(tmp_path, "my_sampler_seed3", [0.5], finished=False)
    names = study.samplers_to_tabulate(tmp_path, ["hics", "other"])
    assert names == ["random", "powd", "clustered", "divfl", "fedcor", "hics", "other", "divfl_stale", "my_sampler"]
