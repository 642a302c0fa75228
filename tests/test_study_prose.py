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


AGAINST_FEDCOR = ROOT / "experiments" / "results" / "heterogeneity_s2" / "against_fedcor" / "headline.md"
CLIENT_COST = ROOT / "experiments" / "results" / "heterogeneity_s2" / "client_cost.md"


def table_rows(path: Path) -> dict[tuple[str, str], list[str]]:
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in path.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| sampler")]
    return {(r[0], r[1]): r for r in rows}


def test_variant_against_fedcor_is_quoted_as_generated():
    """The FedCor section's intervals and p-values are those of against_fedcor/headline.md."""
    rows = table_rows(AGAINST_FEDCOR)
    text = " ".join(REPORT.read_text().split())
    for metric in ("rounds to target (raw)", "rounds to target (smoothed)", "mean accuracy (AUC/R)",
                   "final-window accuracy"):
        _, _, seeds, estimate, p, holm, verdict = rows[("hics_diverse", metric)]
        interval = estimate.split(" (")[0]
        assert seeds == "10" and f"| {interval} | {p}, {holm} |" in text, metric
    assert rows[("hics_diverse", "rounds to target (raw)")][6] == "better"
    oracle = rows[("hics_oracle", "rounds to target (raw)")][3].split(" (")[0]
    assert f"The oracle, for scale: {oracle}." in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    speed = rows[("hics_diverse", "rounds to target (raw)")]
    accuracy = rows[("hics_diverse", "mean accuracy (AUC/R)")]
    assert (f"reaches 75% {speed[3].split(' (')[0]} times sooner (FedCor / variant) and is "
            f"{accuracy[3].split(' (')[0]} higher in mean accuracy over 200 rounds, both better "
            f"(Holm p {speed[5]}, {accuracy[5]})") in readme


def test_client_cost_is_quoted_as_generated():
    costs = {r[0]: r for r in table_rows(CLIENT_COST).values()}
    text = " ".join(REPORT.read_text().split())
    fedcor, variant = costs["fedcor"], costs["hics_diverse"]
    assert f"({variant[1]} KiB per round)" in text
    assert f"{fedcor[2]} extra messages (loss reports), {fedcor[3]} KiB and {fedcor[4]} examples" in text
    assert variant[2] == variant[3] == variant[4] == "0.0" and "asks for 0.0 of each" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"FedCor asks clients for {fedcor[2]} extra messages and {fedcor[4]} examples" in readme
