"""fedsim-compare end to end on tiny run folders: files, tables and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from compare_helpers import HICS, RANDOM, write_run
from fedsim.compare import compare, main
from fedsim.compare.report import md_table


def _sweep(root: Path) -> Path:
    sweep = root / "sweep"
    # random reaches 0.75 at rounds 3, 4, 2; hics at 2, 2, never (censored at 4)
    for seed, acc in enumerate([[0.5, 0.7, 0.8, 0.8], [0.5, 0.6, 0.7, 0.8], [0.6, 0.8, 0.8, 0.9]]):
        write_run(sweep, f"random_seed{seed}", seed=seed, accuracies=acc, summary_sampler="random")
    for seed, acc in enumerate([[0.6, 0.8, 0.9, 0.9], [0.7, 0.8, 0.8, 0.8], [0.5, 0.6, 0.7, 0.7]]):
        write_run(sweep, f"hics_seed{seed}", seed=seed, sampler=HICS, accuracies=acc, summary_sampler="hics",
                  selected=[[0, 1], [0, 2]],
                  per_class=[[0.5, 0.6], None, [0.8, 0.9], [0.85, 0.95]])
    write_run(sweep, "hics_seed3", seed=3, sampler=HICS, accuracies=[0.5], finished=False, num_rounds=4)
    return sweep


def test_compare_writes_report_tables_and_plots(tmp_path: Path) -> None:
    result = compare([_sweep(tmp_path)], target=0.75, smooth=1, out=tmp_path / "out")
    out = tmp_path / "out"
    for name in ("comparison.md", "comparison.csv", "paired.csv", "per_run.csv", "selection.csv",
                 "accuracy.png", "learning_curves.png", "participation.png", "per_class.png"):
        assert (out / name).is_file(), name
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_csv(out / "comparison.csv").set_index("sampler")
    assert summary.loc["random", "rtt_raw_per_seed"] == "3, 4, 2"
    assert summary.loc["hics", "rtt_raw_per_seed"] == "2, 2, >4"
    assert summary.loc["hics", "n_seeds"] == 3  # the unfinished seed 3 is left out
    assert summary.loc["hics", "rtt_raw_km_median"] == 2
    assert summary.loc["hics", "rtt_raw_restricted_mean"] == pytest.approx(8 / 3)
    paired = pd.read_csv(out / "paired.csv")
    row = paired[(paired["sampler"] == "hics") & (paired["column"] == "rtt_raw")].iloc[0]
    assert row["diffs"] == "-1 -2 2"  # 2-3, 2-4, 4(censored)-2
    assert row["p_sign_flip"] == 1.0  # observed |sum| 1; every sign pattern of (1, 2, 2) sums to an odd number
    md = (out / "comparison.md").read_text()
    assert "| hics | 3 | 2, 2, >4 | 2 | 2.7 | 2/3 |" in md
    assert "hics_seed3 (hics, seed 3): 1 round(s) recorded" in md
    assert "| hics | 75% | 25% |" in md and "| sampler | alpha=0.001 | alpha=0.2 |" in md
    assert "Kaplan-Meier median" in md and "restricted mean" in md
    assert "- **verdict**:" in md and "- **p (sign-flip)**:" in md
    assert list(result["unfinished"]["run"]) == ["hics_seed3"]


def test_no_baseline_means_no_paired_table(tmp_path: Path) -> None:
    write_run(tmp_path, "hics_seed0", sampler=HICS, accuracies=[0.5, 0.8], summary_sampler="hics")
    result = compare([tmp_path], plots=False, smooth=1)
    assert result["paired"].empty
    assert "No `random` runs in this setting" in result["markdown"]


def test_cli_exit_codes_and_module_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert main([str(tmp_path / "empty"), "--effect", "1x"]) == 2
    sweep = _sweep(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "fedsim.compare", str(sweep), "--target", "0.75", "--smooth", "2", "--no-plots",
         "--effect", "2x", "--out", str(tmp_path / "o")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "6 finished run(s); 1 unfinished run(s) left out" in done.stdout
    assert "seeds_needed_2x" in (tmp_path / "o" / "paired.csv").read_text()
    assert not (tmp_path / "o" / "accuracy.png").exists()


def test_md_table_escapes_pipes() -> None:
    assert md_table(["a", "b"], [[1, "x|y"]]) == "| a | b |\n|---|---|\n| 1 | x\\|y |"


def test_runs_of_two_stream_versions_in_one_setting_are_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, "random_0", accuracies=[0.5, 0.8], summary_sampler="random")
    write_run(tmp_path, "hics_0", sampler=HICS, accuracies=[0.6, 0.9], summary_sampler="hics")
    result = compare([tmp_path], plots=False)
    assert result["mixed_streams"] == [] and "Not paired" not in result["markdown"]
    summary = tmp_path / "hics_0" / "summary.json"
    summary.write_text(summary.read_text().replace("{", '{"streams_version": 2, ', 1))
    assert main([str(tmp_path), "--no-plots"]) == 0
    assert "(seeds 0) mix runs of fedsim before and after 0.2.0" in capsys.readouterr().err
    mixed = compare([tmp_path], plots=False)
    assert mixed["mixed_streams"][0].endswith("(seeds 0)")
    assert mixed["paired"].empty  # the only seed's runs differ in version: no pair


def test_seeds_drawn_wholly_on_one_stream_version_each_are_paired(tmp_path: Path) -> None:
    """A study that adds seeds after a stream change: seed 0 old streams, seed 1 new, each whole."""
    for seed in (0, 1):
        for name, sampler in (("random", RANDOM), ("hics", HICS)):
            run = write_run(tmp_path, f"{name}_{seed}", sampler=sampler, seed=seed, accuracies=[0.5, 0.8],
                            summary_sampler=name)
            if seed == 1:
                summary = run / "summary.json"
                summary.write_text(summary.read_text().replace("{", '{"streams_version": 2, ', 1))
    result = compare([tmp_path], plots=False)
    assert result["mixed_streams"] == [] and "Not paired" not in result["markdown"]
    (tmp_path / "hics_1" / "summary.json").write_text((tmp_path / "hics_0" / "summary.json").read_text())
    assert compare([tmp_path], plots=False)["mixed_streams"] == [
        f"`{result['study'].runs['setting'].iloc[0]}` (seeds 1)"]
    assert "**Not paired:**" in (tmp_path / "comparison.md").read_text()
    pairs = compare([tmp_path], plots=False)["paired"]
    assert set(pairs["seeds"]) == {"0"} and set(pairs["n_pairs"]) == {1}  # seed 1 mixes versions: left out
