"""How well HiCS-FL's heterogeneity estimates track the truth, for one run folder.

Compares each client's latest estimated entropy (``sampler.jsonl``) with the entropy
of its real label histogram (``partition.json``): Spearman rank correlation, written to
``entropy_report.json``, and a scatter plot ``entropy_estimate.png`` coloured by group.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from fedsim.hooks import RoundHook, RunContext
from fedsim.results.recorder import read_jsonl, write_json_atomic

logger = logging.getLogger(__name__)

MIN_TRUE_SPREAD = 0.1
"""Std (nats) of the clients' true label entropies below which a rank correlation means little."""


def estimates(sampler_row: dict[str, Any]) -> np.ndarray | None:
    """One ``sampler.jsonl`` row's per-client estimated entropies (NaN for a client not yet
    estimated); None if the row has none (a sampler that does not estimate).

    Row t holds the estimates the sampler chose round t's clients with, i.e. from the
    updates of rounds before t."""
    entropy = sampler_row.get("entropy")
    return None if entropy is None else np.array([np.nan if h is None else h for h in entropy], dtype=float)


def latest_estimates(sampler_rows: list[dict[str, Any]]) -> np.ndarray | None:
    """Each client's estimated entropy in the last row that has estimates (NaN where it never
    reported): what the sampler used for the last recorded round."""
    rows = [r for r in sampler_rows if r.get("entropy") is not None]
    return estimates(rows[-1]) if rows else None


def entropy_agreement(estimated: np.ndarray, true: np.ndarray) -> float | None:
    """Spearman correlation over clients with an estimate (None if fewer than 3)."""
    known = ~np.isnan(estimated)
    if known.sum() < 3:
        return None
    rho = spearmanr(estimated[known], true[known]).statistic
    return None if np.isnan(rho) else float(rho)


def write_entropy_report(run_dir: str | Path) -> dict[str, Any] | None:
    """Write the correlation and the plot; None if the run has no entropy estimates."""
    run_dir = Path(run_dir)
    estimated = latest_estimates(read_jsonl(run_dir / "sampler.jsonl"))
    if estimated is None:
        return None
    partition = json.loads((run_dir / "partition.json").read_text())
    true = np.asarray(partition["label_entropy"], dtype=float)
    report = {"spearman": entropy_agreement(estimated, true), "clients_with_estimate": int((~np.isnan(estimated)).sum()),
              "true_entropy_std": float(np.std(true))}
    if report["true_entropy_std"] < MIN_TRUE_SPREAD:
        report["warning"] = (
            f"the clients' true label entropies barely differ (std {report['true_entropy_std']:.3f} nats < "
            f"{MIN_TRUE_SPREAD}): the partition has too little heterogeneity spread for the Spearman "
            f"correlation to mean anything"
        )
        logger.warning("entropy report: %s", report["warning"])
    write_json_atomic(run_dir / "entropy_report.json", report)
    _plot(run_dir / "entropy_estimate.png", estimated, true, partition.get("groups"), report["spearman"])
    return report


def _plot(path: Path, estimated: np.ndarray, true: np.ndarray, groups: list[int] | None, rho: float | None) -> None:
    from fedsim.plotting import plt, save_png  # matplotlib only when a report is drawn

    fig, ax = plt.subplots(figsize=(5, 4))
    if groups is not None:
        points = ax.scatter(true, estimated, c=groups, cmap="viridis", s=25)
        fig.colorbar(points, ax=ax, label="heterogeneity group")
    else:
        ax.scatter(true, estimated, s=25)
    ax.set_xlabel("true label entropy (nats)")
    ax.set_ylabel("estimated entropy H_hat (nats)")
    ax.set_title(f"HiCS-FL estimate vs truth (Spearman {rho:.3f})" if rho is not None else "HiCS-FL estimate vs truth")
    fig.tight_layout()
    save_png(fig, path, dpi=120)


class EntropyReportHook(RoundHook):
    """Writes the entropy report at the end of a HiCS-FL run (attached by its sampler config)."""

    def on_run_start(self, context: RunContext) -> None:
        """Remember the run folder."""
        self.run_dir = context.run_dir

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Write the report and add its Spearman correlation to the summary."""
        report = write_entropy_report(self.run_dir)
        if report is not None:
            summary["entropy_spearman"] = report["spearman"]
