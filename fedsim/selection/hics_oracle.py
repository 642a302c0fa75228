"""HiCS-FL fed with the truth: an upper bound of heterogeneity-guided selection (not deployable).

HiCS-FL estimates each client's label distribution from its output-layer update. This
sampler skips the estimate: it reads the clients' true label distributions from the
partition (a server never has them) and runs HiCS-FL's own clustering and annealed cluster
sampling on them, from round 1, with no warm-up. The authors' code has the same idea
(``server_oracle.py`` in GitHub CityChan/HiCS-FL). What it measures: how much a perfect
heterogeneity estimate would gain, so a gap between ``hics`` and ``hics_oracle`` is the
cost of the estimator, and a gap between ``hics_oracle`` and ``random`` the most that
heterogeneity-guided selection can give in that setting.

In HiCS-FL's terms: the entropy is the true label entropy H(p_k) (nats, computed by
``fedsim.data.stats.label_entropies``, as in the run's partition record) and the direction
whose angle is measured is ``p_k - 1/C`` (the direction a client's bias update points to
when it has learnt its own label mix).
"""

from __future__ import annotations

import numpy as np

from fedsim.data.stats import label_entropies
from fedsim.selection.base import ClientReport, SamplerNeeds
from fedsim.selection.hics import HiCSSampler


class HiCSOracleSampler(HiCSSampler):
    """HiCS-FL's clustering and cluster sampling on true label distributions.

    Honours the settings of :class:`HiCSSampler` that act after the estimate: ``gamma0``,
    ``annealing``, ``lam``, ``num_clusters``, ``within_cluster``, ``mode`` and
    ``micro_clusters``, ``exploration_rate`` and ``variance_fallback`` /
    ``variance_threshold`` (all inherited). The estimator settings (``temperature``,
    ``estimator``, ``refresh``, ``warmup_order``, ``distance_on``, ``normalize_by_steps``)
    play no part: there is nothing to estimate.

    Its preset ``conf/sampler/hics_oracle.yaml`` runs the paper's selection rule (absolute
    annealing, no exploration, no variance fallback), so ``hics_oracle`` bounds the paper's
    HiCS-FL rule fed with perfect knowledge, not the rule of fedsim's variant
    (``hics_diverse``); ``++sampler.annealing=relative sampler.gamma0=2 ++sampler.exploration_rate=0.7``
    gives the variant's rule on the truth.
    """

    needs = SamplerNeeds(true_label_distributions=True)
    ESTIMATOR_SETTINGS = ("temperature", "estimator", "refresh", "warmup_order", "distance_on", "normalize_by_steps")

    @classmethod
    def unread_params(cls, params: dict) -> set[str]:
        """The estimator settings too: there is nothing to estimate (:mod:`fedsim.identity`)."""
        return super().unread_params(params) | set(cls.ESTIMATOR_SETTINGS)

    def reset(self) -> None:
        """Also forget the truth: :meth:`entropies` refuses until it is received again."""
        super().reset()
        self._true_entropy: np.ndarray | None = None

    def receive_label_distributions(self, histograms: np.ndarray) -> None:
        """Store p_k - 1/C as every client's direction and mark every client as known."""
        counts = np.asarray(histograms, dtype=np.float64)
        shares = counts / counts.sum(axis=1, keepdims=True)
        self._true_entropy = label_entropies(counts)
        self._direction = shares - 1.0 / shares.shape[1]
        self._signal = shares
        self._reported[:] = True

    def entropies(self) -> np.ndarray:
        """The true label entropies (nats); RuntimeError before the histograms arrive."""
        if getattr(self, "_true_entropy", None) is None:
            raise RuntimeError(
                "HiCSOracleSampler.entropies(): no true label distributions yet; call setup() and then "
                "receive_label_distributions(histograms) before selecting"
            )
        return self._true_entropy.copy()

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Nothing to learn: the truth is known from the start."""
