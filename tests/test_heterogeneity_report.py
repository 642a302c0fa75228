"""The heterogeneity study's report helpers (experiments/heterogeneity_sampling.py and
experiments/estimate_smoothing.py) on hand-made records."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_script(name: str) -> ModuleType:
    sys.path.insert(0, str(EXPERIMENTS))  # the scripts import experiments/sweep.py, as when run directly
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study() -> ModuleType:
    return load_script("heterogeneity_sampling")


@pytest.fixture(scope="module")
def smoothing() -> ModuleType:
    return load_script("estimate_smoothing")


def test_kendall_outside_ties_scores_the_truth_one_and_ignores_near_single_class_pairs(study) -> None:
    true = np.array([0.0, 0.007, 0.02, 0.9, 1.5])
    assert study.kendall_outside_ties(true, true) == 1.0
    # the three near-single-class clients in the reverse order: only their own pairs are wrong
    estimate = np.array([0.03, 0.02, 0.01, 0.9, 1.5])
    assert study.kendall_outside_ties(estimate, true) == 1.0
    assert study.kendall_outside_ties(estimate, true, tie_below=0.0) < 1.0
    # a balanced client estimated below a single-class one: one of the 7 kept pairs discordant
    swapped = np.array([0.95, 0.0, 0.0, 0.9, 1.5])
    kept_pairs = 10 - 3  # the 3 pairs among clients 0-2 are left out
    assert study.kendall_outside_ties(swapped, true) == pytest.approx((kept_pairs - 2) / kept_pairs)


def test_most_balanced_group_only_when_alphas_differ(study) -> None:
    groups = np.array([0, 0, 1, 1, 2])
    assert study.most_balanced(groups, [0.001, 0.2, 0.2]).tolist() == [False, False, True, True, True]
    assert study.most_balanced(groups, [0.001, 0.001, 0.001]) is None  # setting 3: nothing to separate
    assert study.most_balanced(groups, None) is None


def write_estimate_run(run_dir: Path, selected: list[list[int]], produced: dict[int, dict[int, float]]) -> None:
    """Records of a run whose participation of client c in round t produced estimate produced[t][c];
    sampler.jsonl row t holds the estimates from the rounds before t, as the sampler records them."""
    run_dir.mkdir(parents=True)
    true = [0.0, 0.5, 1.0, 1.5]
    (run_dir / "partition.json").write_text(json.dumps({"label_entropy": true}))
    latest: list[float | None] = [None] * len(true)
    sampler_rows, metric_rows = [], []
    for t, picks in enumerate(selected, start=1):
        sampler_rows.append({"round": t, "entropy": list(latest)})
        metric_rows.append({"round": t, "selected": picks})
        for c in picks:
            latest[c] = produced[t][c]
    sampler_rows.append({"round": len(selected) + 1, "entropy": list(latest)})  # as a longer run would
    (run_dir / "sampler.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sampler_rows))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metric_rows))


def test_smoothing_history_takes_each_participation_s_own_estimate(smoothing, tmp_path: Path) -> None:
    selected = [[0, 1], [2, 3], [0, 1], [2, 3]]
    produced = {1: {0: 0.1, 1: 0.4}, 2: {2: 1.1, 3: 1.4}, 3: {0: 0.3, 1: 0.8}, 4: {2: 0.9, 3: 1.6}}
    write_estimate_run(tmp_path / "run", selected, produced)
    table = smoothing.smoothed_spearman(tmp_path / "run").set_index(["round", "smoothing"])["spearman"]
    # scored from round 3 (every client estimated after round 2's participations)
    assert sorted({r for r, _ in table.index}) == [3, 4, 5]
    # round 5 uses round 4's participations: latest 0.3, 0.8, 0.9, 1.6 is in the true order
    assert table[(5, "latest")] == pytest.approx(1.0)
    # the mean of all: client 0 (0.1+0.3)/2, 1 (0.4+0.8)/2, 2 (1.1+0.9)/2, 3 (1.4+1.6)/2
    assert table[(5, "mean of all")] == pytest.approx(1.0)
    # round 4: 0.3, 0.8, 1.1, 1.4: in order too; an off-by-one history would hold fewer rounds
    assert len(table) == 3 * len(smoothing.SMOOTHINGS)


def test_smoothing_refuses_records_that_do_not_line_up(smoothing, tmp_path: Path) -> None:
    write_estimate_run(tmp_path / "run", [[0, 1], [2, 3], [0, 1]],
                       {1: {0: 0.1, 1: 0.4}, 2: {2: 1.1, 3: 1.4}, 3: {0: 0.3, 1: 0.8}})
    metrics = tmp_path / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows[2]["selected"] = [2, 3]  # who trained no longer matches the estimates that changed
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="do not line up"):
        smoothing.smoothed_spearman(tmp_path / "run")


def test_estimator_quality_scores_rounds_after_warm_up_and_no_auc_for_one_alpha(study, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    true = [0.0, 0.01, 0.8, 1.2]
    (run / "partition.json").write_text(json.dumps({"label_entropy": true, "groups": [0, 0, 1, 1]}))
    rows = [{"round": 1, "entropy": [None] * 4}, {"round": 2, "entropy": [0.1, None, 0.9, 1.0]},
            {"round": 3, "entropy": [0.2, 0.1, 0.9, 1.0]}, {"round": 4, "entropy": [0.2, 0.1, 1.1, 1.0]}]
    (run / "sampler.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = study.estimator_quality(run, [0.001, 0.2])
    assert [r["round"] for r in scored] == [3, 4]  # rounds 1-2: not every client estimated yet
    assert scored[0]["kendall_outside"] == 1.0 and scored[0]["spearman"] < 1.0  # only the near-single pair is off
    assert scored[1]["kendall_outside"] == pytest.approx(3 / 5)  # 5 kept pairs, the 0.8/1.2 pair now reversed
    assert scored[0]["auc"] == 1.0
    assert all(np.isnan(r["auc"]) for r in study.estimator_quality(run, [0.001, 0.001]))


def test_estimator_quality_under_a_join_schedule_scores_the_connected_clients(study, tmp_path: Path) -> None:
    """faults=dynamic_paper: clients not yet connected have no estimate after warm-up; the rounds
    are scored over those estimated, with no AUC until the most balanced group has joined."""
    run = tmp_path / "run"
    run.mkdir()
    true = [0.0, 0.5, 0.8, 1.2, 1.5]
    (run / "partition.json").write_text(json.dumps({"label_entropy": true, "groups": [0, 0, 0, 1, 1]}))
    rows = [{"round": 1, "phase": "warmup", "entropy": [0.1, None, None, None, None]},
            {"round": 2, "phase": "cluster", "entropy": [0.1, 0.6, 0.7, None, None]},
            {"round": 3, "phase": "cluster", "entropy": [0.1, 0.6, 0.7, None, 1.4]},
            {"round": 4, "phase": "warmup", "entropy": [0.1, 0.6, 0.7, 1.0, 1.4]}]
    (run / "sampler.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = study.estimator_quality(run, [0.001, 0.2])
    assert [r["round"] for r in scored] == [2, 3]  # warm-up rounds are left out, estimated or not
    assert scored[0]["spearman"] == 1.0 and np.isnan(scored[0]["auc"])  # the balanced group has not joined
    assert scored[1]["auc"] == 1.0


def test_client_cost_counts_what_a_sampler_asks_beyond_training(study, tmp_path: Path) -> None:
    """client_cost.md: per sampler, the mean per round over rounds and seeds of metrics.jsonl's cost fields."""
    import pandas as pd
    from types import SimpleNamespace

    runs = []
    for sampler, seed, extra in (("fedcor", 0, [50, 50]), ("fedcor", 1, [50, 0]), ("hics_diverse", 0, [0, 0])):
        run = tmp_path / f"{sampler}_seed{seed}"
        run.mkdir()
        lines = [{"round": r + 1, "train_reply_bytes": 2048, "extra_messages": e, "extra_bytes": 1024 * e,
                  "extra_client_examples": 600 * e, "selection_seconds": 0.002} for r, e in enumerate(extra)]
        lines[0].pop("extra_bytes")  # a field a round did not record counts as 0
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        runs.append({"dir": str(run), "sampler": sampler, "seed": seed})
    path = study.write_client_cost(tmp_path, SimpleNamespace(runs=pd.DataFrame(runs)))
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ")
            for line in path.read_text().splitlines() if line.startswith("| ") and not line.startswith("| sampler")}
    assert [c.strip() for c in rows["fedcor"][1:]] == ["2.0", "37.5", "12.5", "22500.0", "2.0"]  # KiB: 0 in each first round
    assert [c.strip() for c in rows["hics_diverse"][1:]] == ["2.0", "0.0", "0.0", "0.0", "2.0"]


def test_class_coverage_pools_the_aggregated_clients_labels_and_pairs_against_random(study, tmp_path: Path) -> None:
    """cohort_labels: what a round trained on (failed and rejected clients left out); class_coverage.md
    pairs each sampler's per-run mean against random's, seed by seed."""
    import pandas as pd
    from types import SimpleNamespace

    histograms = [[10, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0], [5, 5, 0, 0]]
    runs, rounds = [], []
    for sampler, cohorts in (("random", [[0, 1], [1, 2]]), ("hics", [[0, 0], [3, 3]])):
        for seed in (0, 1, 2):
            run = tmp_path / f"{sampler}_seed{seed}"
            run.mkdir()
            (run / "partition.json").write_text(json.dumps({"label_histograms": histograms}))
            runs.append({"run": run.name, "dir": str(run), "sampler": sampler, "seed": seed})
            for r, cohort in enumerate(cohorts, start=1):
                rounds.append({"run": run.name, "sampler": sampler, "seed": seed, "round": r, "selected": cohort,
                               "failed": [], "rejected": {}})
    rounds.append({"run": "random_seed0", "sampler": "random", "seed": 0, "round": 3, "selected": [0, 2, 3],
                   "failed": [2], "rejected": {"3": "NaN or inf values"}})
    records = SimpleNamespace(runs=pd.DataFrame(runs), rounds=pd.DataFrame(rounds))
    cohorts = study.cohort_labels(records)
    third = cohorts[cohorts["sampler"].eq("random") & cohorts["seed"].eq(0) & cohorts["round"].eq(3)]
    assert third["covered"].tolist() == [1] and third["entropy"].tolist() == [0.0]  # only client 0 was aggregated
    random_first = cohorts[cohorts["sampler"].eq("random") & cohorts["round"].eq(1)]
    assert random_first["covered"].eq(2).all() and np.allclose(random_first["entropy"], np.log(2))
    text = study.write_class_coverage(tmp_path, records).read_text()
    hics = next(line for line in text.splitlines() if line.startswith("| hics | classes covered"))
    # random covers 2 classes every round (seed 0: 2, 2, 1); hics 1 then 2: differences -0.5, -0.5, -1/6
    assert "| 3 |" in hics and hics.split(" | ")[-1].strip("| ") == "not distinguishable (n=3 seeds)"
    assert "-0.389" in hics
    # hics seed 2 drawn with other random streams than random's seed 2: not a pair
    versions = records.runs.assign(streams_version=[1, 1, 1, 1, 1, 2])
    mixed = study.write_class_coverage(tmp_path, SimpleNamespace(runs=versions, rounds=records.rounds)).read_text()
    assert "| hics | classes covered per round | 2 | -0.333 [" in mixed  # seeds 0-1: -1/6, -0.5


def test_draw_balance_shares_trained_classes_and_ties_picks_to_cluster_size(study, tmp_path: Path) -> None:
    """trained_class_shares sums what was aggregated (a failed client's data is not trained on);
    cluster_size_and_picks reads only rounds after warm-up and finds that the lone client of a
    small cluster, drawn as often as a whole large cluster, is picked most."""
    import pandas as pd
    from types import SimpleNamespace

    histograms = [[10, 0], [10, 0], [0, 10], [0, 10]]
    run = tmp_path / "hics_diverse_seed0"
    run.mkdir()
    (run / "partition.json").write_text(json.dumps({"label_histograms": histograms,
                                                    "label_entropy": [0.0, 0.0, 0.0, 0.0]}))
    picks = {1: [0, 1], 2: [3, 0], 3: [3, 1], 4: [3, 2]}
    rows = [{"round": 1, "entropy": [None, None, None, None]}]  # warm-up: not every client estimated
    rows += [{"round": t, "entropy": [0.1, 0.2, 0.3, 0.6], "cluster": [0, 0, 0, 1]} for t in (2, 3, 4)]
    rows += [{"round": 5, "entropy": [0.1, 0.2, 0.3, 0.6], "cluster": [0, 0, None, 1]}]  # client 2 not clustered
    (run / "sampler.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rounds = [{"run": run.name, "sampler": "hics_diverse", "seed": 0, "round": t, "selected": c,
               "failed": [2] if t == 4 else [], "rejected": {}} for t, c in picks.items()]
    records = SimpleNamespace(runs=pd.DataFrame([{"run": run.name, "dir": str(run), "sampler": "hics_diverse",
                                                  "seed": 0}]), rounds=pd.DataFrame(rounds))
    shares = study.trained_class_shares(records)
    # aggregated: 0,1 | 3,0 | 3,1 | 3 (client 2 failed): class 0 four times, class 1 three times
    assert shares[["class 0", "class 1"]].iloc[0].tolist() == pytest.approx([4 / 7, 3 / 7])
    assert shares["spread"].iloc[0] == pytest.approx(1 / 7)
    row = study.cluster_size_and_picks(run, {t: [c for c in cs if not (t == 4 and c == 2)] for t, cs in picks.items()})
    assert row["rounds"] == 3 and row["alike"] == 4 and row["size range"] == "1.0-3.0" and row["picks range"] == "0-3"
    assert row["size~picks (all)"] < -0.7  # client 3 (cluster of one) picked 3 times in rounds 2-4
    joined = [{"round": 1, "phase": "warmup", "entropy": [0.1, None, None, None], "cluster": [None] * 4}]
    joined += [{"round": t, "phase": "cluster", "entropy": [0.1, 0.2, 0.3, None], "cluster": [0, 0, 1, None]}
               for t in (2, 3, 4)]  # a join schedule: client 3 never connects
    (run / "sampler.jsonl").write_text("".join(json.dumps(r) + "\n" for r in joined))
    row = study.cluster_size_and_picks(run, {2: [2, 0], 3: [2, 1], 4: [2, 0]})
    assert row["rounds"] == 3 and row["alike"] == 3 and row["size range"] == "1.0-2.0" and row["picks range"] == "1-3"
    assert row["size~picks (all)"] < -0.8  # over the three connected clients: client 2 alone, picked every round
    (run / "sampler.jsonl").write_text(json.dumps({"round": 1, "entropy": [0.1, 0.2, 0.3, 0.6]}) + "\n")
    assert study.cluster_size_and_picks(run, picks) is None  # a sampler that records no clusters
    text = study.write_draw_balance(tmp_path, records).read_text()
    assert "| hics_diverse | 0.571 | 0.429 | 0.143 |" in text


def test_the_committed_setting_1_selection_tables_are_regenerated_from_its_archive(study, tmp_path: Path) -> None:
    """Four samplers: the tables' row order (run-name order) and every number as committed."""
    import shutil

    from fedsim.results.archive import ARCHIVE, unpacked

    results = EXPERIMENTS / "results" / "heterogeneity_s1"
    if not (results / ARCHIVE).exists():
        pytest.skip("setting 1 is not packed in this checkout")
    shutil.copy(results / ARCHIVE, tmp_path / ARCHIVE)
    with unpacked(tmp_path) as root:
        records = study.load([root]).finished()
        for write in (study.write_draw_balance, study.write_class_coverage):
            made = write(root, records).read_text().split("\n", 1)[1]  # below the line naming the command
            assert made == (results / f"{write.__name__.removeprefix('write_')}.md").read_text().split("\n", 1)[1]
