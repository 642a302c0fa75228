"""HiCS-FL as a ready-made Flower strategy, for use in any ServerApp without Hydra.

    from fedsim import HiCSFL
    strategy = HiCSFL(clients_per_round=5, num_rounds=200, temperature=0.0025)
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=200)

Clients must reply to ``train`` messages with ``arrays`` (new weights), an
``output_update`` ArrayRecord (``bias`` and ``weight``: local minus global output
layer) and a ``metrics`` record with ``num-examples``, ``train-loss``, ``num-steps``;
and answer ``query`` messages with their ``partition-id`` and ``num-examples`` (fedsim's
``make_client_app`` does all of this). FedProx: pass ``proximal_mu``.
"""

from __future__ import annotations

from typing import Any

from fedsim.selection.hics import HiCSSampler
from fedsim.server.strategy import SamplingFedAvg


class HiCSFL(SamplingFedAvg):
    """Heterogeneity-guided client sampling (Chen & Vikalo, NeurIPS 2024) on Flower's FedAvg.

    Parameters
    ----------
    clients_per_round : int
        K, clients sampled per round.
    num_rounds : int
        T_R, the total number of rounds (the annealing schedule needs it).
    weighted_aggregation : bool (default: False)
        The paper aggregates with a plain mean; True weights by data size.
    proximal_mu : float (default: 0.0)
        FedProx proximal coefficient sent to clients.
    seed : int (default: 0)
        Seed of the sampling stream (and of clients' local shuffling).
    expected_nodes : int (default: 1)
        Nodes to wait for before the first round.
    **sampler_options
        :class:`~fedsim.selection.hics.HiCSSampler`'s settings, with its defaults: the paper's
        ``temperature``, ``gamma0``, ``lam`` and ``num_clusters`` (T, gamma_0, lambda, M;
        None = K), and every switch (estimator, warmup_order, refresh, within_cluster,
        distance_on, variance_fallback, ...).
    """

    def __init__(
        self,
        clients_per_round: int,
        num_rounds: int,
        weighted_aggregation: bool = False,
        proximal_mu: float = 0.0,
        seed: int = 0,
        expected_nodes: int = 1,
        **sampler_options: Any,
    ) -> None:
        sampler = HiCSSampler(**sampler_options)
        super().__init__(
            sampler=sampler,
            clients_per_round=clients_per_round,
            weighted_aggregation=weighted_aggregation,
            proximal_mu=proximal_mu,
            seed=seed,
            num_rounds=num_rounds,
            expected_nodes=expected_nodes,
        )
