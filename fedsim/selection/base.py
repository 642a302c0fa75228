"""The sampler interface shared by every client-selection method.

A sampler is plain numpy code; the Flower strategy (``fedsim.server.strategy``) serves
what it declares it needs through :class:`SamplerNeeds`:

- nothing (uniform random);
- candidate statistics before selection (Power-of-Choice: the loss of the current global
  model on each candidate's data; DivFL ideal: also its full-batch gradient): the sampler
  names the candidates in :meth:`Sampler.probe_candidates`;
- the sampled clients' replies after training (HiCS-FL: the output-layer bias update;
  clustered sampling and DivFL: the full model update) via :meth:`Sampler.observe`.

Clients are always named by partition id (0..N-1), never by Flower node id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SamplerNeeds:
    """What a sampler needs, so the strategy (or the experiment) can provide it.

    ``true_label_distributions``: the clients' real label histograms from the partition,
    handed to :meth:`Sampler.receive_label_distributions` before the first round. Only
    oracle samplers (upper bounds, not deployable methods) ask for it.
    """

    probe_gradients: bool = False
    full_updates: bool = False
    true_label_distributions: bool = False


@dataclass
class ClientReport:
    """What the server learnt from one client's training reply."""

    partition_id: int
    num_examples: int
    train_loss: float
    num_steps: int
    bias_update: np.ndarray
    weight_update: np.ndarray
    model_update: np.ndarray | None = None


@dataclass
class ProbeReport:
    """A candidate's answer to a pre-selection probe.

    ``loss`` is the current global model's mean loss on the client's training data;
    ``gradient`` (flattened, only when the sampler's needs ask for probe gradients) is
    the full-batch gradient of that loss at the current global model.
    """

    partition_id: int
    loss: float
    num_examples: int
    gradient: np.ndarray | None = None


class Sampler(ABC):
    """Chooses the clients of each round.

    Lifecycle: :meth:`setup` once, then every round ``probe_candidates`` (optional) ->
    ``select`` -> (training) -> ``observe``. All randomness comes from the generator
    given to :meth:`setup`, so a seed fixes the whole selection stream.

    A new method overrides :meth:`choose` (and, when it keeps state, :meth:`reset`,
    :meth:`observe` and :meth:`learn_from_probes`); :meth:`select` is the fixed template
    around it. Per-round internals go into :attr:`round_diagnostics`, which the run
    records as ``sampler.jsonl``.
    """

    needs = SamplerNeeds()

    def setup(
        self,
        client_sizes: np.ndarray,
        clients_per_round: int,
        num_rounds: int,
        rng: np.random.Generator,
    ) -> None:
        """Receive the federation's shape and this sampler's random stream, then :meth:`reset`."""
        self.client_sizes = np.asarray(client_sizes, dtype=np.float64)
        self.num_clients = len(self.client_sizes)
        self.clients_per_round = int(clients_per_round)
        self.num_rounds = int(num_rounds)
        self.rng = rng
        self.round_diagnostics: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Allocate per-run state (called by :meth:`setup`; default: none)."""

    @property
    def data_shares(self) -> np.ndarray:
        """p_k: each client's share of all training examples."""
        return self.client_sizes / self.client_sizes.sum()

    def probe_candidates(self, server_round: int, available: np.ndarray) -> list[int]:
        """Clients to probe (current-model loss) before selecting; none by default."""
        return []

    def select(
        self,
        server_round: int,
        available: np.ndarray,
        num_to_select: int,
        probes: dict[int, ProbeReport],
    ) -> list[int]:
        """Up to ``num_to_select`` distinct partition ids from ``available``.

        The template every sampler shares: available ids sorted and deduplicated, the
        probes handed to :meth:`learn_from_probes`, then :meth:`choose` asked for
        ``min(num_to_select, len(available))`` clients (none when that is 0).
        """
        available = np.unique(np.asarray(available, dtype=np.int64))
        count = min(int(num_to_select), len(available))
        self.learn_from_probes(server_round, probes)
        if count <= 0:
            return []
        return [int(k) for k in self.choose(server_round, available, count, probes)]

    def learn_from_probes(self, server_round: int, probes: dict[int, ProbeReport]) -> None:
        """Update state from this round's probe answers before choosing (default: ignore)."""

    @abstractmethod
    def choose(
        self,
        server_round: int,
        available: np.ndarray,
        count: int,
        probes: dict[int, ProbeReport],
    ) -> list[int]:
        """Return ``count`` (>= 1, <= len(available)) distinct ids from sorted ``available``."""

    def receive_label_distributions(self, histograms: np.ndarray) -> None:
        """The clients' true label histograms (N, C), for samplers whose needs ask for them."""

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Learn from the replies of the clients that trained this round (default: ignore)."""

    def diagnostics(self) -> dict[str, Any]:
        """JSON-ready internals of the last selection, for the run folder."""
        return dict(self.round_diagnostics)
