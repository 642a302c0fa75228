"""Study records in one compact file (runs.parquet): packed, read by fedsim-compare, unpacked as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from compare_helpers import HICS, write_run
from fedsim.compare import compare
from fedsim.errors import ConfigError
from fedsim.results.archive import ARCHIVE, pack, read_archive, unpack, unpacked
from fedsim.results.run_lock import RunLock

ROOT = Path(__file__).resolve().parents[1]


def study(root: Path) -> Path:
    for seed in (0, 1):
        write_run(root, f"random_seed{seed}", seed=seed, accuracies=[0.5, 0.7 + 0.01 * seed],
                  summary_sampler="random")
        run = write_run(root, f"hics_seed{seed}", sampler=HICS, seed=seed, accuracies=[0.6, 0.8],
                        summary_sampler="hics")
        (run / "sampler.jsonl").write_text("".join(json.dumps({"round": r, "phase": "warmup"}) + "\n" for r in (1, 2)))
    return root


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pack_and_unpack_give_back_every_record_file_byte_for_byte(tmp_path):
    before = files(study(tmp_path / "s"))
    pack(tmp_path / "s", remove=True)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [ARCHIVE]
    table = read_archive(tmp_path / "s" / ARCHIVE)
    assert list(table.groupby("run").size()) == [2, 2, 2, 2] and table["accuracy"].dtype == "float64"
    unpack(tmp_path / "s" / ARCHIVE, tmp_path / "back")
    assert files(tmp_path / "back") == {k: v for k, v in before.items() if not k.endswith(".png")}


def test_fedsim_compare_reads_an_archive_as_it_reads_the_folders(tmp_path):
    study(tmp_path / "folders")
    study(tmp_path / "packed")
    pack(tmp_path / "packed", remove=True)
    a = compare([tmp_path / "folders"], out=tmp_path / "a", plots=False)
    b = compare([tmp_path / "packed"], out=tmp_path / "b", plots=False)
    for name in ("comparison.csv", "paired.csv", "per_run.csv", "selection.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert a["runs"] == b["runs"] == 4
    assert b["study"].runs["dir"].map(lambda d: Path(d).parent).eq((tmp_path / "packed").resolve()).all()


def test_a_study_script_sees_folders_and_leaves_finished_runs_packed(tmp_path):
    root = study(tmp_path / "s")
    pack(root, remove=True)
    with unpacked(root):
        assert (root / "hics_seed1" / "metrics.jsonl").exists()
        write_run(root, "random_seed2", seed=2, accuracies=[0.1, 0.2], finished=False)
        write_run(root, "hics_seed2", sampler=HICS, seed=2, accuracies=[0.3, 0.4], summary_sampler="hics")
    assert sorted(p.name for p in root.iterdir()) == ["random_seed2", ARCHIVE]  # unfinished: stays a folder
    assert sorted(set(read_archive(root / ARCHIVE)["run"])) == ["hics_seed0", "hics_seed1", "hics_seed2",
                                                               "random_seed0", "random_seed1"]


def test_a_second_script_on_the_same_study_stops_before_touching_the_first_ones_folders(tmp_path):
    root = study(tmp_path / "s")
    pack(root, remove=True)
    with unpacked(root):
        with pytest.raises(ConfigError, match=r"study folder .*/s is in use by another fedsim process"):
            with unpacked(root):
                pass
        assert (root / "hics_seed1" / "metrics.jsonl").exists()  # not packed away under the first one
    assert sorted(p.name for p in root.iterdir()) == [ARCHIVE]  # lock released, runs packed once
    with unpacked(root):  # and taken again
        pass


def test_a_study_folder_that_stays_empty_is_not_left_behind(tmp_path):
    with unpacked(tmp_path / "ablations"):
        pass
    assert not (tmp_path / "ablations").exists()


def test_a_study_script_says_in_one_line_that_another_holds_its_folder(tmp_path):
    root = study(tmp_path / "s")
    with RunLock(root, kind="study folder"):
        done = subprocess.run([sys.executable, str(ROOT / "experiments" / "heterogeneity_sampling.py"),
                               "--report-only", "--out", str(root)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"heterogeneity_sampling.py: study folder {root} is in use by another fedsim process (pid {os.getpid()}); "
        "wait for it or choose another folder"]
    assert files(root) == files(study(tmp_path / "again"))  # nothing written, nothing packed


@pytest.mark.parametrize("run", ["../outside", "/tmp/abs", "a/b", ".."])
def test_an_archive_cannot_unpack_outside_its_folder(tmp_path, run):
    root = study(tmp_path / "s")
    pack(root, remove=True)
    table = pd.read_parquet(root / ARCHIVE)
    table.loc[table["run"] == "hics_seed0", "run"] = run
    table.to_parquet(root / ARCHIVE)
    with pytest.raises(ConfigError, match="would leave the folder"):
        unpack(root / ARCHIVE, tmp_path / "dest")
    assert not (tmp_path / "outside").exists()


def test_a_file_that_is_not_an_archive_is_skipped_in_one_line(tmp_path, capsys):
    from fedsim.compare import main

    root = study(tmp_path / "s")
    (root / ARCHIVE).write_bytes(b"not parquet")
    assert main([str(root), "--no-plots"]) == 0
    assert "runs.parquet: not a run archive fedsim wrote" in capsys.readouterr().err


def test_the_committed_setting_2_tables_are_regenerated_from_its_archive(tmp_path):
    results = ROOT / "experiments" / "results" / "heterogeneity_s2"
    if not (results / ARCHIVE).exists():
        pytest.skip("setting 2 is not packed in this checkout")
    compare([results], out=tmp_path, plots=False)
    for name in ("comparison.csv", "paired.csv", "per_run.csv", "selection.csv"):
        assert (tmp_path / name).read_text() == (results / name).read_text(), name
    without_plots = (results / "comparison.md").read_text().split("\n## Plots\n")[0].rstrip("\n")
    assert (tmp_path / "comparison.md").read_text().rstrip("\n") == without_plots


def test_an_archive_declaring_more_than_it_may_inflate_to_is_refused_before_reading(tmp_path, monkeypatch):
    import fedsim.results.archive as archive

    root = study(tmp_path / "s")
    pack(root, remove=True)
    monkeypatch.setattr(archive, "ARCHIVE_LIMIT", 1000)
    with pytest.raises(ConfigError, match="would inflate to"):
        read_archive(root / ARCHIVE)
