"""Compare samplers over fedsim run folders: pandas tables, censoring-aware rounds to target,
paired by-seed statistics against a baseline, a markdown/CSV report and plots.

    from fedsim.compare import load, per_run, summarize, paired, compare
    study = load(["experiments/results/paper_fmnist_s2"]).finished()
    table = per_run(study, target=0.75, smooth=5)
    summarize(table); paired(table, baseline="random")

Modules: :mod:`~fedsim.compare.load` (tables), :mod:`~fedsim.compare.metrics` (per-run
metrics and summaries), :mod:`~fedsim.compare.stats` (paired statistics),
:mod:`~fedsim.compare.report` (markdown/CSV), :mod:`~fedsim.compare.plots` (PNGs),
:mod:`~fedsim.compare.cli` (``fedsim-compare``).
"""

from fedsim.compare.cli import compare, main
from fedsim.compare.load import Study, load
from fedsim.compare.metrics import (
    fewest_distinct, group_shares, km_summary, per_run, rounds_to_target, selection_health, summarize,
)
from fedsim.compare.stats import holm, paired, seeds_needed, sign_flip_p, t_interval

__all__ = [
    "Study", "compare", "fewest_distinct", "group_shares", "holm", "km_summary", "load", "main", "paired",
    "per_run",
    "rounds_to_target", "seeds_needed", "selection_health", "sign_flip_p", "summarize", "t_interval",
]
