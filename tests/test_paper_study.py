"""The paper-study script (experiments/paper_fmnist_s2.py) on hand-made run records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "paper_fmnist_s2.py"


@pytest.fixture(scope="module")
def study() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))  # the scripts import experiments/sweep.py, as when run directly
    spec = importlib.util.spec_from_file_location("paper_fmnist_s2", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root: Path, sampler: str, seed: int, accuracies: list[float], finished: bool = True) -> None:
    run_dir = root / f"{sampler}_seed{seed}"
    run_dir.mkdir(parents=True)
    config = {"dataset": {"name": "fmnist"}, "partitioner": {"_target_": "x.GroupsPartitioner", "alphas": [0.001, 0.2]},
              "sampler": {"_target_": f"fedsim.selection.{sampler}"}, "seed": seed, "num_clients": 4, "clients_per_round": 2,
              "num_rounds": len(accuracies)}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"round": i + 1, "accuracy": a, "selected": [0, 2], "probe_seconds": 2.0, "train_seconds": 4.0}
            for i, a in enumerate(accuracies)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "partition.json").write_text(json.dumps({"groups": [0, 0, 1, 1]}))
    if finished:
        (run_dir / "summary.json").write_text(json.dumps({"sampler": sampler, "final_accuracy": accuracies[-1]}))


def test_summary_table_from_the_compare_package(study: ModuleType, tmp_path: Path) -> None:
    write_run(tmp_path, "random", 0, [0.5, 0.8, 0.7, 0.8])  # raw 2, 2-round mean: round 3 ((0.8 + 0.7) / 2)
    write_run(tmp_path, "random", 1, [0.5, 0.6, 0.8, 0.8])  # raw 3, 2-round mean: round 4
    write_run(tmp_path, "hics", 0, [0.8, 0.8, 0.8, 0.8])  # raw 1, 2-round mean: round 2
    write_run(tmp_path, "hics", 1, [0.5, 0.6, 0.6, 0.6])  # never: censored at 4
    write_run(tmp_path, "hics", 2, [0.5], finished=False)  # unfinished: left out

    text = study.summarise(tmp_path, target=0.75, smooth=2, command="cmd")

    assert text == (tmp_path / "paper_summary.md").read_text()
    # random/sampler ratios by seed: raw 2/1, 3/4 -> geometric mean sqrt(1.5) = 1.22
    assert "| random (size-proportional) | 2, 3 | 2 | 1 (baseline) | 3, 4 | 3 | 1 (baseline) | 149 | 1.00 |" in text
    assert "| HiCS-FL | 1, >4 | 1 | 1.22 [0.00, 622.69] | 2, >4 | 2 | 1.22 [0.09, 16.10] |" in text  # 3/2, 4/4
    assert "| 60 | 2.48 |" in text
    assert "| random (size-proportional) | 2.0 | 4.0 | 20 |" in text  # (2 + 4) s x 200 rounds / 60
    for name in ("comparison.md", "comparison.csv", "paired.csv", "accuracy.png", "participation.png"):
        assert (tmp_path / name).is_file(), name
    assert "hics_seed2 (hics, seed 2): 1 round(s) recorded" in (tmp_path / "comparison.md").read_text()


def test_runs_launch_one_joblib_multirun(study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(subprocess, "run",
                        lambda command, **kw: calls.append((command, kw)) or subprocess.CompletedProcess(command, 0))
    import sweep

    sweep.run_sweep(tmp_path, "paper_fmnist_s2", ["random", "hics"], [0, 1], 2, ["num_rounds=50"])
    command, kwargs = calls[0]
    assert command[1:] == ["-m", "fedsim.cli", "-m", "+experiment=paper_fmnist_s2", "seed=0,1", "sampler=random,hics",
                           "progress=false", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                           f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${sampler.name}_seed${seed}",
                           "num_rounds=50"]
    assert kwargs["stdout"] is subprocess.DEVNULL


def test_a_failed_run_stops_the_script_in_one_line_with_its_exit_code(
        study: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The run has already said why (e.g. a missing dataset); the script adds one line, not a traceback."""
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(command, 2))
    import sweep
    from fedsim.errors import run_script

    code = run_script(lambda: sweep.run_sweep(tmp_path, "paper_fmnist_s2", ["random"], [0]), "study.py")
    assert code == 2
    assert capsys.readouterr().err == "study.py: a fedsim run stopped with exit code 2; its message is above\n"


def test_no_runs(study: ModuleType, tmp_path: Path) -> None:
    assert study.summarise(tmp_path, command="cmd") == "no finished runs\n"
