"""fedsim's server algorithms: Flower's FedAvg and FedProx with fedsim's aggregation.

A fedsim sampler works in front of any Flower ``Strategy``
(:class:`~fedsim.server.strategy.SampledStrategy`): ``algorithm=fedadam`` and
``algorithm=fedyogi`` are Flower's own classes, used as they are (``conf/algorithm/``). ``fedavg`` and ``fedprox``
are Flower's classes too, with one difference, :class:`MeanAggregation`: the HiCS-FL paper
takes the *plain* mean of the K models (unbiased when clients are drawn by data share),
where Flower's FedAvg always weights by ``num-examples``; and fedsim accumulates the mean in
float64 (Flower sums in the arrays' dtype), which is what every run recorded by fedsim so far
used. ``weighted_aggregation=True`` weights by ``num-examples`` as Flower does.

Aggregation here keeps no state between rounds (:attr:`MeanAggregation.stateless`), so a
run continued from a checkpoint equals the uninterrupted run; a strategy with server state
(FedAdam's moments) is not continued from a checkpoint (``fedsim.run_folders``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp import strategy as flower

from fedsim.server.aggregation import average_arrays

ANY_CLIENT_COUNT = {"min_train_nodes": 1, "min_available_nodes": 1}
"""Flower's minimum node counts (2 by default) lowered, so that a round with one client trains."""


class MeanAggregation:
    """Plain (default) or ``num-examples``-weighted mean of the replies' arrays, in float64."""

    stateless = True  # nothing carried between rounds: checkpoints hold all of the server's state
    weighted_aggregation: bool

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the replies without errors; metrics as Flower's FedAvg aggregates them."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)  # type: ignore[attr-defined]
        if not valid:
            return None, None
        contents = [reply.content for reply in valid]
        weights = [float(c.metric_records["metrics"]["num-examples"]) for c in contents] \
            if self.weighted_aggregation else None
        arrays = average_arrays([c[self.arrayrecord_key] for c in contents], weights)  # type: ignore[attr-defined]
        return arrays, self.train_metrics_aggr_fn(contents, self.weighted_by_key)  # type: ignore[attr-defined]


class FedAvg(MeanAggregation, flower.FedAvg):
    """Flower's FedAvg with fedsim's aggregation (plain mean unless ``weighted_aggregation``)."""

    def __init__(self, weighted_aggregation: bool = False, **flower_options: Any) -> None:
        super().__init__(**{**ANY_CLIENT_COUNT, **flower_options})
        self.weighted_aggregation = bool(weighted_aggregation)


class FedProx(MeanAggregation, flower.FedProx):
    """Flower's FedProx (clients add (mu/2)||w - w_global||^2) with fedsim's aggregation."""

    def __init__(self, proximal_mu: float = 0.1, weighted_aggregation: bool = False, **flower_options: Any) -> None:
        super().__init__(proximal_mu=proximal_mu, **{**ANY_CLIENT_COUNT, **flower_options})
        self.weighted_aggregation = bool(weighted_aggregation)

