"""The authors'-parity study: fedsim with every switch set as the HiCS-FL authors' code, and its report.

Runs ``fedsim +experiment=authors_fmnist_s2 num_rounds=60`` (Fashion-MNIST setting 2 as the
code runs it, ``docs/authors-parity.md``) for ``hics_reference`` and ``random_proportional``
(the code's HiCS-FL and its random baseline) on seeds 0-2 into
``experiments/results/authors_parity``; ``random_proportional`` seed 0 once more with fedsim's
defaults for the two training switches that change numbers (``model.init_gain=linear
dataset.normalization=standardize``) into ``experiments/results/authors_parity_fedsim_defaults``;
and ``hics_reference`` seeds 0-2 with the fallback's Ward tree on the condensed distances
(``hics.fallback_tree=distances``, fedsim's default) into
``experiments/results/authors_parity_fallback_distances``; and ``random_proportional`` seeds 0-2
drawing as the code's random server (``++sampler.round_seeded=true``: numpy reseeded with the
round index) into ``experiments/results/authors_parity_round_seeded``.
The authors' own code's runs, made outside fedsim with ``experiments/authors_code/run_hics.py``
(its README: fetching the code, the commands), are read from ``experiments/results/authors_code``
(``<sampler>_seed<S>.csv``) into the same tables and figure.
Resumable like every study (finished runs are skipped; records kept packed as ``runs.parquet``);
about half an hour a run on one core. Then writes, next to the records:

- ``fedsim-compare``'s report with target 70% against ``random_proportional`` (three seeds:
  intervals too wide to decide anything);
- ``parity.md``: per run, the first round at >= 70% and the best, mean and last-10-round
  accuracy, both per example (fedsim's ``accuracy``) and as the code computes it (the mean of
  per-batch accuracies, ``accuracy_batch_mean``), the spread (min-max over seeds) per sampler,
  and fedsim against the authors' code per sampler (difference of means over seeds with Welch's
  95% interval: unpaired, since seed s draws another partition and initial model in each);
- ``group_picks.md``: the random baselines' picks per heterogeneity group, per seed (the code
  reseeds numpy with the round index every round, so its runs draw nearly one group mix per
  round whatever the seed; fedsim's streams differ by seed);
- ``parity_curves.png``: per sampler, the mean curve over seeds with its min-max band.

    python experiments/authors_parity.py
    python experiments/authors_parity.py --report-only
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from fedsim.compare import compare, load  # noqa: E402
from fedsim.compare.load import Study  # noqa: E402
from fedsim.compare.report import md_table  # noqa: E402
from fedsim.errors import ConfigError, run_script  # noqa: E402
from fedsim.plotting import save_png  # noqa: E402
from fedsim.results.archive import unpacked  # noqa: E402
from fedsim.results.recorder import read_jsonl  # noqa: E402
from sweep import run_sweep  # noqa: E402

RESULTS = Path("experiments/results")
STUDY = RESULTS / "authors_parity"
DEFAULTS = RESULTS / "authors_parity_fedsim_defaults"
FALLBACK_DISTANCES = RESULTS / "authors_parity_fallback_distances"
ROUND_SEEDED = RESULTS / "authors_parity_round_seeded"
CODE = RESULTS / "authors_code"  # the authors' own code's runs (experiments/authors_code/README.md)
EXPERIMENT = "authors_fmnist_s2"
SAMPLERS = ["hics_reference", "random_proportional"]
SEEDS = [0, 1, 2]
ROUNDS = 60
TARGET = 0.70
FEDSIM_DEFAULTS = ["model.init_gain=linear", "dataset.normalization=standardize"]
CODE_COUNTERPART = {"random_proportional": "random (authors' code)", "hics_reference": "hics (authors' code)"}
MEASURES = ["first round >= 70%", "best", "mean", "last 10"]
ACCURACIES = {"accuracy": "per example (fedsim)", "accuracy_batch_mean": "mean of per-batch accuracies (the code)"}
REPORT_COMMAND = "python experiments/authors_parity.py --report-only"


def finished_studies(folders: list[Path]) -> dict[str, Study]:
    """Each study folder's finished runs, by folder name (loaded once for every table)."""
    return {folder.name: load([folder]).finished() for folder in folders}


def curves(studies: dict[str, Study]) -> pd.DataFrame:
    """One row per run and round: study folder, run, sampler, seed, round, both accuracies and
    the sampler's phase that round (``sampler.jsonl``: warmup, cluster, fallback; None without one)."""
    rows = []
    for name, study in studies.items():
        for run in study.runs.itertuples():
            diagnostics = Path(run.dir) / "sampler.jsonl"
            phases = {d["round"]: d.get("phase") for d in read_jsonl(diagnostics)} if diagnostics.exists() else {}
            for line in read_jsonl(Path(run.dir) / "metrics.jsonl"):
                rows.append({"study": name, "run": Path(run.dir).name, "sampler": run.sampler,
                             "seed": run.seed, "round": line["round"], "phase": phases.get(line["round"]),
                             **{key: line.get(key) for key in ACCURACIES}})
    return pd.DataFrame(rows)


def code_curves(folder: Path = CODE) -> pd.DataFrame:
    """The authors' own code's runs (``experiments/authors_code/run_hics.py``): one row per run and
    round, as :func:`curves`, from ``<sampler>_seed<S>.csv`` (``round,accuracy``: the code's
    ``global_acc``, a mean of per-batch accuracies); ``accuracy`` (per example) is not recorded
    by the code and stays empty. A file that is not such a table stops the report in one line."""
    frames = []
    for path in sorted(folder.glob("*_seed*.csv")):
        sampler, _, seed = path.stem.rpartition("_seed")
        try:
            frame = pd.read_csv(path)
            if list(frame.columns) != ["round", "accuracy"] or not seed.isdigit() or frame.empty:
                raise ValueError
            rounds, accuracy = frame["round"].astype(int), frame["accuracy"].astype(float)
        except ValueError:  # pandas' parser and decoding errors included
            raise ConfigError(f"{path}: not a run of the authors' code (round,accuracy per line); remove it") from None
        frames.append(pd.DataFrame({"study": folder.name, "run": path.stem, "sampler": f"{sampler} (authors' code)",
                                    "seed": int(seed), "round": rounds, "phase": None,
                                    "accuracy": float("nan"), "accuracy_batch_mean": accuracy}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def first_at(values: pd.Series, target: float = TARGET) -> float:
    """The first round whose value is >= target (NaN when none: the run never reached it)."""
    reached = values[values >= target]
    return float(reached.index[0]) if len(reached) else float("nan")


def per_run(table: pd.DataFrame) -> pd.DataFrame:
    """Per run and accuracy: first round at the target, best, mean over the rounds, mean of the last 10."""
    rows = []
    for (study, run, sampler, seed), group in table.groupby(["study", "run", "sampler", "seed"]):
        group = group.set_index("round").sort_index()
        for key in ACCURACIES:
            if group[key].isna().all():  # the authors' code records only its own accuracy
                continue
            rows.append({"study": study, "run": run, "sampler": sampler, "seed": seed, "accuracy as": key,
                         "first round >= 70%": first_at(group[key]), "best": group[key].max(),
                         "mean": group[key].mean(), "last 10": group[key].tail(10).mean()})
    return pd.DataFrame(rows)


def cell(value: float, measure: str) -> str:
    """A measure as the tables print it: rounds as integers, accuracies with three decimals."""
    return "never" if pd.isna(value) else (f"{value:.0f}" if measure.startswith("first") else f"{value:.3f}")


def against_code(runs: pd.DataFrame) -> list[list]:
    """fedsim with every switch as the code (``STUDY``, and ``ROUND_SEEDED``: also drawing as the
    code's random server) against the authors' code, per study, sampler and
    measure (accuracy as the code counts it): seeds each, the two means, and the difference of
    means (fedsim - code) with Welch's 95% interval and p (``scipy.stats.ttest_ind``,
    ``equal_var=False``). Unpaired: seed s draws another partition, initial model and client
    order in fedsim than in the code, so seeds are not pairs. A run that never reached 70%
    counts as ``ROUNDS + 1`` rounds (it had not by round ``ROUNDS``). Samplers with fewer
    than two runs on either side are left out (no interval)."""
    measured = runs[runs["accuracy as"] == "accuracy_batch_mean"]
    lines = []
    for study, (ours, theirs) in [(folder.name, pair) for folder in (STUDY, ROUND_SEEDED)
                                  for pair in CODE_COUNTERPART.items()]:
        fedsim = measured[(measured["study"] == study) & (measured["sampler"] == ours)]
        code = measured[(measured["study"] == CODE.name) & (measured["sampler"] == theirs)]
        if len(fedsim) < 2 or len(code) < 2:
            continue
        for measure in MEASURES:
            x, y = fedsim[measure].fillna(ROUNDS + 1), code[measure].fillna(ROUNDS + 1)
            test = stats.ttest_ind(x, y, equal_var=False)
            low, high = test.confidence_interval(0.95)
            digits = 1 if measure.startswith("first") else 3
            lines.append([study, ours, theirs, measure, len(x), len(y), f"{x.mean():.{digits}f}", f"{y.mean():.{digits}f}",
                          f"{x.mean() - y.mean():+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]",
                          f"{test.pvalue:.2f}"])
    return lines


CODE_SELECTION = re.compile(r"selection in epoch:\s+(\d+)\s*\n\[([\d\s]+)\]")  # the code's printout
CODE_GROUP_SIZE = 10  # the code's groups: clients 10 g, ..., 10 g + 9 take the g-th alpha
ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.2)  # the groups' Dirichlet alphas in this setting, in group order
RANDOM_BASELINES = {STUDY.name: "random_proportional", ROUND_SEEDED.name: "random_proportional",
                    CODE.name: "random (authors' code)"}
LAST_ROUNDS = range(ROUNDS - 9, ROUNDS + 1)


def code_selections(folder: Path = CODE) -> pd.DataFrame:
    """The clients the authors' code picked, from its output beside each run (``<csv>.log``, the
    lines ``selection in epoch: <e>`` then ``[<clients>]``): one row per run, round (e + 1) and
    pick, with the pick's group. Read as text only (a file from outside runs no code)."""
    rows = []
    for log in sorted(folder.glob("*_seed*.csv.log")):
        sampler, _, seed = log.name.removesuffix(".csv.log").rpartition("_seed")
        for epoch, clients in CODE_SELECTION.findall(log.read_text(errors="replace")):
            rows += [{"study": folder.name, "sampler": f"{sampler} (authors' code)", "seed": int(seed),
                      "round": int(epoch) + 1, "group": int(client) // CODE_GROUP_SIZE} for client in clients.split()]
    return pd.DataFrame(rows)


def fedsim_selections(name: str, study: Study) -> pd.DataFrame:
    """The clients fedsim picked in study ``name`` (``metrics.jsonl``), as :func:`code_selections`,
    with the group of each client from ``partition.json``."""
    groups = study.runs.set_index("run")["groups"]
    picks = study.rounds[["run", "sampler", "seed", "round", "selected"]].explode("selected").dropna(subset=["selected"])
    picks["group"] = [groups[run][int(client)] for run, client in zip(picks["run"], picks["selected"])]
    return picks.assign(study=name)[["study", "sampler", "seed", "round", "group"]]


def write_group_picks(out: Path, picks: pd.DataFrame) -> Path:
    """``group_picks.md``: per random baseline and seed, picks per heterogeneity group in the last 10
    rounds and in all rounds, and the rounds whose group mix (picks per group) equals that of
    the lowest seed's run in the same round: how far runs at different seeds share one sequence
    of draws."""
    picks = picks[[RANDOM_BASELINES.get(study) == sampler for study, sampler in zip(picks["study"], picks["sampler"])]]
    mix = picks.groupby(["study", "sampler", "seed", "round"])["group"].value_counts().unstack(fill_value=0)
    mix = mix.reindex(columns=range(len(ALPHAS)), fill_value=0)  # a group never picked counts 0
    lines = []
    for (study, sampler), runs in mix.groupby(level=["study", "sampler"]):
        first = runs.xs(runs.index.get_level_values("seed").min(), level="seed").droplevel(["study", "sampler"])
        for seed, run in runs.groupby(level="seed"):
            run = run.droplevel(["study", "sampler", "seed"])
            same = int((run.reindex(first.index, fill_value=0) == first).all(axis=1).sum())
            lines.append([study, sampler, seed, " / ".join(map(str, run.loc[run.index.isin(LAST_ROUNDS)].sum())),
                          " / ".join(map(str, run.sum())), f"{same} of {len(run)}"])
    path = out / "group_picks.md"
    path.write_text(
        f"Produced by: `{REPORT_COMMAND}`. The random baselines' picks per heterogeneity group (alphas "
        f"{' / '.join(map(str, ALPHAS))}, 10 clients each; fedsim's from `metrics.jsonl` and `partition.json`, the "
        "code's from its printed selections in `<csv>.log`). The code's random server calls "
        "`np.random.seed(epoch)` before each draw, so at every seed it draws from the same uniforms and, "
        "with client sizes alike, nearly the same group mix. Last column: rounds whose picks per group "
        "equal those of the lowest seed's run in the same round.\n\n"
        + md_table(["study", "sampler", "seed", f"picks per group, rounds {LAST_ROUNDS[0]}-{LAST_ROUNDS[-1]}",
                    "picks per group, all rounds", "rounds with the lowest seed's group mix"], lines) + "\n")
    return path


def write_parity(out: Path, table: pd.DataFrame) -> Path:
    """``parity.md``: the spread over seeds per study and sampler, fedsim against the authors' code
    (:func:`against_code`), the per-run table and the sampler's phases."""
    runs = per_run(table)
    run_lines = [[r["study"], r["run"], r["accuracy as"], *(cell(r[m], m) for m in MEASURES)]
                 for _, r in runs.sort_values(["study", "accuracy as", "run"]).iterrows()]
    spread = runs.groupby(["study", "sampler", "accuracy as"])[MEASURES].agg(["min", "max", "count"])
    spread_lines = [[*index, spread.loc[index, (MEASURES[1], "count")],
                     *(f"{cell(spread.loc[index, (m, 'min')], m)}-{cell(spread.loc[index, (m, 'max')], m)}"
                       for m in MEASURES)] for index in spread.index]
    never = runs[runs["first round >= 70%"].isna()]
    phases = table.dropna(subset=["phase"]).groupby(["study", "run"])["phase"].value_counts().unstack(fill_value=0)
    phase_lines = [[study, run, *(int(phases.loc[(study, run), c]) for c in phases.columns)]
                   for study, run in phases.index]
    path = out / "parity.md"
    path.write_text(
        f"Produced by: `{REPORT_COMMAND}`. `+experiment={EXPERIMENT} num_rounds={ROUNDS}`, every switch as the "
        f"authors' code; `{DEFAULTS.name}`: the same with `{' '.join(FEDSIM_DEFAULTS)}`; "
        f"`{FALLBACK_DISTANCES.name}`: the same with `hics.fallback_tree=distances`; `{ROUND_SEEDED.name}`: the "
        f"same with `++sampler.round_seeded=true` (the code's per-round reseeded draw); `{CODE.name}`: the authors' "
        "own code (3ceca3d) in the same configuration, `experiments/authors_code/run_hics.py`. Accuracy "
        f"{ACCURACIES['accuracy']} and as {ACCURACIES['accuracy_batch_mean']}; runs that never reached 70%: "
        f"{len(never)} of {len(runs)} (run, accuracy) pairs.\n\n"
        "Spread over seeds (min-max):\n\n"
        + md_table(["study", "sampler", "accuracy as", "seeds", *MEASURES], spread_lines)
        + f"\n\nfedsim (every switch as the code, `{STUDY.name}`; `{ROUND_SEEDED.name}`: also "
        "`++sampler.round_seeded=true`) against the authors' code, accuracy as the code counts it: difference "
        "of means over seeds (fedsim - code) with Welch's 95% interval. Unpaired: seed s draws another "
        "partition, initial model and client order in each, so seeds are not pairs; with "
        "three runs a side the interval is wide and bounds the gap rather than deciding it:\n\n"
        + md_table(["study", "fedsim", "the code", "measure", "fedsim runs", "code runs", "fedsim mean", "code mean",
                    "fedsim - code [95% CI]", "p (Welch)"], against_code(runs))
        + "\n\nPer run:\n\n" + md_table(["study", "run", "accuracy as", *MEASURES], run_lines)
        + "\n\nRounds per sampler phase (`sampler.jsonl`: warm-up, HiCS-FL's clusters, the variance "
        "fallback):\n\n" + md_table(["study", "run", *phases.columns], phase_lines) + "\n")
    return path


def plot_parity(out: Path, table: pd.DataFrame) -> Path:
    """``parity_curves.png``: per accuracy, the mean curve per sampler over seeds and its min-max band."""
    long = table[table["study"].isin([STUDY.name, CODE.name])].melt(
        id_vars=["sampler", "seed", "round"], value_vars=list(ACCURACIES), var_name="accuracy as", value_name="value")
    grid = sns.relplot(data=long, x="round", y="value", hue="sampler", col="accuracy as", kind="line",
                       errorbar=("pi", 100), height=3.2, aspect=1.3)
    for axis in grid.axes.flat:
        axis.axhline(TARGET, color="grey", linewidth=0.8, linestyle="--")
    grid.set_axis_labels("round", "test accuracy")
    path = save_png(grid.figure, out / "parity_curves.png")
    plt.close(grid.figure)
    return path


def main() -> None:
    """Run what is missing, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    with unpacked(STUDY), unpacked(DEFAULTS), unpacked(FALLBACK_DISTANCES), unpacked(ROUND_SEEDED):  # packed (zstd)
        if not args.report_only:
            run_sweep(STUDY, EXPERIMENT, SAMPLERS, SEEDS, args.jobs, [f"num_rounds={ROUNDS}"])
            run_sweep(DEFAULTS, EXPERIMENT, ["random_proportional"], [0], args.jobs,
                      [f"num_rounds={ROUNDS}", *FEDSIM_DEFAULTS])
            run_sweep(FALLBACK_DISTANCES, EXPERIMENT, ["hics_reference"], SEEDS, args.jobs,
                      [f"num_rounds={ROUNDS}", "hics.fallback_tree=distances"])
            run_sweep(ROUND_SEEDED, EXPERIMENT, ["random_proportional"], SEEDS, args.jobs,
                      [f"num_rounds={ROUNDS}", "++sampler.round_seeded=true"])
        compare([STUDY], target=TARGET, smooth=5, baseline="random_proportional", out=STUDY)
        fedsim = finished_studies([folder for folder in (STUDY, DEFAULTS, FALLBACK_DISTANCES, ROUND_SEEDED)
                                   if folder.is_dir()])
        table = pd.concat([curves(fedsim), code_curves()], ignore_index=True)
        random_baselines = {name: study for name, study in fedsim.items() if name in (STUDY.name, ROUND_SEEDED.name)}
        picks = pd.concat([*(fedsim_selections(name, study) for name, study in random_baselines.items()),
                           code_selections()], ignore_index=True)
        for path in (write_parity(STUDY, table), write_group_picks(STUDY, picks), plot_parity(STUDY, table)):
            print(path)
    print((STUDY / "parity.md").read_text())


if __name__ == "__main__":
    sys.exit(run_script(main, "authors_parity.py"))
