"""HiCS-FL fed with the truth: an upper bound of heterogeneity-guided selection (not deployable).

HiCS-FL estimates each client's label distribution from its output-layer update. This
sampler skips the estimate: it reads the clients' true label distributions from the
partition (a server never has them) and runs HiCS-FL's own clustering and annealed cluster
sampling on them, from round 1, with no warm-up. The authors' code has the same idea
(``server_oracle.py`` in GitHub CityChan/HiCS-FL). What it measures: how much a perfect
heterogeneity estimate would gain, so a gap between ``hics`` and ``hics_oracle`` is the
cost of the estimator, and a gap between ``hics_oracle`` and ``random`` the most that
heterogeneity-guided selection can give in that setting.

In HiCS-FL's terms: the entropy is the true label entropy H(p_k) (nats) and the direction
whose angle is measured is ``p_k - 1/C`` (the direction a client's bias update points to
when it has learnt its own label mix).
"""

from __future__ import annotations

import numpy as np

from fedsim.selection.base import ClientReport, SamplerNeeds
from fedsim.selection.hics import HiCSSampler


class HiCSOracleSampler(HiCSSampler):
    """HiCS-FL's clustering and annealed sampling on true label distributions.

    Takes HiCS-FL's ``gamma0``, ``lam``, ``num_clusters``, ``within_cluster`` and ``mode``;
    the estimator settings (temperature, refresh, warm-up order, ...) play no part.
    """

    needs = SamplerNeeds(true_label_distributions=True)

    def receive_label_distributions(self, histograms: np.ndarray) -> None:
        """Store p_k - 1/C as every client's direction and mark every client as known."""
        counts = np.asarray(histograms, dtype=np.float64)
        shares = counts / counts.sum(axis=1, keepdims=True)
        self._true_entropy = -np.sum(np.where(shares > 0, shares * np.log(np.where(shares > 0, shares, 1.0)), 0.0),
                                     axis=1)
        self._direction = shares - 1.0 / shares.shape[1]
        self._signal = shares
        self._reported[:] = True

    def entropies(self) -> np.ndarray:
        """The true label entropies (nats)."""
        return self._true_entropy.copy()

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Nothing to learn: the truth is known from the start."""
