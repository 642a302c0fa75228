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
    text = report_text()
    assert f"worst round ({worst_round})" in text
    assert f"AUC {auc} for that group" in text and f"span {alpha_02}" in text


def test_client_sizes_are_quoted_as_generated():
    rows = population_rows()
    assert len(rows) == 10
    low = min(int(r[1].split("-")[0]) for r in rows.values())
    high = max(int(r[1].split("-")[1]) for r in rows.values())
    assert f"client sizes span {low:,}-{high:,} examples" in report_text()


AGAINST_FEDCOR = ROOT / "experiments" / "results" / "heterogeneity_s2" / "against_fedcor" / "headline.md"
CLIENT_COST = ROOT / "experiments" / "results" / "heterogeneity_s2" / "client_cost.md"


def table_rows(path: Path) -> dict[tuple[str, str], list[str]]:
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in path.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| sampler")]
    return {(r[0], r[1]): r for r in rows}


def test_variant_against_fedcor_is_quoted_as_generated():
    """The FedCor section's intervals and p-values are those of against_fedcor/headline.md."""
    rows = table_rows(AGAINST_FEDCOR)
    text = report_text()
    for metric in ("rounds to target (raw)", "rounds to target (smoothed)", "mean accuracy (AUC/R)",
                   "final-window accuracy"):
        _, _, seeds, estimate, p, holm, verdict = rows[("hics_diverse", metric)]
        interval = estimate.split(" (")[0]
        assert seeds == "10" and f"| {interval} | {p}, {holm} |" in text, metric
    assert rows[("hics_diverse", "rounds to target (raw)")][6] == "better"
    oracle = rows[("hics_oracle", "rounds to target (raw)")][3].split(" (")[0]
    assert f"The oracle, for scale: {oracle}." in text
    readme = readme_text()
    speed = rows[("hics_diverse", "rounds to target (raw)")]
    accuracy = rows[("hics_diverse", "mean accuracy (AUC/R)")]
    assert (f"reaches 75% {speed[3].split(' (')[0]} times sooner (FedCor / variant) and is "
            f"{accuracy[3].split(' (')[0]} higher in mean accuracy over 200 rounds, both better "
            f"(Holm p {speed[5]}, {accuracy[5]})") in readme


def test_client_cost_is_quoted_as_generated():
    costs = {r[0]: r for r in table_rows(CLIENT_COST).values()}
    text = report_text()
    fedcor, variant = costs["fedcor"], costs["hics_diverse"]
    assert f"({variant[1]} KiB per round)" in text
    assert f"{fedcor[2]} extra messages (loss reports), {fedcor[3]} KiB and {fedcor[4]} examples" in text
    assert variant[2] == variant[3] == variant[4] == "0.0" and "asks for 0.0 of each" in text
    readme = readme_text()
    assert f"FedCor asks clients for {fedcor[2]} extra messages and {fedcor[4]} examples" in readme


PARITY = ROOT / "experiments" / "results" / "authors_parity" / "parity.md"
PARITY_DOC = ROOT / "docs" / "authors-parity.md"


def test_authors_parity_doc_quotes_parity_md():
    """docs/authors-parity.md's spread table and readings are parity.md's (the code's accuracy)."""
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in PARITY.read_text().splitlines()
            if line.startswith("| authors_parity")]
    spread = {(r[0], r[1]): r[4:] for r in rows if len(r) == 8 and r[2] == "accuracy_batch_mean"}
    doc = " ".join(PARITY_DOC.read_text().split())
    for sampler in ("hics_reference", "random_proportional"):
        first, best, mean, last = spread[("authors_parity", sampler)]
        assert f"| `{sampler}` | {first} | {best} | {mean} | {last} |" in doc, sampler
    first, best, mean, _ = spread[("authors_parity_fallback_distances", "hics_reference")]
    assert f"first round at 70% {first}, best {best}, mean {mean}" in doc
    # per example and per-batch mean differ by at most 0.001, as the doc says
    per_example = {(r[0], r[1]): r[4:] for r in rows if len(r) == 8 and r[2] == "accuracy"}
    for key, values in per_example.items():
        for a, b in zip(values[1:], spread[key][1:]):
            assert all(abs(float(x) - float(y)) <= 0.001 + 1e-9 for x, y in zip(a.split("-"), b.split("-")))
    phases = [r for r in rows if len(r) == 4]
    assert phases and all(r[2:] == ["55", "5"] for r in phases)
    assert "in all 55 rounds after the 5 warm-up rounds" in doc


def test_authors_parity_doc_quotes_the_paired_comparison_and_the_one_seed_look():
    doc = " ".join(PARITY_DOC.read_text().split())
    comparison = (PARITY.parent / "comparison.md").read_text()
    speed = next(line for line in comparison.splitlines() if line.startswith("| rounds to target (raw) | hics_reference"))
    accuracy = next(line for line in comparison.splitlines() if line.startswith("| mean accuracy (AUC/R) | hics_reference"))
    ratio, difference = speed.split(" | ")[5], accuracy.split(" | ")[4]
    assert f"rounds to 70% {ratio} (random_proportional / hics_reference), mean accuracy +{difference}" in doc
    runs = {(r[0], r[1], r[2]): r for r in ([c.strip() for c in line.strip("|").split(" | ")]
                                            for line in PARITY.read_text().splitlines()) if len(r) == 7}
    defaults = runs[("authors_parity_fedsim_defaults", "random_proportional_seed0", "accuracy")]
    code = runs[("authors_parity", "random_proportional_seed0", "accuracy")]
    assert (f"best {defaults[4]} and mean {defaults[5]} against {code[4]} and {code[5]} with the code's settings "
            f"on the same seed, first round at 70% {code[3]} in both") in doc and defaults[3] == code[3]


def report_text() -> str:
    """The study report, whitespace collapsed (quotes may wrap across lines)."""
    return " ".join(REPORT.read_text().split())


def report_section(start: str, stop: str) -> str:
    """The study report's text from heading ``start`` to ``stop``, whitespace collapsed."""
    text = report_text()
    return text[text.index(start):text.index(stop)]


def readme_text() -> str:
    """README.md, whitespace collapsed (quotes may wrap across lines)."""
    return " ".join((ROOT / "README.md").read_text().split())


def variant_readings(study: Path) -> tuple[list[str], list[str]]:
    """headline.md's rows for the variant: rounds to 75% (raw) and mean accuracy."""
    rows = table_rows(study / "headline.md")
    return rows[("hics_diverse", "rounds to target (raw)")], rows[("hics_diverse", "mean accuracy (AUC/R)")]


def size_span(study: Path) -> tuple[int, int, int]:
    """population.md: the smallest and largest client over all seeds, and how many seeds."""
    sizes = [line.split(" | ")[1] for line in (study / "population.md").read_text().splitlines()
             if line.startswith("| ") and line[2].isdigit()]
    return min(int(s.split("-")[0]) for s in sizes), max(int(s.split("-")[1]) for s in sizes), len(sizes)


def spearman_means(study: Path) -> list[float]:
    """estimator_quality.md: the variant's mean Spearman per 25-round window."""
    return [float(line.split(" | ")[3]) for line in (study / "estimator_quality.md").read_text().splitlines()
            if line.startswith("| hics_diverse")]


# (row label in the report, generated table, metric) of the accuracy and coverage readings
ACCURACY_AND_COVERAGE = (("mean accuracy over 200 rounds", "headline.md", "mean accuracy (AUC/R)"),
                         ("last 10 rounds", "headline.md", "final-window accuracy"),
                         ("classes covered per round", "class_coverage.md", "classes covered per round"),
                         ("cohort label entropy (nats)", "class_coverage.md", "cohort label entropy"))


S3 = ROOT / "experiments" / "results" / "heterogeneity_s3"


def test_setting_3_is_quoted_as_generated():
    """Setting 3's table: the accuracy intervals from headline.md, the coverage ones from class_coverage.md."""
    section = report_section("## Setting 3 (10 paired seeds)", "## Beyond the paper's partition")
    headline = table_rows(S3 / "headline.md")
    for label, table, metric in ACCURACY_AND_COVERAGE:
        rows = table_rows(S3 / table)
        cells = [rows[(s, metric)][3].split(" (")[0] for s in ("hics", "hics_oracle", "hics_diverse")]
        variant = rows[("hics_diverse", metric)]
        assert all(rows[(s, metric)][2] == "10" for s in ("hics", "hics_oracle", "hics_diverse")), metric
        assert f"| {label} | {' | '.join(cells)} | {variant[4]}, {variant[5]} | {variant[6]} |" in section, metric
    for sampler, name in (("hics_oracle", "paper HiCS-FL and the oracle"), ("hics_diverse", "the variant")):
        raw = headline[(sampler, "rounds to target (raw)")]
        assert f"{raw[3].split(' (')[0]} for {name}" in section and raw[6].startswith("not distinguishable")
    assert headline[("hics", "rounds to target (raw)")][3] == headline[("hics_oracle", "rounds to target (raw)")][3]
    estimates = [part.split(": ")[1] for line in (S3 / "population.md").read_text().splitlines()
                 if line.startswith("| ") and line[2].isdigit() for part in line.split(" | ")[-1].strip("| ").split("; ")]
    assert max(float(e.split("-")[1]) for e in estimates) == 0.02 and "lie within 0.00-0.02 nats" in section
    s2 = table_rows(ROOT / "experiments" / "results" / "heterogeneity_s2" / "class_coverage.md")
    assert f"cover {s2[('hics_diverse', 'classes covered per round')][3].split(' (')[0]} classes more" in section


def test_setting_3_volatility_and_runs_at_75_are_quoted_as_generated():
    section = report_section("## Setting 3 (10 paired seeds)", "## Beyond the paper's partition")
    rows = table_rows(S3 / "comparison.md")
    volatility = rows[("volatility", "hics_diverse")]
    assert f"+{volatility[4]} (`comparison.md`, {volatility[8]})" in section
    reached = {sampler: (rows[(sampler, "10")][5], rows[(sampler, "10")][9])
               for sampler in ("random", "hics_diverse", "hics", "hics_oracle")}
    assert all(smoothed == "0/10" for _, smoothed in reached.values()) and "0/10 each on the trailing mean" in section
    assert (f"{reached['random'][0]} of random's runs, {reached['hics_diverse'][0]} of the variant's and none of "
            "the others'") in section
    assert reached["hics"][0] == reached["hics_oracle"][0] == "0/10"


def test_readme_quotes_setting_3_as_generated():
    rows = table_rows(S3 / "headline.md")
    cells = {s: rows[(s, "mean accuracy (AUC/R)")] for s in ("hics", "hics_oracle", "hics_diverse")}
    readme = readme_text()
    quoted = (f"paper HiCS-FL {cells['hics'][3].split(' (')[0]}, the oracle {cells['hics_oracle'][3].split(' (')[0]}, "
              f"the variant {cells['hics_diverse'][3].split(' (')[0]}; Holm p {cells['hics'][5]} each")
    assert quoted in readme
    assert {c[5] for c in cells.values()} == {cells["hics"][5]} and {c[6] for c in cells.values()} == {"worse"}


D01 = ROOT / "experiments" / "results" / "heterogeneity_dirichlet01"


def speed_readings(ratio: str) -> tuple[tuple[str, str, str], ...]:
    """The report's rounds-to-75% rows (label, table, metric) for a ratio such as ``random / variant``."""
    return ((f"rounds to 75% (raw), {ratio}", "headline.md", "rounds to target (raw)"),
            (f"rounds to 75% (trailing mean of 5), {ratio}", "headline.md", "rounds to target (smoothed)"))


def assert_rows_quoted(tables: Path, sampler: str, section: str, readings, seeds: int | str = 10) -> None:
    """Each reading's row in the report, ``| label | estimate | p, Holm | verdict |``, as ``tables``'
    row for ``sampler`` gives it, at ``seeds`` paired seeds."""
    for label, table, metric in readings:
        _, _, paired, estimate, p, holm, verdict = table_rows(tables / table)[(sampler, metric)]
        assert paired == str(seeds), metric
        assert f"| {label} | {estimate.split(' (')[0]} | {p}, {holm} | {verdict} |" in section, metric


def assert_variant_rows(study: Path, section: str, seeds: int = 10) -> None:
    """A wider setting's table in the report: the variant's rounds-to-75% ratios (headline.md) and
    accuracy and coverage readings, each row as generated, at ``seeds`` paired seeds."""
    assert_rows_quoted(study, "hics_diverse", section, (*speed_readings("random / variant"), *ACCURACY_AND_COVERAGE), seeds)


def runs_at_target(study: Path, seeds: int | str = 10,
                   samplers: tuple[str, ...] = ("random", "hics_diverse")) -> dict[str, tuple[str, str]]:
    """comparison.md's runs that reached 75% (single rounds, trailing mean) per sampler, ``seeds``
    seeds each."""
    rows = table_rows(study / "comparison.md")
    return {s: (rows[(s, str(seeds))][5], rows[(s, str(seeds))][9]) for s in samplers}


def fewest_distinct(study: Path, sampler: str) -> list[int]:
    """selection_health.md: the fewest distinct clients ``sampler`` picked in any 50-round window, per run."""
    return [int(line.split(" | ")[2]) for line in (study / "selection_health.md").read_text().splitlines()
            if line.startswith(f"| {sampler} |")]


def coverage_blocks(study: Path, sampler: str) -> list[str]:
    """class_coverage.md: classes covered per round for ``sampler``, per 50-round block, as printed."""
    return [line.split(" | ")[4] for line in (study / "class_coverage.md").read_text().splitlines()
            if line.startswith(f"| {sampler} | ") and "-" in line.split(" | ")[1]]


def test_dirichlet01_is_quoted_as_generated():
    """The Dirichlet(0.1) table: headline.md's and class_coverage.md's rows for the variant."""
    section = report_section("### Dirichlet(0.1)", "### Dirichlet(0.3)")
    headline = table_rows(D01 / "headline.md")
    assert_variant_rows(D01, section)
    assert_rows_quoted(D01, "hics_oracle", section, (*speed_readings("random / oracle"), *ACCURACY_AND_COVERAGE[:2]))
    speed = {s: headline[(s, "rounds to target (raw)")][3].split(" ")[0] for s in ("hics_oracle", "hics_diverse")}
    assert f"speed-ups over random ({speed['hics_oracle']} and {speed['hics_diverse']})" in section
    assert {headline[(s, "rounds to target (raw)")][6] for s in speed} == {"better"}  # the second target, met
    reached = table_rows(D01 / "comparison.md")
    for sampler in ("random", "hics_diverse", "hics_oracle"):
        assert reached[(sampler, "10")][5] == reached[(sampler, "10")][9] == "10/10", sampler
    assert "(10/10 each, `comparison.md`)" in section and "All ten of its runs reached 75% too" in section
    coverage = table_rows(D01 / "class_coverage.md")
    assert (f"the oracle {coverage[('hics_oracle', 'classes covered per round')][3]}, the variant "
            f"{coverage[('hics_diverse', 'classes covered per round')][3]}") in section
    low, high, _ = size_span(D01)
    assert f"sizes span {low:,}-{high:,} examples" in section
    means = spearman_means(D01)
    assert f"Spearman with the true entropies {min(means):.2f}-{max(means):.2f}" in section
    oracle, variant = fewest_distinct(D01, "hics_oracle"), fewest_distinct(D01, "hics_diverse")
    assert len(oracle) == len(variant) == 10
    assert (f"picked only {min(oracle)}-{max(oracle)} distinct clients per seed, the variant "
            f"{min(variant)}-{max(variant)}") in section


SHARDS = ROOT / "experiments" / "results" / "heterogeneity_shards"


def draw_balance(path: Path) -> dict[str, list[list[str]]]:
    """draw_balance.md's three tables by their width: class mix (12 cells), spread paired against
    random (6), clusters per run (9)."""
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in path.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| sampler")]
    return {name: [r for r in rows if len(r) == width] for name, width in (("mix", 12), ("spread", 6), ("clusters", 9))}


def test_shards_is_quoted_as_generated():
    """The shards table and its reading: headline.md, class_coverage.md, draw_balance.md, comparison.md."""
    section = report_section("### Shards", "### Setting 2 with unreliable clients")
    assert_variant_rows(SHARDS, section)
    balance = draw_balance(SHARDS / "draw_balance.md")
    _, seeds, spread, p, holm, verdict = next(r for r in balance["spread"] if r[0] == "hics_diverse")
    assert seeds == "10" and f"| class-share spread over the run | {spread} | {p}, {holm} | {verdict} |" in section
    variant = [r for r in balance["clusters"] if r[0] == "hics_diverse"]
    alike, size_picks = [int(r[3]) for r in variant], [float(r[7]) for r in variant]
    picks = [int(x) for r in variant for x in r[5].split("-")]
    assert len(variant) == 10 and f"{min(alike)}-{max(alike)} clients per seed" in section
    assert f"-{abs(max(size_picks)):.2f} to -{abs(min(size_picks)):.2f}" in section and max(size_picks) < 0
    assert f"range from {min(picks)} to {max(picks)}" in section
    mix = {r[0]: [float(x) for x in r[1:11]] for r in balance["mix"]}
    assert f"class 6 for {mix['hics_diverse'][6]:.3f}" in section and f"classes 3 and 8 for {mix['hics_diverse'][3]:.3f}" in section
    assert mix["hics_diverse"][3] == mix["hics_diverse"][8] == min(mix["hics_diverse"])
    assert f"random's shares are {min(mix['random']):.3f}-{max(mix['random']):.3f}" in section
    comparison = table_rows(SHARDS / "comparison.md")
    reached = runs_at_target(SHARDS)
    assert reached["random"][0] == reached["hics_diverse"][0] == "10/10"
    assert (f"{reached['random'][1]} of random's runs and {reached['hics_diverse'][1]} of the variant's" in section)
    volatility = comparison[("volatility", "hics_diverse")]
    assert f"volatility +{volatility[4]}, `comparison.md`, {volatility[8]}" in section
    quality = {line.split(" | ")[3] for line in (SHARDS / "estimator_quality.md").read_text().splitlines()
               if line.startswith("| hics_diverse")}
    assert len(quality) == 1 and f"Spearman with the true entropies {quality.pop()} in every 25-round window" in section
    s3 = [float(r[7]) for r in draw_balance(S3 / "draw_balance.md")["clusters"] if r[0] == "hics_diverse"]
    assert f"between -{abs(max(s3)):.2f} and -{abs(min(s3)):.2f} in every seed" in section
    d01 = next(r for r in draw_balance(D01 / "draw_balance.md")["spread"] if r[0] == "hics_diverse")
    assert f"{d01[2]}), where the tilt" in section and d01[5] == "wider"


def test_readme_quotes_dirichlet01_as_generated():
    speed, accuracy = variant_readings(D01)
    readme = readme_text()
    assert (f"the variant reaches 75% {speed[3].split(' (')[0]} times sooner than random (random / variant) and is "
            f"{accuracy[3].split(' (')[0]} higher in mean accuracy over 200 rounds, both better "
            f"(Holm p {speed[5]}, {accuracy[5]})") in readme
    assert speed[6] == accuracy[6] == "better"
    assert table_rows(D01 / "headline.md")[("hics_diverse", "final-window accuracy")][6].startswith("not distinguishable")
    oracle = table_rows(D01 / "headline.md")[("hics_oracle", "rounds to target (raw)")]
    assert oracle[6] == "better" and f"faster than random there too, {oracle[3].split(' (')[0]}." in readme
    fedcor = table_rows(D01 / "against_fedcor" / "headline.md")[("hics_diverse", "mean accuracy (AUC/R)")]
    seeds, interval = fedcor[2], fedcor[3].split(" (")[0]
    assert seeds == "10"
    assert (f"FedCor on Dirichlet(0.1) ({seeds} seeds) is better than the variant: mean accuracy over 200 "
            f"rounds, variant - FedCor, {interval} (worse, Holm p {fedcor[5]}; rounds to 75% too)") in readme
    assert fedcor[6] == "worse"
    assert table_rows(D01 / "against_fedcor" / "headline.md")[("hics_diverse", "rounds to target (raw)")][6] == "worse"
    cost = {r[0]: r for r in table_rows(D01 / "client_cost.md").values()}["fedcor"]
    assert f"at the price of {cost[2]} extra messages and {cost[4]} client examples evaluated per round" in readme


def test_readme_quotes_shards_as_generated():
    rows = table_rows(SHARDS / "headline.md")
    accuracy, smoothed = rows[("hics_diverse", "mean accuracy (AUC/R)")], rows[("hics_diverse", "rounds to target (smoothed)")]
    readme = readme_text()
    assert (f"mean accuracy over 200 rounds {accuracy[3].split(' (')[0]} (Holm p {accuracy[5]}), and on the trailing "
            f"mean of 5 rounds it leans slower to 75%, {smoothed[3].split(' (')[0]} times as fast (p {smoothed[4]}, "
            f"Holm p {smoothed[5]}: not decided)") in readme
    assert accuracy[6] == "worse" and smoothed[6].startswith("not distinguishable") and float(smoothed[4]) < 0.05
    oracle = rows[("hics_oracle", "rounds to target (raw)")]
    assert oracle[6] != "better" and f"no faster than random on shards either, {oracle[3].split(' (')[0]} (random / oracle)" in readme


def test_authors_parity_doc_quotes_the_codes_own_runs():
    """The spread over seeds 0-2 of the authors' code and of fedsim with every switch as the code,
    as parity.md gives it (accuracy as the code counts it), in the doc's table."""
    spread = {(r[0], r[1], r[2]): r[3:] for r in ([c.strip() for c in line.strip("|").split(" | ")]
                                                  for line in PARITY.read_text().splitlines()) if len(r) == 8}
    doc = " ".join(PARITY_DOC.read_text().split())
    for label, study, sampler in (("random, the authors' code", "authors_code", "random (authors' code)"),
                                  ("`random_proportional`, fedsim", "authors_parity", "random_proportional"),
                                  ("`random_proportional` drawing as the code, fedsim", "authors_parity_round_seeded",
                                   "random_proportional"),
                                  ("HiCS-FL, the authors' code", "authors_code", "hics (authors' code)"),
                                  ("`hics_reference`, fedsim", "authors_parity", "hics_reference")):
        seeds, *cells = spread[(study, sampler, "accuracy_batch_mean")]
        assert seeds == "3", (study, sampler)
        assert f"| {label} | {' | '.join(cells)} |" in doc, label


def test_authors_parity_doc_quotes_fedsim_against_the_code_as_generated():
    """Welch's intervals (parity.md) and the random baselines' group picks (group_picks.md)."""
    table = [[c.strip() for c in line.strip("|").split(" | ")] for line in PARITY.read_text().splitlines()]
    welch = {(r[1], r[3]): r[1:] for r in table if len(r) == 10 and r[0] == "authors_parity"}
    seeded = {r[3]: r[1:] for r in table if len(r) == 10 and r[0] == "authors_parity_round_seeded"}
    assert seeded["first round >= 70%"][3] == "3"  # three runs drawing as the code
    first, best, mean, last = (seeded[m][7] for m in ("first round >= 70%", "best", "mean", "last 10"))
    doc = " ".join(PARITY_DOC.read_text().split())
    assert f"first round at 70% {first}, best {best}, mean {mean}, last 10 {last} (Welch p {seeded['last 10'][8]})" in doc
    for sampler in ("hics_reference", "random_proportional"):
        first, best, mean, last = (welch[(sampler, m)][7] for m in ("first round >= 70%", "best", "mean", "last 10"))
        assert f"First round at 70% {first}, best {best}, mean {mean}, last 10 {last}" in doc, sampler
    assert welch[("random_proportional", "last 10")][7].split(" [")[1].startswith("+")  # the interval excludes 0
    assert f"(Welch p {welch[('random_proportional', 'last 10')][8]})" in doc
    picks = {(r[0], r[2]): r for r in ([c.strip() for c in line.strip("|").split(" | ")]
                                       for line in (PARITY.parent / "group_picks.md").read_text().splitlines())
             if len(r) == 6 and r[2].isdigit()}
    code = [picks[("authors_code", s)] for s in "012"]
    fedsim = [picks[("authors_parity", s)] for s in "012"]

    def group(rows, column, g):
        return [row[column].split(" / ")[g] for row in rows]

    assert f"in {code[1][5]} and {code[2][5]} rounds" in doc and all(r[5] == "0 of 60" for r in fedsim[1:])
    balanced, balanced_last, skewed_last = group(code, 4, 4), group(code, 3, 4), group(code, 3, 1)
    assert (f"{', '.join(balanced[:2])} and {balanced[2]} of 600 picks (fedsim's draws: "
            f"{', '.join(group(fedsim, 4, 4))})") in doc
    assert (f"{', '.join(balanced_last[:2])} and {balanced_last[2]} of 100 in rounds 51-60, where the alpha 0.002 "
            f"group took {', '.join(skewed_last[:2])} and {skewed_last[2]} (fedsim: "
            f"{', '.join(group(fedsim, 3, 1))})") in doc


def test_exploration_price_is_quoted_from_the_tuning_records():
    """The price of exploration on tuning seeds 100-101: tuning/gamma2 (without) against
    tuning/explore07 (rate 0.7), in the study report and in docs/hics-fl.md alike."""
    import pandas as pd

    tuning = ROOT / "experiments" / "results" / "heterogeneity_s2_tuning"
    without, rate = (pd.read_csv(tuning / name / "per_run.csv").set_index("seed").sort_index()
                     for name in ("gamma2", "explore07"))
    assert list(without.index) == list(rate.index) == [100, 101]
    quoted = (f"rounds to 75% {without.rtt_raw[100]} -> {rate.rtt_raw[100]} and {without.rtt_raw[101]} -> "
              f"{rate.rtt_raw[101]}, mean accuracy")
    costs = " and ".join(f"{d:+.3f}".replace("+", "") for d in (rate.mean_acc - without.mean_acc))
    for doc in (REPORT, ROOT / "docs" / "hics-fl.md"):
        text = " ".join(doc.read_text().split())
        assert quoted in text and costs in text and "gamma2" in text and "explore1" not in text, doc.name


UNRELIABLE = ROOT / "experiments" / "results" / "heterogeneity_unreliable"


def test_unreliable_is_quoted_as_generated():
    """Setting 2 with faults=unreliable: headline.md's and class_coverage.md's rows, comparison.md's counts."""
    section = report_section("### Setting 2 with unreliable clients", "### Setting 2 with the paper's dynamic")
    assert_variant_rows(UNRELIABLE, section)
    reached = runs_at_target(UNRELIABLE)
    assert reached["random"][0] == reached["hics_diverse"][0] == "10/10"
    assert f"{reached['hics_diverse'][1]} of the variant's runs and {reached['random'][1]} of random's" in section
    fedcor = table_rows(UNRELIABLE / "headline.md").get(("fedcor", "rounds to target (raw)"))
    if fedcor and "#### FedCor with unreliable clients (in progress" in section:  # quoted seed counts follow the records
        seeds = fedcor[2]
        assert int(seeds) < 10 and f"(in progress, {seeds} of 10 seeds)" in section and f"holds its rows at {seeds} seeds" in section
        report = report_text()
        assert f"FedCor's unreliable runs at {seeds} of 10" in report and f"{seeds} with unreliable clients aside" in report


def test_readme_quotes_unreliable_as_generated():
    speed, accuracy = variant_readings(UNRELIABLE)
    readme = readme_text()
    assert (f"the variant reaches 75% {speed[3].split(' (')[0]} times sooner than random and is "
            f"{accuracy[3].split(' (')[0]} higher in mean accuracy, both better (Holm p {speed[5]}, {accuracy[5]})") in readme
    assert speed[6] == accuracy[6] == "better"
    oracle = table_rows(UNRELIABLE / "headline.md")[("hics_oracle", "rounds to target (raw)")]
    assert oracle[6] == "better" and (
        f"the oracle reaches 75% {oracle[3].split(' (')[0]} times sooner than random there") in readme


D03 = ROOT / "experiments" / "results" / "heterogeneity_dirichlet03"


def test_dirichlet03_is_quoted_as_generated():
    """The Dirichlet(0.3) table and its reading: headline.md, class_coverage.md, draw_balance.md,
    comparison.md, population.md, estimator_quality.md, selection_health.md."""
    section = report_section("### Dirichlet(0.3)", "### Shards")
    assert_variant_rows(D03, section)
    _, seeds, spread, p, holm, verdict = next(r for r in draw_balance(D03 / "draw_balance.md")["spread"]
                                              if r[0] == "hics_diverse")
    assert seeds == "10" and f"| class-share spread over the run | {spread} | {p}, {holm} | {verdict} |" in section
    reached = runs_at_target(D03)
    assert all(r == ("10/10", "10/10") for r in reached.values()) and "(10/10 each, `comparison.md`)" in section
    low, high, seeds_seen = size_span(D03)
    assert seeds_seen == 10 and f"sizes span {low:,}-{high:,} examples" in section
    means = spearman_means(D03)
    assert f"Spearman with the true entropies {min(means):.2f}-{max(means):.2f}" in section
    size_picks = [float(r[6]) for r in draw_balance(D03 / "draw_balance.md")["clusters"] if r[0] == "hics_diverse"]
    assert len(size_picks) == 10 and f"from {min(size_picks):+.2f} to {max(size_picks):+.2f} over all clients" in section
    fewest = {s: fewest_distinct(D03, s) for s in ("hics_diverse", "random")}
    assert set(fewest["hics_diverse"]) == {100} and len(fewest["random"]) == 10
    assert f"100 distinct clients in every 50-round window, random {min(fewest['random'])}-{max(fewest['random'])}" in section
    covered = [float(x) for x in coverage_blocks(D03, "random")]
    assert len(covered) == 4 and f"covers about 8 of the 10 classes (`class_coverage.md`: " \
                                 f"{min(covered):.2f}-{max(covered):.2f} per 50-round block)" in section
    low, high = variant_readings(D03)[1][3].split("[")[1].split("]")[0].split(", ")
    assert f"at most {abs(float(low)):.3f} below random's and at most {float(high):.3f} above it" in section


def test_readme_quotes_dirichlet03_as_generated():
    speed, accuracy = variant_readings(D03)
    readme = readme_text()
    assert (f"the variant and random cannot be told apart: mean accuracy over 200 rounds {accuracy[3].split(' (')[0]}, "
            f"rounds to 75% {speed[3].split(' (')[0]} (random / variant)") in readme
    assert speed[6].startswith("not distinguishable") and accuracy[6].startswith("not distinguishable")
    oracle = table_rows(D03 / "headline.md")[("hics_oracle", "rounds to target (raw)")]
    assert oracle[6] != "better" and f"no faster than random there either, {oracle[3].split(' (')[0]} (random / oracle)" in readme


DYNAMIC = ROOT / "experiments" / "results" / "heterogeneity_dynamic"


def test_dynamic_is_quoted_as_generated():
    """fmnist_s2_dynamic at 10 paired seeds: the table (headline.md, class_coverage.md,
    draw_balance.md), comparison.md's counts and volatility, the reading of why the variant
    loses (estimator_quality.md, draw_balance.md), the oracle's skewed draw (draw_balance.md,
    class_coverage.md) and the README's sentence."""
    section = report_section("### Setting 2 with the paper's dynamic availability", "### Not run yet")
    assert "random, the variant and the oracle at 10 paired seeds" in section and "seeds 0-9" in section
    assert_variant_rows(DYNAMIC, section)
    balance = draw_balance(DYNAMIC / "draw_balance.md")
    _, seeds, spread, p, holm, verdict = next(r for r in balance["spread"] if r[0] == "hics_diverse")
    assert seeds == "10" and f"| class-share spread over the run | {spread} | {p}, {holm} | {verdict} |" in section
    reached = runs_at_target(DYNAMIC)
    assert (f"{reached['random'][0]} of random's runs and {reached['hics_diverse'][0]} of the variant's reached 75% "
            f"in a single round, {reached['random'][1]} and {reached['hics_diverse'][1]} on the trailing mean") in section
    volatility = table_rows(DYNAMIC / "comparison.md")[("volatility", "hics_diverse")]
    assert f"volatility +{volatility[4]}, `comparison.md`, {volatility[8]}" in section
    variant = [r for r in balance["clusters"] if r[0] == "hics_diverse"]
    size_picks, rounds = [float(r[6]) for r in variant], {r[2] for r in variant}
    picks = [int(x) for r in variant for x in r[5].split("-")]
    assert len(variant) == 10 and max(size_picks) < 0 and len(rounds) == 1
    assert f"clients -{abs(max(size_picks)):.2f} to -{abs(min(size_picks)):.2f} per seed" in section
    assert f"picks over the {rounds.pop()} rounds after warm-up range from {min(picks)} to {max(picks)}" in section
    mix = {r[0]: [float(x) for x in r[1:11]] for r in balance["mix"]}
    top = sorted(range(10), key=lambda c: mix["hics_diverse"][c])[-2:]
    assert top == [6, 7] and f"classes 6 and 7 for {mix['hics_diverse'][6]:.3f} and {mix['hics_diverse'][7]:.3f}" in section
    assert f"random's shares are {min(mix['random']):.3f}-{max(mix['random']):.3f}" in section
    late = [line.split(" | ") for line in (DYNAMIC / "estimator_quality.md").read_text().splitlines()
            if line.startswith("| hics_diverse | 76-100 |")]
    assert len(late) == 1 and f"falls to {late[0][3]} in rounds 76-100" in section
    headline = table_rows(DYNAMIC / "headline.md")
    last10 = headline[("hics_diverse", "final-window accuracy")]
    assert last10[6] == "worse" and "Its last 10 rounds are lower too" in section
    accuracy, oracle = (headline[(s, "mean accuracy (AUC/R)")] for s in ("hics_diverse", "hics_oracle"))
    assert accuracy[6] == oracle[6] == "worse"
    assert (f"mean accuracy over 200 rounds {accuracy[3].split(' (')[0]} (Holm p {accuracy[5]}), for the same "
            f"reason as on shards; the oracle, on the true label mixes, loses more to random there in mean accuracy ({oracle[3].split(' (')[0]})"
            ) in readme_text()
    oracle_clusters = [r for r in balance["clusters"] if r[0] == "hics_oracle"]
    oracle_size_picks = [float(r[6]) for r in oracle_clusters]
    assert len(oracle_clusters) == 10 and max(oracle_size_picks) < 0
    assert (f"-{abs(max(oracle_size_picks)):.2f} to -{abs(min(oracle_size_picks)):.2f} per seed, the variant "
            f"-{abs(max(size_picks)):.2f} to -{abs(min(size_picks)):.2f}") in section
    top = sorted(range(10), key=lambda c: mix["hics_oracle"][c])[-3:]
    assert sorted(top) == [7, 8, 9] and "classes 7, 8 and 9 for {:.3f}, {:.3f} and {:.3f}".format(
        *(mix["hics_oracle"][c] for c in (7, 8, 9))) in section
    blocks, random_blocks = coverage_blocks(DYNAMIC, "hics_oracle"), coverage_blocks(DYNAMIC, "random")
    assert (f"{blocks[0]} classes per round in rounds 1-50, {blocks[-1]} in rounds 151-200, random's "
            f"{random_blocks[0]} and {random_blocks[-1]}") in section
    assert f"its class-share spread is {spread} against random" in section


def test_dirichlet01_fedcor_is_quoted_as_generated():
    """The FedCor subsection of Dirichlet(0.1): FedCor against random (headline.md), the variant
    against FedCor (against_fedcor/headline.md), coverage, spread and client cost, as generated."""
    section = report_section("#### FedCor on Dirichlet(0.1)", "### Dirichlet(0.3)")
    headline, against = table_rows(D01 / "headline.md"), table_rows(D01 / "against_fedcor" / "headline.md")
    seeds = headline[("fedcor", "rounds to target (raw)")][2]
    assert seeds == "10" and f"({seeds} paired seeds)" in section
    single, smoothed = runs_at_target(D01, seeds, ("fedcor",))["fedcor"]
    assert f"({single} in single rounds, {smoothed} on the trailing mean" in section
    for tables, sampler, ratio in ((D01, "fedcor", "random / FedCor"), (D01 / "against_fedcor", "hics_diverse", "FedCor / variant")):
        assert_rows_quoted(tables, sampler, section, (*speed_readings(ratio), *ACCURACY_AND_COVERAGE[:2]), seeds)
    coverage = table_rows(D01 / "class_coverage.md")
    for metric in ("classes covered per round", "cohort label entropy"):
        assert f"FedCor {coverage[('fedcor', metric)][3]}, the variant {coverage[('hics_diverse', metric)][3]}" in section
    fewest = fewest_distinct(D01, "fedcor")
    assert len(fewest) == int(seeds) and f"({min(fewest)}-{max(fewest)} distinct clients" in section
    costs = {r[0]: r for r in table_rows(D01 / "client_cost.md").values()}
    fedcor, variant = costs["fedcor"], costs["hics_diverse"]
    assert f"FedCor asks {fedcor[2]} extra messages (loss reports), {fedcor[3]} KiB and {fedcor[4]} examples" in section
    assert variant[2] == variant[3] == variant[4] == "0.0"
    assert f"takes {fedcor[5]} ms to select; the variant asks for 0.0 of each ({variant[5]} ms)" in section
    if "all four readings are decided, and all four say **worse**" in section:
        assert {against[("hics_diverse", m)][6] for _, _, m in (*speed_readings(""), *ACCURACY_AND_COVERAGE[:2])} == {"worse"}


def second_target(study: Path) -> str:
    """The report's words for the issue's second target on a wider setting ("better than random on
    rounds to target where the oracle is"), from headline.md's verdicts for the oracle and the variant."""
    headline = table_rows(study / "headline.md")
    verdicts = {s: headline[(s, "rounds to target (raw)")][6] for s in ("hics_oracle", "hics_diverse")}
    if verdicts["hics_oracle"] != "better":
        return "the oracle is not better than random on rounds to 75% here, so the second target does not apply"
    return "the second target is met" if verdicts["hics_diverse"] == "better" else "the second target is missed"


ORACLE_SECTIONS = ((D03, "### Dirichlet(0.3)", "#### The oracle on Dirichlet(0.3)", "### Shards"),
                   (SHARDS, "### Shards", "#### The oracle on shards", "### Setting 2 with unreliable clients"),
                   (UNRELIABLE, "### Setting 2 with unreliable clients", "#### The oracle with unreliable clients",
                    "### Setting 2 with the paper's dynamic"),
                   (DYNAMIC, "### Setting 2 with the paper's dynamic", "#### The oracle with dynamic clients", "### Not run yet"))


def test_oracle_on_wider_settings_is_quoted_as_generated():
    """Each wider setting's oracle subsection: its rows against random (headline.md,
    class_coverage.md), its runs at 75% (comparison.md), its narrowest window
    (selection_health.md) and the second target's verdict that follows from them."""
    for study, setting, start, stop in ORACLE_SECTIONS:
        section = report_section(start, stop)
        assert_rows_quoted(study, "hics_oracle", section, (*speed_readings("random / oracle"), *ACCURACY_AND_COVERAGE))
        single, smoothed = runs_at_target(study, 10, ("hics_oracle",))["hics_oracle"]
        assert f"({single} in single rounds, {smoothed} on the trailing mean" in section, study.name
        fewest = fewest_distinct(study, "hics_oracle")
        assert len(fewest) == 10 and f"{min(fewest)}-{max(fewest)} distinct clients" in section, study.name
        assert second_target(study) in section, study.name
        blocks = coverage_blocks(study, "hics_oracle")
        if "classes per round in rounds 1-50" in section:
            assert f"{blocks[0]} classes per round in rounds 1-50, {blocks[-1]} in rounds 151-200" in section
        _, seeds, spread, _, _, verdict = next(r for r in draw_balance(study / "draw_balance.md")["spread"]
                                               if r[0] == "hics_oracle")
        if "class-share spread" in section:
            assert seeds == "10" and f"class-share spread {spread} against random, {verdict}" in section
        accuracy = table_rows(study / "headline.md")[("hics_oracle", "mean accuracy (AUC/R)")]
        if "the interval excludes 0 before Holm, not after" in section:
            low, high = accuracy[3].split("[")[1].split("]")[0].split(", ")
            assert float(accuracy[5]) > 0.05 and (float(low) > 0 or float(high) < 0), study.name
        assert "The oracle has no runs" not in report_section(setting, stop), study.name
