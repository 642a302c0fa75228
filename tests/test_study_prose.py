"""Numbers the study report quotes about its clients are those of its generated tables.

``experiments/heterogeneity_sampling.md`` quotes the variant's worst estimator round of seed 7
and the range of client sizes; both are read here from ``population.md`` (written by
``python experiments/heterogeneity_sampling.py --report-only`` from the run records).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "experiments" / "heterogeneity_sampling.md"
POPULATION = ROOT / "experiments" / "results" / "heterogeneity_s2" / "population.md"


def population_rows() -> dict[int, list[str]]:
    rows = [line.strip("|").split(" | ") for line in POPULATION.read_text().splitlines()
            if line.startswith("| ") and line[2].isdigit()]
    return {int(cells[0]): [c.strip() for c in cells] for cells in rows}


def test_seed_7_worst_round_is_quoted_as_generated():
    seed7 = population_rows()[7]
    worst_round, auc = seed7[3], seed7[5]
    alpha_02 = next(part for part in seed7[6].split("; ") if part.startswith("0.2:")).split(": ")[1]
    text = " ".join(REPORT.read_text().split())
    assert f"worst round ({worst_round})" in text
    assert f"AUC {auc} for that group" in text and f"span {alpha_02}" in text


def test_client_sizes_are_quoted_as_generated():
    rows = population_rows()
    assert len(rows) == 10
    low = min(int(r[1].split("-")[0]) for r in rows.values())
    high = max(int(r[1].split("-")[1]) for r in rows.values())
    assert f"client sizes span {low:,}-{high:,} examples" in " ".join(REPORT.read_text().split())
