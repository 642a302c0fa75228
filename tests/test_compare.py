"""fedsim-compare on synthetic run folders with known curves (exact numbers)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsim.results.analysis import rounds_to_target
from fedsim.results.compare import (
    compare,
    find_runs,
    label_runs,
    load_runs,
    main,
    mean_std,
    participation_shares,
)

HICS = "fedsim.selection.hics.HiCSSampler"
RANDOM = "fedsim.selection.random.RandomSampler"
GROUPS_PART = {"_target_": "fedsim.data.partitioners.GroupsPartitioner", "alphas": [0.001, 0.2], "min_size_fraction": 0.2}
DIRICHLET_PART = {"_target_": "fedsim.data.partitioners.DirichletPartitioner", "alpha": 0.5, "min_size_fraction": 0.2}
HICS_CFG = {"_target_": HICS, "temperature": 0.0025, "estimator": "bias"}
HICS_REF_CFG = {"_target_": HICS, "temperature": 0.0025, "estimator": "weight_rows"}
RANDOM_CFG = {"_target_": RANDOM, "proportional": True}
SETTING_A = "fmnist groups[alphas=0.001,0.2; min_size_fraction=0.2] N=4 K=2"
SETTING_B = "digits dirichlet[alpha=0.5; min_size_fraction=0.2] N=4 K=2"
DEFAULT_SELECTED = [[0, 1], [2, 3], [0, 2], [1, 3]]


def write_run(
    root: Path,
    name: str,
    *,
    sampler: dict[str, Any],
    seed: int,
    accuracies: list[float | None],
    partitioner: dict[str, Any] = GROUPS_PART,
    dataset: dict[str, Any] | None = None,
    groups: list[int] | None = (0, 0, 1, 1),  # type: ignore[assignment]
    selected: list[list[int]] | None = None,
    selection_seconds: list[float] | None = None,
    wall_seconds: float = 10.0,
    final: float | None = None,
    finished: bool = True,
) -> Path:
    """A run folder as fedsim writes it (config.yaml, metrics.jsonl, partition.json, summary.json)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {
        "dataset": dataset or {"_target_": "fedsim.data.datasets.IdxSource", "name": "fmnist", "root": "/x"},
        "partitioner": partitioner,
        "sampler": sampler,
        "seed": seed,
        "num_clients": 4,
        "clients_per_round": 2,
        "num_rounds": len(accuracies),
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    selected = selected or DEFAULT_SELECTED
    selection_seconds = selection_seconds or [0.001] * len(accuracies)
    with open(run_dir / "metrics.jsonl", "w") as handle:
        for i, accuracy in enumerate(accuracies):
            row = {
                "round": i + 1,
                "accuracy": accuracy,
                "loss": 1.0,
                "train_loss": 1.0,
                "selected": selected[i % len(selected)],
                "failed": [],
                "selection_seconds": selection_seconds[i],
                "probe_seconds": 0.0,
                "train_seconds": 0.1,
            }
            handle.write(json.dumps(row) + "\n")
    partition = {
        "sizes": [10, 10, 10, 10],
        "label_histograms": [],
        "label_entropy": [0.0] * 4,
        "groups": list(groups) if groups is not None else None,
    }
    (run_dir / "partition.json").write_text(json.dumps(partition))
    if finished:
        evaluated = [a for a in accuracies if a is not None]
        summary = {
            "final_accuracy": evaluated[-1] if final is None else final,
            "best_accuracy": max(evaluated),
            "rounds_run": len(accuracies),
            "wall_seconds": wall_seconds,
            "engine": "InlineEngine",
            "sampler": sampler["_target_"].rsplit(".", 1)[-1],
            "run_dir": str(run_dir),
        }
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two settings; in A: random x2, hics x3 (+1 unfinished), hics_reference x1; in B: hics x1."""
    root = tmp_path / "sweep"
    # random: rounds to 0.75 = 4 and 2; finals 0.8, 0.6; bests 0.8, 0.8
    write_run(root, "sampler=random,seed=0", sampler=RANDOM_CFG, seed=0, accuracies=[0.5, 0.6, 0.7, 0.8],
              wall_seconds=10.0)
    write_run(root, "sampler=random,seed=1", sampler=RANDOM_CFG, seed=1, accuracies=[0.5, 0.8, 0.7, 0.6],
              wall_seconds=20.0)
    # hics: reaches at 2, 2 (0.75 exactly, a null round after it), never
    write_run(root, "sampler=hics,seed=0", sampler=HICS_CFG, seed=0, accuracies=[0.6, 0.76, 0.8, 0.9],
              selection_seconds=[0.01, 0.02, 0.03, 0.04],
              selected=[[0, 1], [0, 2], [0, 3], [1, 2]])
    write_run(root, "sampler=hics,seed=1", sampler=HICS_CFG, seed=1, accuracies=[0.7, 0.75, None, 0.85],
              selection_seconds=[0.03] * 4, selected=[[2, 3]])
    write_run(root, "sampler=hics,seed=2", sampler=HICS_CFG, seed=2, accuracies=[0.5, 0.6, 0.7, 0.7],
              selection_seconds=[0.05] * 4, selected=[[0, 3]])
    write_run(root, "sampler=hics,seed=3", sampler=HICS_CFG, seed=3, accuracies=[0.9], finished=False)
    # hics_reference: never reaches 0.75
    write_run(root, "sampler=hics_reference,seed=0", sampler=HICS_REF_CFG, seed=0, accuracies=[0.5, 0.6, 0.6, 0.7])
    # setting B: no groups, no random runs
    write_run(root, "other/sampler=hics,seed=0", sampler=HICS_CFG, seed=0, accuracies=[0.5, 0.7, 0.8],
              partitioner=DIRICHLET_PART, dataset={"_target_": "fedsim.data.datasets.DigitsSource"}, groups=None)
    return root


def _rows(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["setting"], r["sampler"]): r for r in result["rows"]}


def test_mean_std_conventions() -> None:
    assert mean_std([]) == (None, None)
    assert mean_std([0.5]) == (0.5, None)  # one seed: std undefined
    mean, std = mean_std([1.0, 2.0, 6.0])
    assert mean == 3.0
    assert std == pytest.approx(math.sqrt(7.0))  # sample std (ddof=1): (4 + 1 + 9) / 2


def test_finds_runs_and_skips_unfinished(sweep: Path) -> None:
    dirs = find_runs([sweep])
    assert len(dirs) == 8
    runs, skipped = load_runs(dirs)
    assert len(runs) == 7
    assert [p.name for p in skipped] == ["sampler=hics,seed=3"]


def test_labels_distinguish_sampler_settings(sweep: Path) -> None:
    runs = label_runs(load_runs(find_runs([sweep]))[0])
    labels = {(r.setting, r.dir.name, r.sampler) for r in runs}
    assert (SETTING_A, "sampler=hics,seed=0", "hics[estimator=bias]") in labels
    assert (SETTING_A, "sampler=hics_reference,seed=0", "hics[estimator=weight_rows]") in labels
    assert (SETTING_A, "sampler=random,seed=0", "random") in labels
    # in setting B there is only one hics configuration: no suffix
    assert (SETTING_B, "sampler=hics,seed=0", "hics") in labels


def test_label_prefers_hydra_choice(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "r", sampler={"_target_": "fedsim.selection.powd.PowerOfChoiceSampler", "d_factor": 2.0},
                        seed=0, accuracies=[0.5])
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {"sampler": "powd_2k"}}}}))
    other = write_run(tmp_path, "s", sampler={"_target_": "fedsim.selection.powd.PowerOfChoiceSampler", "d_factor": None},
                      seed=0, accuracies=[0.5])
    assert other.exists()
    labels = {r.dir.name: r.sampler for r in label_runs(load_runs(find_runs([tmp_path]))[0])}
    assert labels == {"r": "powd_2k", "s": "powd"}


def test_exact_statistics(sweep: Path, tmp_path: Path) -> None:
    result = compare([sweep], target=0.75, out=tmp_path / "out")
    rows = _rows(result)
    assert set(rows) == {
        (SETTING_A, "hics[estimator=bias]"),
        (SETTING_A, "hics[estimator=weight_rows]"),
        (SETTING_A, "random"),
        (SETTING_B, "hics"),
    }
    assert len(result["skipped"]) == 1

    random = rows[(SETTING_A, "random")]
    assert random["n_seeds"] == 2
    assert random["final_acc_mean"] == pytest.approx(0.7)
    assert random["final_acc_std"] == pytest.approx(math.sqrt(0.02))
    assert random["best_acc_mean"] == pytest.approx(0.8)
    assert random["best_acc_std"] == pytest.approx(0.0)
    assert random["rounds_to_target_mean"] == 3.0
    assert random["rounds_to_target_std"] == pytest.approx(math.sqrt(2.0))
    assert random["reached"] == "2/2"
    assert random["speedup_vs_random"] == 1.0
    assert random["selection_seconds_per_round"] == pytest.approx(0.001)
    assert random["wall_seconds_per_run"] == 15.0

    hics = rows[(SETTING_A, "hics[estimator=bias]")]
    assert hics["n_seeds"] == 3
    assert hics["seeds"] == "0 1 2"
    assert hics["final_acc_mean"] == pytest.approx(49 / 60)  # (0.9 + 0.85 + 0.7) / 3
    assert hics["final_acc_std"] == pytest.approx(math.sqrt(13 / 1200))
    assert hics["best_acc_mean"] == pytest.approx(49 / 60)
    assert hics["rounds_to_target_mean"] == 2.0  # seeds 0 and 1; seed 2 never
    assert hics["rounds_to_target_std"] == 0.0
    assert hics["reached_count"] == 2
    assert hics["reached"] == "2/3"
    assert hics["speedup_vs_random"] == pytest.approx(1.5)
    assert hics["selection_seconds_per_round"] == pytest.approx((0.025 + 0.03 + 0.05) / 3)
    assert hics["wall_seconds_per_run"] == 10.0

    ref = rows[(SETTING_A, "hics[estimator=weight_rows]")]
    assert ref["n_seeds"] == 1
    assert ref["final_acc_mean"] == pytest.approx(0.7)
    assert ref["final_acc_std"] is None
    assert ref["rounds_to_target_mean"] is None
    assert ref["reached"] == "0/1"
    assert ref["speedup_vs_random"] is None

    other = rows[(SETTING_B, "hics")]
    assert other["rounds_to_target_mean"] == 3.0
    assert other["speedup_vs_random"] is None  # no random runs in that setting


def test_target_changes_rounds(sweep: Path, tmp_path: Path) -> None:
    rows = _rows(compare([sweep], target=0.9, out=tmp_path / "out"))
    assert rows[(SETTING_A, "hics[estimator=bias]")]["rounds_to_target_mean"] == 4.0
    assert rows[(SETTING_A, "hics[estimator=bias]")]["reached"] == "1/3"
    assert rows[(SETTING_A, "random")]["reached"] == "0/2"
    assert rows[(SETTING_A, "hics[estimator=bias]")]["speedup_vs_random"] is None  # random never reached


def test_participation_shares(sweep: Path) -> None:
    runs = label_runs(load_runs(find_runs([sweep]))[0])
    hics = [r for r in runs if r.sampler == "hics[estimator=bias]"]
    seed0 = [r for r in hics if r.seed == 0]
    # [0,1],[0,2],[0,3],[1,2] with groups [0,0,1,1]: 5 of 8 selections in group 0
    assert participation_shares(seed0) == {0: 0.625, 1: 0.375}
    # + seed 1: [2,3] x4 (8 in group 1) + seed 2: [0,3] x4 (4 and 4): 24 selections
    assert participation_shares(hics) == {0: 9 / 24, 1: 15 / 24}
    no_groups = [r for r in runs if r.setting == SETTING_B]
    assert participation_shares(no_groups) is None


def test_files_written(sweep: Path) -> None:
    result = compare([sweep], target=0.75)
    names = sorted(p.name for p in result["files"])
    assert names == ["accuracy.png", "comparison.csv", "comparison.md", "participation.png"]
    for name in names:
        path = sweep / name
        assert path.is_file() and path.stat().st_size > 0
    assert (sweep / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "participation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = (sweep / "comparison.md").read_text()
    assert "1 unfinished run(s) skipped" in md
    assert f"## {SETTING_A}" in md and f"## {SETTING_B}" in md
    assert "| hics[estimator=bias] | 3 | 0.8167 ± 0.1041 | 0.8167 ± 0.1041 | 2.0 ± 0.0 | 2/3 reached | 1.50 |" in md
    assert "| hics[estimator=weight_rows] | 1 | 0.7000 ± - | 0.7000 ± - | never | 0/1 reached | - |" in md
    assert "| random | 2 | 0.7000 ± 0.1414 | 0.8000 ± 0.0000 | 3.0 ± 1.4 | 2/2 reached | 1.00 |" in md
    assert f"{SETTING_B}: partition.json has no groups" in md

    with open(sweep / "comparison.csv") as handle:
        rows = {(r["setting"], r["sampler"]): r for r in csv.DictReader(handle)}
    assert len(rows) == 4
    assert rows[(SETTING_A, "hics[estimator=bias]")]["speedup_vs_random"] == "1.5"
    assert rows[(SETTING_A, "hics[estimator=bias]")]["reached"] == "2/3"
    assert rows[(SETTING_A, "hics[estimator=weight_rows]")]["final_acc_std"] == ""
    assert rows[(SETTING_A, "hics[estimator=weight_rows]")]["rounds_to_target_mean"] == ""
    assert float(rows[(SETTING_A, "random")]["final_acc_std"]) == pytest.approx(math.sqrt(0.02))


def test_no_groups_anywhere_skips_participation(tmp_path: Path) -> None:
    write_run(tmp_path, "a", sampler=RANDOM_CFG, seed=0, accuracies=[0.5, 0.8], groups=None)
    result = compare([tmp_path], target=0.75)
    assert sorted(p.name for p in result["files"]) == ["accuracy.png", "comparison.csv", "comparison.md"]
    assert not (tmp_path / "participation.png").exists()


def test_main_in_process(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--out", str(tmp_path / "o"), "--target", "0.75"]) == 0
    assert "1 unfinished run(s) skipped" in capsys.readouterr().out
    assert (tmp_path / "o" / "comparison.md").is_file()
    only_unfinished = tmp_path / "u"
    write_run(only_unfinished, "x", sampler=RANDOM_CFG, seed=0, accuracies=[0.5], finished=False)
    assert main([str(only_unfinished)]) == 1


def test_console_entry_subprocess(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_out"
    proc = subprocess.run(
        [sys.executable, "-m", "fedsim.results.compare", str(sweep), "--target", "0.75", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "7 finished run(s); 1 unfinished run(s) skipped" in proc.stdout
    for name in ("comparison.md", "comparison.csv", "accuracy.png", "participation.png"):
        assert (out / name).stat().st_size > 0


def test_rounds_to_target_trailing_window() -> None:
    rows = [{"round": i + 1, "accuracy": a} for i, a in enumerate([0.5, 0.8, 0.7, 0.8, 0.9])]
    assert rounds_to_target(rows, 0.75) == 2
    assert rounds_to_target(rows, 0.75, window=2) == 3  # (0.8 + 0.7) / 2
    assert rounds_to_target(rows, 0.75, window=3) == 4  # (0.8 + 0.7 + 0.8) / 3
    assert rounds_to_target(rows, 0.75, window=6) is None  # fewer evaluations than the window
    with_gap = [{"round": 1, "accuracy": 0.7}, {"round": 2, "accuracy": None}, {"round": 3, "accuracy": 0.8}]
    assert rounds_to_target(with_gap, 0.75, window=2) == 3  # unevaluated rounds are not in the window
    with pytest.raises(ValueError, match="window"):
        rounds_to_target(rows, 0.75, window=0)


def test_smoothed_comparison_and_unfinished_listing(sweep: Path, tmp_path: Path) -> None:
    result = compare([sweep], target=0.75, out=tmp_path / "out", smooth=2)
    rows = _rows(result)
    random = rows[(SETTING_A, "random")]
    assert random["rounds_to_target_mean"] == 3.5  # seed 0: round 4, seed 1: round 3
    assert random["smooth"] == 2
    hics = rows[(SETTING_A, "hics[estimator=bias]")]
    assert hics["rounds_to_target_mean"] == 3.5  # seed 0: round 3, seed 1: round 4 (round 3 unevaluated)
    assert hics["reached"] == "2/3"
    assert hics["speedup_vs_random"] == 1.0
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "Target accuracy: 0.75 (trailing mean of 2 evaluated rounds)." in md
    assert "## Unfinished runs (left out)\n\n- sampler=hics,seed=3: 1 round(s) recorded" in md


def test_main_rejects_bad_smooth(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--smooth", "0"]) == 2
    assert "--smooth" in capsys.readouterr().err
